// Hostile input through a real Caddy to a real upstream (issue 4): nothing forged reaches the
// upstream, nothing unsigned reaches the client. Each test asserts what both ends see.
package signedcookies

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/quic-go/quic-go/http3"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// vidAttrs are the default visitor cookie attributes over plain HTTP.
const vidAttrs = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"

func TestHostileIDHeaderCopies(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track {
			honor_gpc
		}
	}
	reverse_proxy `+up.Addr)
	spoofs := []string{
		"X-Visitor-Id: spoof1",
		"x-visitor-id: spoof2",
		"X-VISITOR-ID: spoof3",
		"X_Visitor_Id: spoof4",
		"x.visitor.id: spoof5",
		"X-Visitor_Id: spoof6",
		"X-Visitor-Id: spoof7",
	}
	onlyModuleID := func(t *testing.T, want string) {
		t.Helper()
		r := up.last()
		for k, vv := range r.Header {
			for _, v := range vv {
				if strings.Contains(v, "spoof") {
					t.Errorf("a client copy reached the upstream: %s: %s", k, v)
				}
			}
			if isIDHeaderSpelling(k) && k != "X-Visitor-Id" {
				t.Errorf("upstream got another spelling of the ID header: %s: %q", k, vv)
			}
		}
		got := r.Header.Values("X-Visitor-Id")
		switch {
		case want == "" && len(got) != 0:
			t.Errorf("upstream X-Visitor-Id = %q, want none", got)
		case want == "any" && (len(got) != 1 || !uuidV4.MatchString(got[0])):
			t.Errorf("upstream X-Visitor-Id = %q, want one new UUID", got)
		case want != "" && want != "any" && (len(got) != 1 || got[0] != want):
			t.Errorf("upstream X-Visitor-Id = %q, want %q", got, want)
		}
	}

	t.Run("new visitor", func(t *testing.T) {
		resp, _ := rawRequest(t, ci, "GET / HTTP/1.1", spoofs...)
		onlyModuleID(t, "any")
		if len(setCookies(resp, "vid")) != 1 {
			t.Errorf("no visitor cookie issued: %q", resp.Header.Values("Set-Cookie"))
		}
	})
	t.Run("returning visitor", func(t *testing.T) {
		c := newClient(t)
		get(t, c, ci.URL+"/")
		id := up.last().Header.Get("X-Visitor-Id")
		lines := append([]string{"Cookie: vid=" + jarValue(t, c, ci.URL, "vid")}, spoofs...)
		rawRequest(t, ci, "GET / HTTP/1.1", lines...)
		onlyModuleID(t, id)
	})
	t.Run("no ID this request (Sec-GPC)", func(t *testing.T) {
		resp, _ := rawRequest(t, ci, "GET / HTTP/1.1", append([]string{"Sec-GPC: 1"}, spoofs...)...)
		onlyModuleID(t, "")
		if _, n := upstreamCookie(up.last(), "vid"); n != 0 {
			t.Errorf("upstream Cookie carries a vid: %q", up.last().Header.Values("Cookie"))
		}
		if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
			t.Errorf("Sec-GPC request got cookies: %q", sc)
		}
	})
}

func TestHostileConnectionNamesProtectedHeaders(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	session := encodeFor(t, signCodec(t), "session", "alice")
	cases := []struct {
		name       string
		connection []string
		otherGone  bool // X-Other named too: reverse_proxy still honours that token
	}{
		{"ID header", []string{"X-Visitor-Id"}, false},
		{"Cookie lower case", []string{"cookie"}, false},
		{"both among others", []string{"keep-alive, Cookie ,x-visitor-id, X-Other"}, true},
		{"underscore spelling", []string{"X_Visitor_Id, COOKIE"}, false},
		{"several Connection lines", []string{"Cookie", "X-Visitor-Id, X-Other"}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := []string{"Cookie: session=" + session, "X-Other: kept?"}
			for _, c := range tc.connection {
				lines = append(lines, "Connection: "+c)
			}
			resp, _ := rawRequest(t, ci, "GET / HTTP/1.1", lines...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			r := up.last()
			id := r.Header.Get("X-Visitor-Id")
			if !uuidV4.MatchString(id) {
				t.Errorf("module's X-Visitor-Id dropped on the way upstream: %q", r.Header)
			}
			if v, n := upstreamCookie(r, "session"); v != "alice" || n != 1 {
				t.Errorf("upstream session = %q (x%d), want alice once; Cookie %q", v, n, r.Header.Values("Cookie"))
			}
			if v, n := upstreamCookie(r, "vid"); v != id || n != 1 {
				t.Errorf("upstream vid = %q (x%d), want %q once", v, n, id)
			}
			if gone := r.Header.Get("X-Other") == ""; gone != tc.otherGone {
				t.Errorf("X-Other removed = %v, want %v (unrelated Connection tokens must keep working)", gone, tc.otherGone)
			}
		})
	}
}

func TestHostileCookieRebuild(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session my_sess sess_*
	}
	reverse_proxy `+up.Addr)
	sc := signCodec(t)
	alice := encodeFor(t, sc, "session", "alice")
	bob := encodeFor(t, sc, "session", "bob")
	mine := encodeFor(t, sc, "my_sess", "m1")
	sessA := encodeFor(t, sc, "sess_a", "a1")
	nbsp := "\u00a0"

	cases := []struct {
		name    string
		lines   []string // Cookie header lines, sent as written
		want    string   // the Cookie header the upstream sees ("" = none)
		cleared []string // managed cookies cleared in the browser
	}{
		{"managed decoded, unmanaged verbatim", []string{`a=1; session=` + alice + `; b="q w"; c=x%20y`}, `a=1; session=alice; b="q w"; c=x%20y`, nil},
		{"case variants", []string{"Session=x; SESSION=" + alice + "; a=1"}, "a=1", nil},
		{"percent-encoded", []string{"%73ession=x; sess%69on=" + alice + "; my%5Fsess=x; a=1"}, "a=1", nil},
		{"leading NBSP", []string{"a=1; " + nbsp + "session=x"}, "a=1", nil},
		{"trailing NBSP", []string{"session" + nbsp + "=x; a=1"}, "a=1", nil},
		{"leading tab is whitespace: the real name, verified", []string{"a=1;\tsession=" + alice}, "a=1; session=alice", nil},
		{"leading tab with a forged value", []string{"a=1;\tsession=admin"}, "a=1", []string{"session"}},
		{"PHP . space [ read as _", []string{"my.sess=x; my sess=x; my[sess=x; MY.SESS=x; my_sess=" + mine}, "my_sess=m1", nil},
		{"a signed value under a look-alike name", []string{"my.sess=" + mine}, "", nil},
		{"glob look-alikes", []string{"sess.a=x; SESS_B=x; sess%5Fc=x; sess_a=" + sessA}, "sess_a=a1", nil},
		{"unparsable pairs", []string{"noequals; =x; session; a=1; ;; b=2"}, "a=1; b=2", nil},
		{"duplicates: first valid wins", []string{"session=" + alice + "; session=" + bob}, "session=alice", nil},
		{"duplicates: forged then valid", []string{"session=admin; session=" + bob}, "session=bob", nil},
		{"duplicates: valid then forged", []string{"session=" + alice + "; session=admin"}, "session=alice", nil},
		{"duplicates: same value twice", []string{"session=" + alice + "; session=" + alice}, "session=alice", nil},
		{"several lines joined", []string{"a=1", "session=" + alice + "; b=2", "c=3"}, "a=1; session=alice; b=2; c=3", nil},
		{"duplicates across lines", []string{"session=" + bob, "session=" + alice}, "session=bob", nil},
		{"only a forged cookie", []string{"session=admin"}, "", []string{"session"}},
		{"two forged copies", []string{"session=admin; a=1; session=root"}, "a=1", []string{"session"}},
		{"glob: one valid, another forged", []string{"sess_a=" + sessA + "; sess_b=admin"}, "sess_a=a1", []string{"sess_b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := cookieLines(tc.lines)
			before := up.count()
			resp, _ := rawRequest(t, ci, "GET / HTTP/1.1", lines...)
			if resp.StatusCode != http.StatusOK || up.count() != before+1 {
				t.Fatalf("status %d, upstream calls %d", resp.StatusCode, up.count()-before)
			}
			got := up.last().Header.Values("Cookie")
			if tc.want == "" && len(got) != 0 || tc.want != "" && (len(got) != 1 || got[0] != tc.want) {
				t.Errorf("upstream Cookie = %q, want %q", got, tc.want)
			}
			for _, name := range tc.cleared {
				if n := countLine(resp.Header.Values("Set-Cookie"), name+"=; Path=/; Max-Age=0"); n != 1 {
					t.Errorf("%s cleared %d times in the browser, want once: %q", name, n, resp.Header.Values("Set-Cookie"))
				}
			}
		})
	}

	t.Run("control bytes refused by the server", func(t *testing.T) {
		for _, ws := range []string{"\v", "\f"} {
			before := up.count()
			resp, _ := rawRequest(t, ci, "GET / HTTP/1.1", "Cookie: a=1; "+ws+"session=x")
			if resp.StatusCode != http.StatusBadRequest || up.count() != before {
				t.Errorf("%q: status %d, upstream calls %d; want 400 and none", ws, resp.StatusCode, up.count()-before)
			}
		}
	})
}

