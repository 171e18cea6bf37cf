// What the upstream sees, through a real Caddy to a real upstream: the Cookie header rebuilt
// with managed cookies verified and decoded, unmanaged ones verbatim, forged, look-alike and
// smuggled ones removed, too many pairs refused (431); the visitor ID header only as the
// module set it, whatever the client sends or names in Connection; on_invalid reject.

package signedcookies

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

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

// A cookie hidden in an unmanaged pair (read by ASP.NET Core, Python's SimpleCookie, old
// Rack, PHP) never reaches the upstream, and the verified one still does.
func TestSmuggledCookiesThroughCaddy(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		track
	}
	reverse_proxy `+up.Addr)
	c := newClient(t)
	get(t, c, ci.URL+"/")
	vid := jarValue(t, c, ci.URL, "vid")
	id := up.last().Header.Get("X-Visitor-Id")
	for _, smuggled := range []string{"x=1,session=forged", "x=1 vid=forged", `x=1"session=forged`, "session[a]=forged", "vid[]=forged", "session%00=forged"} {
		get(t, http.DefaultClient, ci.URL+"/", "Cookie", "vid="+vid+"; "+smuggled)
		got := up.last().Header.Get("Cookie")
		if strings.Contains(got, "forged") || got != "vid="+id {
			t.Errorf("%q: upstream Cookie %q, want only vid=%s", smuggled, got, id)
		}
	}
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

// on_invalid reject hands handle_errors a request without the forged cookie, and a second
// signed_cookies there (the way to cover error routes) passes the request through untouched.
func TestRejectLeavesNothingForgedForErrorRoutes(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		on_invalid reject
	}
	respond "unreachable"
	handle_errors {
		signed_cookies {
			secret `+testSecret+`
			sign session
			on_invalid reject
		}
		header X-Err {err.status_code}
		reverse_proxy `+up.Addr+`
	}`)
	valid := signedFor(t, "session", "alice")
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session=forged; a=1; other="+valid)
	if resp.Header.Get("X-Err") != "400" {
		t.Fatalf("error %q, want 400 handled by handle_errors", resp.Header.Get("X-Err"))
	}
	if got := up.last().Header.Get("Cookie"); got != "a=1; other="+valid {
		t.Errorf("error route's upstream got Cookie %q", got)
	}
	resp, _ = get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+strings.Repeat("k=v;", 3001))
	if resp.Header.Get("X-Err") != "431" || up.last().Header.Get("Cookie") != "" {
		t.Errorf("431 path: error %q, upstream Cookie %q", resp.Header.Get("X-Err"), up.last().Header.Get("Cookie"))
	}
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("a second pass added cookies: %q", resp.Header.Values("Set-Cookie"))
	}
}
