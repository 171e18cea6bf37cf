// What the client gets, through a real Caddy from a real upstream: managed Set-Cookie lines
// signed or encrypted once with their attributes byte for byte, unmanaged ones untouched,
// deletions kept, too long values and the tracking name dropped, Set-Cookie trailers removed,
// clearing lines, and Cache-Control private on a response that sets a visitor's cookie.

package signedcookies

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestHostileSetCookieLines(t *testing.T) {
	big := strings.Repeat("x", 3500)
	okBig := strings.Repeat("y", 2000)
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		switch r.URL.Path {
		case "/":
			for _, l := range []string{
				"session=a,b; Path=/",
				"cart=3-apples; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Path=/shop;  HttpOnly ;SameSite=Strict; Priority=High; Partitioned; Secure",
				"theme=a,b; Expires=Wed, 21 Oct 2099 07:28:00 GMT",
				"del1=; Path=/",
				`del2=""; Path=/`,
				"del3=x; Max-Age=0",
				"del4=x; Path=/; max-age=-1",
				"del5=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
				"del6=x; Max-Age=0; Max-Age=60",
				"del7=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60",
				"vid=evil; Path=/",
				"big=" + big + "; Path=/",
				"okbig=" + okBig + "; Path=/",
			} {
				h.Add("Set-Cookie", l)
			}
		case "/again":
			h.Add("Set-Cookie", "vid=evil; Path=/")
			h.Add("Set-Cookie", "session=alice")
		}
	})
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session del* big okbig
		encrypt cart
	}
	reverse_proxy `+up.Addr)
	sc, ec := signCodec(t), encryptCodec(t)

	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	got := resp.Header.Values("Set-Cookie")
	checkSetCookies(t, got, []wantLine{
		{name: "session", rest: "; Path=/", plain: "a,b", codec: sc},
		{name: "cart", rest: "; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Path=/shop;  HttpOnly ;SameSite=Strict; Priority=High; Partitioned; Secure", plain: "3-apples", codec: ec},
		{exact: "theme=a,b; Expires=Wed, 21 Oct 2099 07:28:00 GMT"},
		{exact: "del1=; Path=/"},
		{exact: `del2=""; Path=/`},
		{exact: "del3=x; Max-Age=0"},
		{exact: "del4=x; Path=/; max-age=-1"},
		{exact: "del5=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"},
		{name: "del6", rest: "; Max-Age=0; Max-Age=60", plain: "x", codec: sc},
		{name: "del7", rest: "; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60", plain: "x", codec: sc},
		{name: "okbig", rest: "; Path=/", plain: okBig, codec: sc},
		{name: "vid", rest: vidAttrs, codec: sc},
	})
	for _, l := range got {
		if strings.Contains(l, "evil") || strings.Contains(l, "xxxx") || strings.HasPrefix(l, "big=") {
			t.Errorf("a line that must be dropped left Caddy: %.80q", l)
		}
	}

	t.Run("returning visitor: upstream may not set the tracking name", func(t *testing.T) {
		vid := valueOf(got, "vid")
		resp, _ := get(t, http.DefaultClient, ci.URL+"/again", "Cookie", "vid="+vid)
		checkSetCookies(t, resp.Header.Values("Set-Cookie"), []wantLine{{name: "session", plain: "alice", codec: sc}})
	})

	t.Run("the signed values come back plain", func(t *testing.T) {
		c := "session=" + valueOf(got, "session") + "; cart=" + valueOf(got, "cart") + "; okbig=" + valueOf(got, "okbig") + "; del6=" + valueOf(got, "del6")
		get(t, http.DefaultClient, ci.URL+"/back", "Cookie", c)
		r := up.last()
		for name, want := range map[string]string{"session": "a,b", "cart": "3-apples", "okbig": okBig, "del6": "x"} {
			if v, n := upstreamCookie(r, name); v != want || n != 1 {
				t.Errorf("upstream %s = %.40q (x%d), want %.40q", name, v, n, want)
			}
		}
	})
}

// Cookies are signed when the response is written, not when the request arrived: the browser's
// Max-Age starts at the response, and a signature as old as a slow upstream would expire early.
func TestSignedAtResponseTime(t *testing.T) {
	var answered atomic.Int64
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1100 * time.Millisecond) // across at least one second boundary
		answered.Store(time.Now().Unix())
		w.Header().Add("Set-Cookie", "session=alice; Path=/")
	})
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	codec := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{})
	for _, name := range []string{"vid", "session"} {
		lines := setCookies(resp, name)
		if len(lines) != 1 {
			t.Fatalf("%s: Set-Cookie %q", name, resp.Header.Values("Set-Cookie"))
		}
		value := strings.TrimPrefix(strings.SplitN(lines[0], ";", 2)[0], name+"=")
		d, err := codec.Decode(name, value)
		if err != nil {
			t.Fatal(err)
		}
		if d.Signed < answered.Load() {
			t.Errorf("%s signed at %d, before the upstream answered at %d", name, d.Signed, answered.Load())
		}
	}
}

// A route that ends without writing anything still gets its headers rewritten.
func TestNothingWrittenStillRewritten(t *testing.T) {
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		track
	}
	header Set-Cookie "session=plain; Path=/"`)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	if len(setCookies(resp, "vid")) != 1 {
		t.Errorf("no visitor cookie on an empty response: %q", resp.Header.Values("Set-Cookie"))
	}
	for _, l := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, "session=plain") {
			t.Errorf("managed cookie left unsigned: %q", l)
		}
	}
	// Signed, not dropped: one session line whose value decodes to the plain one, attributes
	// kept.
	lines := setCookies(resp, "session")
	if len(lines) != 1 {
		t.Fatalf("want one session Set-Cookie, got %q", resp.Header.Values("Set-Cookie"))
	}
	name, value, rest := splitSetCookie(lines[0])
	if d, err := signCodec(t).Decode(name, value); err != nil || string(d.Value) != "plain" || rest != "; Path=/" {
		t.Errorf("session line %q: want session=<plain signed>; Path=/ (decoded %q, %v)", lines[0], d.Value, err)
	}
}