// maxCookiePairs is the most pairs a request may carry (Go's own parser stops there too).
const maxCookiePairs = 3000

func TestHostileTooManyPairs(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	// Compact pairs: Caddy's default max_header_size (16 KiB) must still let the 3001st in.
	pairs := func(n int) string { return strings.TrimSuffix(strings.Repeat("a=1;", n), ";") }
	cases := []struct {
		name   string
		lines  []string
		status int
	}{
		{"3000 pairs pass", []string{pairs(maxCookiePairs)}, http.StatusOK},
		{"3001 pairs on one line", []string{pairs(maxCookiePairs + 1)}, http.StatusRequestHeaderFieldsTooLarge},
		{"3001 pairs over two lines", []string{pairs(1500), pairs(1501)}, http.StatusRequestHeaderFieldsTooLarge},
		{"forged managed cookie after 3000 pairs", []string{pairs(maxCookiePairs) + ";session=admin"}, http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lines := cookieLines(tc.lines)
			before := up.count()
			resp, body := rawRequest(t, ci, "GET / HTTP/1.1", lines...)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				if body != "" {
					t.Errorf("body %q: refused by the server, not by the module", body)
				}
				if up.count() != before {
					t.Errorf("upstream was called")
				}
				if sc := resp.Header.Values("Set-Cookie"); len(sc) != 0 {
					t.Errorf("refused request got cookies: %q", sc)
				}
				return
			}
			if _, n := upstreamCookie(up.last(), "a"); n != maxCookiePairs {
				t.Errorf("upstream got %d pairs, want %d", n, maxCookiePairs)
			}
		})
	}
}

