// The visitor cookie through a real Caddy: issued to a new visitor and seen by the upstream
// (header and Cookie), kept on return, replaced when tampered with, its attributes (Secure
// on HTTPS or behind a trusted proxy, __Host-/__Secure- names, SameSite=None, Partitioned).

package signedcookies

import (
	"net/http"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestVisitorAndUpstreamCookies(t *testing.T) {
	up := startUpstream(t, legacyApp)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session
		encrypt cart
	}
	reverse_proxy `+up.Addr)
	c := newClient(t)

	// First visit: a new ID, seen by the upstream in the header and its Cookie header.
	resp, _ := get(t, c, ci.URL+"/")
	sc := setCookies(resp, "vid")
	if len(sc) != 1 {
		t.Fatalf("first visit: want one vid Set-Cookie, got %q", resp.Header.Values("Set-Cookie"))
	}
	for _, attr := range []string{"; Path=/", "; Max-Age=31536000", "; HttpOnly", "; SameSite=Lax"} {
		if !strings.Contains(sc[0], attr) {
			t.Errorf("vid cookie %q lacks %q", sc[0], attr)
		}
	}
	if strings.Contains(sc[0], "Secure") {
		t.Errorf("plain HTTP request got a Secure cookie: %q", sc[0])
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "private" {
		t.Errorf("Cache-Control = %q, want private", cc)
	}
	id := up.last().Header.Get("X-Visitor-Id")
	if !uuidV4.MatchString(id) {
		t.Fatalf("upstream X-Visitor-Id %q is not a v4 UUID", id)
	}
	if v, n := upstreamCookie(up.last(), "vid"); v != id || n != 1 {
		t.Errorf("upstream Cookie vid = %q (x%d), want %q once", v, n, id)
	}
	signed := jarValue(t, c, ci.URL, "vid")
	if signed == "" || strings.Contains(signed, id) {
		t.Fatalf("client holds %q for vid, want a signed value", signed)
	}

	// Return visit: same ID, nothing set again.
	resp, _ = get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got != id {
		t.Errorf("return visit: ID %q, want %q", got, id)
	}
	if sc := setCookies(resp, "vid"); len(sc) != 0 {
		t.Errorf("return visit re-set the cookie: %q", sc)
	}
	if resp.Header.Get("Cache-Control") != "" {
		t.Errorf("return visit without new cookie got Cache-Control %q", resp.Header.Get("Cache-Control"))
	}

	// The upstream's cookies leave signed or encrypted, attributes kept byte for byte.
	resp, _ = get(t, c, ci.URL+"/login")
	lines := resp.Header.Values("Set-Cookie")
	if len(lines) != 3 {
		t.Fatalf("login: want 3 Set-Cookie lines, got %q", lines)
	}
	if !strings.HasSuffix(lines[0], "; Path=/; HttpOnly; Priority=High") || strings.HasPrefix(lines[0], "session=alice") {
		t.Errorf("session line %q: want a signed value and the attributes untouched", lines[0])
	}
	if !strings.HasSuffix(lines[1], "; Path=/") || strings.Contains(lines[1], "apples") {
		t.Errorf("cart line %q: want an encrypted value", lines[1])
	}
	if lines[2] != "theme=dark; Path=/" {
		t.Errorf("unmanaged line changed: %q", lines[2])
	}
	sess := jarValue(t, c, ci.URL, "session")
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode("session", sess)
	if err != nil || string(d.Value) != "alice" {
		t.Errorf("client's session %q does not decode to alice with the secret: %v", sess, err)
	}

	// Next request: the upstream reads its plain values.
	get(t, c, ci.URL+"/")
	r := up.last()
	for name, want := range map[string]string{"session": "alice", "cart": "3-apples", "theme": "dark", "vid": id} {
		if v, n := upstreamCookie(r, name); v != want || n != 1 {
			t.Errorf("upstream %s = %q (x%d), want %q once", name, v, n, want)
		}
	}
}

func TestTamperedVisitorCookieGetsNewID(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
	}
	reverse_proxy `+up.Addr)
	c := newClient(t)
	get(t, c, ci.URL+"/")
	id := up.last().Header.Get("X-Visitor-Id")
	v := jarValue(t, c, ci.URL, "vid")
	b := []byte(v)
	b[5] ^= 2
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "vid="+string(b))
	got := up.last().Header.Get("X-Visitor-Id")
	if got == id || !uuidV4.MatchString(got) {
		t.Errorf("tampered cookie: upstream ID %q, want a new one (old %q)", got, id)
	}
	if len(setCookies(resp, "vid")) != 1 {
		t.Errorf("tampered cookie: no new vid cookie: %q", resp.Header.Values("Set-Cookie"))
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

	tc := startCaddy(t, body, withTLS(), withGlobals(quietLog+"\n\tservers {\n\t\ttrusted_proxies static private_ranges\n\t}"))
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