func TestHostileSetCookieTrailers(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/declared" {
			w.Header().Set("Trailer", "Set-Cookie, X-Checksum")
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		if r.URL.Path == "/declared" {
			w.Header().Add("Set-Cookie", "session=alice; Path=/")
			w.Header().Add("Set-Cookie", "theme=dark; Path=/")
			w.Header().Set("X-Checksum", "abc")
			return
		}
		w.Header().Add(http.TrailerPrefix+"Set-Cookie", "session=alice; Path=/")
		w.Header().Set(http.TrailerPrefix+"X-Checksum", "abc")
	})
	tc := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session
	}
	reverse_proxy `+up.Addr, withTLS())
	for _, proto := range protocols {
		for _, path := range []string{"/declared", "/undeclared"} {
			t.Run(proto+path, func(t *testing.T) {
				resp, body := get(t, tc.client(t, proto), tc.url(proto)+path)
				if body != "body" {
					t.Fatalf("body %q", body)
				}
				if _, ok := resp.Trailer["Set-Cookie"]; ok {
					t.Errorf("Set-Cookie trailer forwarded: %q", resp.Trailer)
				}
				if got := resp.Trailer.Get("X-Checksum"); got != "abc" {
					t.Errorf("other trailer lost: X-Checksum %q (trailers %q)", got, resp.Trailer)
				}
				for _, l := range resp.Header.Values("Set-Cookie") {
					if !strings.HasPrefix(l, "vid=") {
						t.Errorf("unexpected Set-Cookie header %q", l)
					}
				}
				if len(setCookies(resp, "vid")) != 1 {
					t.Errorf("visitor cookie missing: %q", resp.Header.Values("Set-Cookie"))
				}
			})
		}
	}
}

// Clearing a bad __Secure- cookie (or any, on HTTPS) carries Secure, or browsers ignore it.
func TestClearingPrefixedCookieIsSecure(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign __Secure-sess
	}
	reverse_proxy `+up.Addr)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "__Secure-sess=forged")
	sc := setCookies(resp, "__Secure-sess")
	if len(sc) != 1 || sc[0] != "__Secure-sess=; Path=/; Max-Age=0; Secure" {
		t.Errorf("clearing line %q", sc)
	}
}