func TestHostileOnInvalidReject(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "upstream") })
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session
		on_invalid reject
	}
	reverse_proxy `+up.Addr+`
	handle_errors {
		respond "rejected {err.status_code} [{http.signed_cookies.invalid}] [{http.signed_cookies.visitor_id}]"
	}`)
	alice := encodeFor(t, signCodec(t), "session", "alice")
	many := strings.Repeat("k=v;", maxCookiePairs+1)
	cases := []struct {
		name, cookie string
		status       int
		body         string
		cleared      []string // names the 400 clears in the browser
	}{
		{"no cookie", "", http.StatusOK, "upstream", nil},
		{"valid", "session=" + alice, http.StatusOK, "upstream", nil},
		{"unmanaged unparsable pair", "noequals; a=1", http.StatusOK, "upstream", nil},
		{"forged", "session=admin", http.StatusBadRequest, "rejected 400 [session] []", []string{"session"}},
		{"forged visitor cookie", "vid=" + alice, http.StatusBadRequest, "rejected 400 [vid] []", []string{"vid"}},
		{"look-alike", "SESSION=admin", http.StatusBadRequest, "rejected 400 [SESSION] []", []string{"SESSION"}},
		{"valid then forged copy of another", "session=" + alice + "; sess%69on=admin", http.StatusBadRequest, "rejected 400 [sess%69on] []", []string{"sess%69on"}},
		{"too many pairs", many, http.StatusRequestHeaderFieldsTooLarge, "rejected 431 [] []", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.cookie != "" {
				hdr = []string{"Cookie", tc.cookie}
			}
			before := up.count()
			resp, body := get(t, http.DefaultClient, ci.URL+"/", hdr...)
			if resp.StatusCode != tc.status || body != tc.body {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.status, tc.body)
			}
			called := up.count() != before
			if called != (tc.status == http.StatusOK) {
				t.Errorf("upstream called = %v", called)
			}
			// A browser holding a stale cookie must not be refused until it expires: the 400
			// clears it (a visitor cookie is replaced on the next request, once cleared).
			var cleared []string
			for _, l := range resp.Header.Values("Set-Cookie") {
				if name, rest, _ := strings.Cut(l, "="); strings.HasPrefix(rest, "; Path=/; Max-Age=0") {
					cleared = append(cleared, name)
				}
			}
			if !slices.Equal(cleared, tc.cleared) {
				t.Errorf("cleared %q, want %q", cleared, tc.cleared)
			}
			if tc.name == "valid" {
				if v, n := upstreamCookie(up.last(), "session"); v != "alice" || n != 1 {
					t.Errorf("upstream session = %q (x%d)", v, n)
				}
			}
		})
	}
}

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
	tc := startCaddyTLS(t, "", `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session
	}
	reverse_proxy `+up.Addr)
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

func TestHostileSecureAttribute(t *testing.T) {
	up := startUpstream(t, nil)
	body := `
	signed_cookies {
		secret ` + testSecret + `
	}
	reverse_proxy ` + up.Addr
	secure := func(t *testing.T, resp *http.Response) bool {
		t.Helper()
		sc := setCookies(resp, "vid")
		if len(sc) != 1 {
			t.Fatalf("want one vid cookie, got %q", resp.Header.Values("Set-Cookie"))
		}
		return strings.HasSuffix(sc[0], "; Secure")
	}

	t.Run("untrusted proxy saying https", func(t *testing.T) {
		ci := startCaddy(t, body)
		resp, _ := get(t, http.DefaultClient, ci.URL+"/", "X-Forwarded-Proto", "https")
		if secure(t, resp) {
			t.Errorf("Secure from an untrusted X-Forwarded-Proto")
		}
	})

	tc := startCaddyTLS(t, `
	servers {
		trusted_proxies static private_ranges
	}`, body)
	for _, c := range []struct {
		name, proto, xfp string
		want             bool
	}{
		{"trusted proxy saying https", "h1", "https", true},
		{"trusted proxy saying HTTPS", "h1", " HTTPS", true},
		{"trusted proxy saying http", "h1", "http", false},
		{"trusted proxy, no X-Forwarded-Proto", "h1", "", false},
		{"HTTPS over HTTP/1.1", "h1-tls", "", true},
		{"HTTPS over HTTP/2", "h2", "", true},
		{"HTTPS over HTTP/3", "h3", "", true},
		{"HTTPS whatever a client says", "h2", "http", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var hdr []string
			if c.xfp != "" {
				hdr = []string{"X-Forwarded-Proto", c.xfp}
			}
			resp, _ := get(t, tc.client(t, c.proto), tc.url(c.proto)+"/", hdr...)
			if got := secure(t, resp); got != c.want {
				t.Errorf("Secure = %v, want %v: %q", got, c.want, setCookies(resp, "vid"))
			}
		})
	}
}

func TestHostilePrefixedNamesAndCrossSite(t *testing.T) {
	for _, c := range []struct{ track, want string }{
		{"__Host-vid {\n secure off\n }", "track: secure: a __Host- name requires Secure"},
		{"__Host-vid {\n path /app\n }", "track: name: a __Host- cookie needs path / and no domain"},
		{"__Host-vid {\n domain example.com\n }", "track: name: a __Host- cookie needs path / and no domain"},
		{"__Secure-vid {\n secure off\n }", "track: secure: a __Secure- name requires Secure"},
		{"vid {\n same_site none\n secure off\n }", "track: secure: same_site none requires Secure"},
		{"vid {\n partitioned\n secure off\n }", "track: secure: partitioned requires Secure"},
	} {
		err := loadCaddyErr(t, "signed_cookies {\n secret "+testSecret+"\n track "+c.track+"\n }\n respond ok")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("track %s: load error %v, want one saying %q", strings.Join(strings.Fields(c.track), " "), err, c.want)
		}
	}

	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies /host/* {
		secret `+testSecret+`
		track __Host-vid
	}
	signed_cookies /secure/* {
		secret `+testSecret+`
		track __Secure-vid {
			domain example.com
		}
	}
	signed_cookies /none/* {
		secret `+testSecret+`
		track cross {
			same_site none
		}
	}
	signed_cookies /part/* {
		secret `+testSecret+`
		track chips {
			partitioned
		}
	}
	reverse_proxy `+up.Addr)
	sc := signCodec(t)
	for _, c := range []struct{ path, name, rest string }{
		{"/host/", "__Host-vid", "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure"},
		{"/secure/", "__Secure-vid", "; Path=/; Domain=example.com; Max-Age=31536000; HttpOnly; SameSite=Lax; Secure"},
		{"/none/", "cross", "; Path=/; Max-Age=31536000; HttpOnly; SameSite=None; Secure"},
		{"/part/", "chips", "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax; Partitioned; Secure"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, _ := get(t, http.DefaultClient, ci.URL+c.path)
			checkSetCookies(t, resp.Header.Values("Set-Cookie"), []wantLine{{name: c.name, rest: c.rest, codec: sc}})
		})
	}
}

