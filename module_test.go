package signedcookies

import (
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// legacyApp sets plain cookies on /login and nothing elsewhere, like an app that knows
// nothing of signatures.
func legacyApp(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/login" {
		w.Header().Add("Set-Cookie", "session=alice; Path=/; HttpOnly; Priority=High")
		w.Header().Add("Set-Cookie", "cart=3-apples; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
	}
	w.Write([]byte("ok"))
}

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

func mustRing(t testing.TB, secrets ...string) *cookie.KeyRing {
	t.Helper()
	var raw [][]byte
	for _, s := range secrets {
		b, err := cookie.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	r, err := cookie.NewKeyRing(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestForgedCookiesNeverForwarded(t *testing.T) {
	up := startUpstream(t, legacyApp)
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	other := cookie.NewCodec(mustRing(t, otherSecret), cookie.Options{})
	ours := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{})
	otherSigned, _ := other.Encode("session", []byte("admin"))
	renamed, _ := ours.Encode("cart", []byte("admin"))
	valid, _ := ours.Encode("session", []byte("bob"))
	tampered := []byte(valid)
	tampered[len(tampered)/2] ^= 1

	cases := []struct {
		name, cookie, wantSession, wantInvalid string
	}{
		{"plain", "session=admin", "", "session"},
		{"other key", "session=" + otherSigned, "", "session"},
		{"renamed", "session=" + renamed, "", "session"},
		{"tampered", "session=" + string(tampered), "", "session"},
		{"too long", "session=" + strings.Repeat("A", 5000), "", "session"},
		{"valid", "session=" + valid, "bob", ""},
		{"forged first, valid second", "session=admin; session=" + valid, "bob", "session"},
		{"lookalike", "SESSION=x; session=" + valid, "bob", "SESSION"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", tc.cookie)
			r := up.last()
			v, n := upstreamCookie(r, "session")
			if v != tc.wantSession || (tc.wantSession != "" && n != 1) || (tc.wantSession == "" && n != 0) {
				t.Errorf("upstream session = %q (x%d), want %q", v, n, tc.wantSession)
			}
			if _, n := upstreamCookie(r, "SESSION"); n != 0 {
				t.Errorf("look-alike SESSION reached the upstream")
			}
			if !uuidV4.MatchString(r.Header.Get("X-Visitor-Id")) {
				t.Errorf("no visitor ID issued alongside: %q", r.Header.Get("X-Visitor-Id"))
			}
			if tc.wantSession == "" {
				found := false
				for _, l := range resp.Header.Values("Set-Cookie") {
					found = found || strings.HasPrefix(l, "session=;") && strings.Contains(l, "Max-Age=0")
				}
				if !found {
					t.Errorf("invalid session not cleared in the browser: %q", resp.Header.Values("Set-Cookie"))
				}
			}
		})
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

func TestSpoofedIDHeaderRemoved(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies
	reverse_proxy `+up.Addr)
	_, _ = get(t, http.DefaultClient, ci.URL+"/",
		"X-Visitor-Id", "spoof1", "x-visitor-id", "spoof2", "X_Visitor_Id", "spoof3", "X.Visitor.Id", "spoof4",
		"Connection", "X-Visitor-Id, Cookie")
	r := up.last()
	for k, v := range r.Header {
		if isIDHeaderSpelling(k) && (len(v) != 1 || !uuidV4.MatchString(v[0]) || k != "X-Visitor-Id") {
			t.Errorf("upstream got %s: %q, want only the module's ID", k, v)
		}
	}
	if !uuidV4.MatchString(r.Header.Get("X-Visitor-Id")) {
		t.Errorf("module's ID missing upstream (Connection header let reverse_proxy drop it?): %q", r.Header)
	}
	if _, n := upstreamCookie(r, "vid"); n != 1 {
		t.Errorf("upstream Cookie lost vid: %q", r.Header.Values("Cookie"))
	}
}

func TestUnmanagedCookiesUntouched(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", `pref="a b"; Path=/app;  Priority=High ;Secure`)
	})
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
	}
	reverse_proxy `+up.Addr)
	raw := `a=1; b="quoted"; _ga=GA1.2.3; wp-settings-1=x%20y`
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", raw)
	if got := up.last().Header.Get("Cookie"); got != raw {
		t.Errorf("unmanaged Cookie header changed:\n got %q\nwant %q", got, raw)
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 1 || got[0] != `pref="a b"; Path=/app;  Priority=High ;Secure` {
		t.Errorf("unmanaged Set-Cookie changed: %q", got)
	}
	if up.last().Header.Get("X-Visitor-Id") != "" {
		t.Errorf("no track configured, yet an ID was sent")
	}
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