func TestHostileCacheControl(t *testing.T) {
	// The upstream sets each query parameter as a response header.
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		for k, v := range r.URL.Query() {
			w.Header()[k] = v
		}
	})
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	c := newClient(t)
	get(t, c, ci.URL+"/")
	vid := "vid=" + jarValue(t, c, ci.URL, "vid")
	cases := []struct {
		name, cookie string
		upstream     map[string]string // response headers the upstream sets
		want         map[string]string // what the client gets ("" for absent)
		added        bool
	}{
		{"new visitor, public", "", map[string]string{"Cache-Control": "public, max-age=60"},
			map[string]string{"Cache-Control": "max-age=60, private"}, true},
		{"new visitor, s-maxage", "", map[string]string{"Cache-Control": "s-maxage=600, max-age=60"},
			map[string]string{"Cache-Control": "max-age=60, private"}, true},
		{"new visitor, no Cache-Control", "", nil,
			map[string]string{"Cache-Control": "private", "Cdn-Cache-Control": "", "Surrogate-Control": "", "X-Accel-Expires": ""}, true},
		{"new visitor, no-store left alone", "", map[string]string{"Cache-Control": "no-store"},
			map[string]string{"Cache-Control": "no-store"}, true},
		{"new visitor, already private", "", map[string]string{"Cache-Control": "private, max-age=60"},
			map[string]string{"Cache-Control": "private, max-age=60"}, true},
		{"new visitor, CDN-targeted fields", "", map[string]string{
			"Cache-Control":                "max-age=60",
			"CDN-Cache-Control":            "max-age=600",
			"Cloudflare-CDN-Cache-Control": "public, s-maxage=3600",
			"Surrogate-Control":            `max-age=3600, content="ESI/1.0"`,
			"Edge-Control":                 "!no-store, cache-maxage=1h",
			"X-Accel-Expires":              "600",
		}, map[string]string{
			"Cache-Control":                "max-age=60, private",
			"Cdn-Cache-Control":            "max-age=600, private",
			"Cloudflare-Cdn-Cache-Control": "private",
			"Surrogate-Control":            `content="ESI/1.0", no-store`,
			"Edge-Control":                 "no-store",
			"X-Accel-Expires":              "0",
		}, true},
		{"returning visitor: nothing added", vid, map[string]string{"Cache-Control": "public, max-age=60", "CDN-Cache-Control": "max-age=600", "Surrogate-Control": "max-age=3600", "X-Accel-Expires": "600"},
			map[string]string{"Cache-Control": "public, max-age=60", "Cdn-Cache-Control": "max-age=600", "Surrogate-Control": "max-age=3600", "X-Accel-Expires": "600"}, false},
		{"returning visitor: nothing added, no Cache-Control", vid, nil,
			map[string]string{"Cache-Control": ""}, false},
		{"returning visitor with a forged cookie: clearing added", vid + "; session=admin", map[string]string{"Cache-Control": "public, max-age=60", "CDN-Cache-Control": "max-age=600"},
			map[string]string{"Cache-Control": "max-age=60, private", "Cdn-Cache-Control": "max-age=600, private"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.cookie != "" {
				hdr = []string{"Cookie", tc.cookie}
			}
			q := url.Values{}
			for k, v := range tc.upstream {
				q.Set(k, v)
			}
			resp, _ := get(t, http.DefaultClient, ci.URL+"/?"+q.Encode(), hdr...)
			for field, want := range tc.want {
				if got := strings.Join(resp.Header.Values(field), ", "); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			if added := len(resp.Header.Values("Set-Cookie")) > 0; added != tc.added {
				t.Errorf("module added cookies = %v, want %v: %q", added, tc.added, resp.Header.Values("Set-Cookie"))
			}
		})
	}
}