// --- helpers shared with writer_test.go ---

// rawRequest sends a request written by hand (request line, header lines; Host is added)
// over a fresh TCP connection, so that header spellings, repeats and several Cookie lines
// reach Caddy exactly as written, and reads the response.
func rawRequest(t testing.TB, ci caddyInstance, requestLine string, headerLines ...string) (*http.Response, string) {
	t.Helper()
	conn, addr := dialRaw(t, ci)
	defer conn.Close()
	var b strings.Builder
	b.WriteString(requestLine + "\r\nHost: " + addr + "\r\n")
	for _, l := range headerLines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// dialRaw opens a TCP connection to ci's site with a deadline, for requests written by hand.
func dialRaw(t testing.TB, ci caddyInstance) (net.Conn, string) {
	t.Helper()
	addr := strings.TrimPrefix(ci.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn, addr
}

// cookieLines turns Cookie values into header lines for rawRequest.
func cookieLines(values []string) []string {
	lines := make([]string, len(values))
	for i, v := range values {
		lines[i] = "Cookie: " + v
	}
	return lines
}

// tlsCaddy is a Caddy serving one site body twice: over plain HTTP and over HTTPS with a
// certificate from Caddy's internal CA.
type tlsCaddy struct {
	HTTP, HTTPS string
	roots       *x509.CertPool
}

// protocols are the client protocols the streaming tests run over.
var protocols = []string{"h1", "h1-tls", "h2", "h3"}

// startCaddyTLS runs Caddy in this process with extra global options and siteBody served at
// an http:// and an https:// (tls internal) address, and waits until HTTPS answers.
func startCaddyTLS(t testing.TB, global, siteBody string) tlsCaddy {
	t.Helper()
	storage := t.TempDir()
	httpPort, httpsPort := freePort(t), freePort(t)
	cf := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https disable_redirects
	skip_install_trust
	persist_config off
	storage file_system %s
	log {
		level ERROR
	}
%s
}

http://127.0.0.1:%d {
	bind 127.0.0.1
%s
}

https://127.0.0.1:%d {
	bind 127.0.0.1
	tls internal
%s
}
`, freePort(t), storage, global, httpPort, siteBody, httpsPort, siteBody)
	if err := caddy.Load(adapt(t, cf), true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	tc := tlsCaddy{HTTP: fmt.Sprintf("http://127.0.0.1:%d", httpPort), HTTPS: fmt.Sprintf("https://127.0.0.1:%d", httpsPort)}
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", httpPort))

	// The internal CA and the certificate are made in the background: poll until a
	// verified handshake succeeds.
	addr := strings.TrimPrefix(tc.HTTPS, "https://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		pem, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
		if err == nil {
			tc.roots = x509.NewCertPool()
			tc.roots.AppendCertsFromPEM(pem)
			var conn *tls.Conn
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: tc.roots})
			if err == nil {
				conn.Close()
				return tc
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS on %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tc tlsCaddy) url(proto string) string {
	if proto == "h1" {
		return tc.HTTP
	}
	return tc.HTTPS
}

// client returns a client with a cookie jar speaking proto: "h1" (plain HTTP/1.1), "h1-tls"
// (HTTP/1.1 over TLS), "h2" (HTTP/2 over TLS) or "h3" (HTTP/3 over QUIC).
func (tc tlsCaddy) client(t testing.TB, proto string) *http.Client {
	t.Helper()
	c := newClient(t)
	if proto == "h3" {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.roots}}
		t.Cleanup(func() { tr.Close() })
		c.Transport = &checkProto{tr: tr, major: 3}
		return c
	}
	var p http.Protocols
	switch proto {
	case "h1", "h1-tls":
		p.SetHTTP1(true)
	case "h2":
		p.SetHTTP2(true)
	default:
		t.Fatalf("unknown protocol %q", proto)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.roots}, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	c.Transport = &checkProto{tr: tr, major: map[bool]int{true: 2, false: 1}[proto == "h2"]}
	return c
}

// checkProto fails a round trip that did not use the expected HTTP major version.
type checkProto struct {
	tr    http.RoundTripper
	major int
}

func (c *checkProto) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.tr.RoundTrip(r)
	if err == nil && resp.ProtoMajor != c.major {
		resp.Body.Close()
		return nil, fmt.Errorf("response over %s, want HTTP/%d", resp.Proto, c.major)
	}
	return resp, err
}

func signCodec(t testing.TB) *cookie.Codec {
	return cookie.NewCodec(mustRing(t, testSecret), cookie.Options{})
}

func encryptCodec(t testing.TB) *cookie.Codec {
	return cookie.NewCodec(mustRing(t, testSecret), cookie.Options{Encrypt: true})
}

func encodeFor(t testing.TB, c *cookie.Codec, name, value string) string {
	t.Helper()
	v, err := c.Encode(name, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// wantLine is one expected Set-Cookie line: exact, or name=<value>rest where value decodes
// with codec to plain (a visitor cookie, name vid or track's, decodes to any 16-byte ID
// when plain is empty).
type wantLine struct {
	exact             string
	name, rest, plain string
	codec             *cookie.Codec
}

// checkSetCookies compares the Set-Cookie lines, in order. A managed value must decode to
// the plain value in one step: signed exactly once, never sent plain.
func checkSetCookies(t testing.TB, got []string, want []wantLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("Set-Cookie: got %d lines, want %d:\n%s", len(got), len(want), shortLines(got))
		return
	}
	for i, w := range want {
		line := got[i]
		if w.exact != "" {
			if line != w.exact {
				t.Errorf("Set-Cookie %d = %.120q, want unchanged %q", i, line, w.exact)
			}
			continue
		}
		name, value, rest := splitSetCookie(line)
		if name != w.name || rest != w.rest {
			t.Errorf("Set-Cookie %d = %.120q, want %s=<signed>%s", i, line, w.name, w.rest)
			continue
		}
		d, err := w.codec.Decode(name, value)
		switch {
		case err != nil:
			t.Errorf("Set-Cookie %d (%s) does not decode: %v: %.80q", i, name, err, value)
		case w.plain == "" && len(d.Value) != cookie.VisitorIDLen:
			t.Errorf("Set-Cookie %d (%s) decodes to %d bytes, want a visitor ID", i, name, len(d.Value))
		case w.plain != "" && string(d.Value) != w.plain:
			t.Errorf("Set-Cookie %d (%s) decodes to %.40q, want %.40q", i, name, d.Value, w.plain)
		}
	}
}

func shortLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "\t%.100q\n", l)
	}
	return b.String()
}

// splitSetCookie splits a line at its first '=' and first ';'.
func splitSetCookie(line string) (name, value, rest string) {
	pair, _, _ := strings.Cut(line, ";")
	rest = line[len(pair):]
	name, value, _ = strings.Cut(pair, "=")
	return name, value, rest
}

// valueOf returns the value of the first Set-Cookie line for name.
func valueOf(lines []string, name string) string {
	for _, l := range lines {
		if n, v, _ := splitSetCookie(l); n == name {
			return v
		}
	}
	return ""
}

func countLine(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}
