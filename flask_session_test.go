// flask_session and the itsdangerous format through a real Caddy, real upstreams and the real
// Python libraries (/usr/bin/python3 with Debian's python3-flask and python3-itsdangerous):
// sessions signed by Flask itself (its signing serializer in a subprocess, and a running
// Flask app's login) verified at the edge, their keys exposed to a second upstream; values
// the module signs read by itsdangerous, and values itsdangerous signs read by the module.

package signedcookies

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

var (
	flaskKey      = formatKey("new") // SECRET_KEY
	flaskOldKey   = formatKey("old") // the one before it (SECRET_KEY_FALLBACKS)
	attackerKey   = formatKey("attacker")
	flaskKeyEnv   = "SIGNED_COOKIES_TEST_FLASK_KEY" // what the configs read the new key from
	dangerousSalt = "my-salt"
)

// aged backdates an operation's signature by age.
func aged(op pyOp, age time.Duration) pyOp {
	op["age"] = int64(age / time.Second)
	return op
}

// flipByte changes the byte at i (negative: from the end) to another character of the
// base64url alphabet.
func flipByte(s string, i int) string {
	if i < 0 {
		i += len(s)
	}
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// flaskHeaders returns the request headers whose names read as the prefix X-Flask-Session-
// to a lenient stack (any case, '_' or '.' for '-'), with all their values.
func flaskHeaders(r *http.Request) map[string][]string {
	out := map[string][]string{}
	for k, v := range r.Header {
		if strings.HasPrefix(strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(k)), "x-flask-session-") {
			out[k] = v
		}
	}
	return out
}

// invalidDelta reads how much each caddy_signed_cookies_invalid_total reason grew.
func invalidDelta(before, after map[string]float64) map[string]float64 {
	return reasonDelta("invalid_total", before, after)
}

// reasonDelta reads how much each reason of caddy_signed_cookies_<metric> grew.
func reasonDelta(metric string, before, after map[string]float64) map[string]float64 {
	out := map[string]float64{}
	prefix := "caddy_signed_cookies_" + metric + `{reason="`
	for k, v := range after {
		if strings.HasPrefix(k, prefix) && v != before[k] {
			out[strings.TrimSuffix(strings.TrimPrefix(k, prefix), `"}`)] = v - before[k]
		}
	}
	return out
}

// checkEdgePlaceholders checks what the placeholders of TestFlaskSessionVerifiedAtEdge's
// request_header and header directives gave: the exposed values (as the headers carry them)
// where the session has the key. Where it has not, or no session verified, the placeholder's
// own text is taken as empty here: TestFlaskSessionPlaceholdersWithoutValue pins that case.
func checkEdgePlaceholders(t *testing.T, r *http.Request, resp *http.Response, want map[string]string) {
	t.Helper()
	for _, p := range []struct{ where, got, want string }{
		{"request_header X-Edge-User {http.signed_cookies.flask.user_id}", r.Header.Get("X-Edge-User"), want["X-Flask-Session-User-Id"]},
		{"request_header X-Edge-Prefs {http.signed_cookies.flask.prefs}", r.Header.Get("X-Edge-Prefs"), want["X-Flask-Session-Prefs"]},
		{"header X-Edge-Role {http.signed_cookies.flask.role}", resp.Header.Get("X-Edge-Role"), want["X-Flask-Session-Role"]},
	} {
		if p.want == "" && strings.HasPrefix(p.got, "{http.signed_cookies.flask.") {
			continue
		}
		if p.got != p.want {
			t.Errorf("%s gave %q, want %q", p.where, p.got, p.want)
		}
	}
}

// The placeholder of an exposed key is empty when the request has no value for it: no
// session, an invalid one, or a valid one without the key. Left unknown to the replacer, the
// header and request_header directives (which replace only known placeholders) would send the
// placeholder's own text downstream, a non-empty "user ID" on every anonymous request.
func TestFlaskSessionPlaceholdersWithoutValue(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key `+flaskKey+`
			expose user_id role
			header_prefix off
		}
	}
	request_header X-User {http.signed_cookies.flask.user_id}
	header X-Role {http.signed_cookies.flask.role}
	reverse_proxy `+up.Addr)
	res := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 42}`), flaskSign(attackerKey, `{"user_id": 1, "role": "admin"}`))
	for _, tc := range []struct{ name, cookie, user string }{
		{"valid session without role", "session=" + res[0].Token, "42"},
		{"no session", "", ""},
		{"forged session", "session=" + res[1].Token, ""},
	} {
		var hdr []string
		if tc.cookie != "" {
			hdr = []string{"Cookie", tc.cookie}
		}
		resp, _ := get(t, http.DefaultClient, ci.URL+"/", hdr...)
		if got := up.last().Header.Get("X-User"); got != tc.user {
			t.Errorf("%s: request_header X-User {http.signed_cookies.flask.user_id} gave %q, want %q", tc.name, got, tc.user)
		}
		if got := resp.Header.Get("X-Role"); got != "" {
			t.Errorf("%s: header X-Role {http.signed_cookies.flask.role} gave %q, want empty", tc.name, got)
		}
	}
}

// The edge check with on_invalid drop (the default): real Flask sessions verify (new key,
// old key, compressed, tagged types, nearly expired) and their exposed keys reach the
// upstream as headers and the placeholders, the cookie untouched; forged, expired and
// malformed ones are not forwarded, cleared in the browser and counted by reason; client
// copies of the headers never reach the upstream.
func TestFlaskSessionVerifiedAtEdge(t *testing.T) {
	t.Setenv(flaskKeyEnv, flaskKey)
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key {env.`+flaskKeyEnv+`} `+flaskOldKey+`
			expose user_id role groups prefs since name missing
		}
	}
	header X-Edge-Role {http.signed_cookies.flask.role}
	request_header X-Edge-User {http.signed_cookies.flask.user_id}
	request_header X-Edge-Prefs {http.signed_cookies.flask.prefs}
	reverse_proxy `+up.Addr, withGlobals("metrics"))

	const month = 31 * 24 * time.Hour
	full := `{"user_id": 42, "role": "admin", "groups": ["a", "b"], "prefs": {"theme": "dark", "lang": "de"},
		"since": uuid.UUID("12345678-1234-5678-1234-567812345678"), "name": "Zoë Ünal", "_fresh": True}`
	big := `{"user_id": 42, "role": "admin", "cart": ["item-%d" % i for i in range(400)]}`
	ops := []pyOp{
		flaskSign(flaskKey, full),                                 // 0 valid
		flaskSign(flaskOldKey, full),                              // 1 rotation: the old key
		flaskSign(flaskKey, big),                                  // 2 compressed
		aged(flaskSign(flaskKey, full), month-time.Hour),          // 3 nearly expired: valid
		aged(flaskSign(flaskKey, full), month+time.Hour),          // 4 expired
		flaskSign(attackerKey, `{"user_id": 1, "role": "admin"}`), // 5 another key
		flaskSign(flaskKey, `[1, 2]`),                             // 6 signed, not a session
		flaskSign(flaskKey, `{"user_id": 7, "role": "editor"}`),   // 7 source of a spliced signature
		flaskSign(flaskKey, `{"user_id": 1, "role": "admin"}`),    // 8 payload of the splice
		{"op": "flask_loads", "secret": flaskKey, "max_age": 60},  // 9 Flask reads 0 (filled below)
		aged(flaskSign(flaskKey, full), -24*time.Hour),            // 10 signed in the future
		{"op": "flask_raw", "secret": flaskKey, "payload": `b"." + base64.urlsafe_b64encode(zlib.compress(b"{}", 9)).rstrip(b"=")`}, // 11 compressed empty session
		flaskSign(flaskKey, `{"user_id": 42, "role": "admin\r\nX-Flask-Session-User-Id: 1"}`),                                       // 12 a value no header can carry
	}
	res := dangerousPy(t, ops[:9]...)
	tok := func(i int) string { return res[i].Token }
	if !strings.HasPrefix(tok(2), ".") {
		t.Fatalf("the large session %.40q... is not compressed: the test needs Flask's zlib form", tok(2))
	}
	// Flask reads its own session as the test expects (the oracle is sound).
	ops[9]["token"] = tok(0)
	more := dangerousPy(t, ops[9], ops[10], ops[11], ops[12])
	if m, ok := more[0].Value.(map[string]any); !more[0].OK || !ok || m["user_id"] != 42.0 || m["role"] != "admin" {
		t.Fatalf("Flask reads its session as %+v", more[0])
	}
	future, emptyCompressed, crlf := more[1].Token, more[2].Token, more[3].Token
	// A signature spliced onto another payload (the "re-signed" session of a user who edits
	// theirs): payload and timestamp of one, signature of another.
	i8, i7 := strings.LastIndexByte(tok(8), '.'), strings.LastIndexByte(tok(7), '.')
	spliced := tok(8)[:i8] + tok(7)[i7:]

	wantFull := map[string]string{
		"X-Flask-Session-User-Id": "42",
		"X-Flask-Session-Role":    "admin",
		"X-Flask-Session-Groups":  `["a","b"]`,
		"X-Flask-Session-Prefs":   `{"lang":"de","theme":"dark"}`,
		"X-Flask-Session-Since":   "12345678-1234-5678-1234-567812345678",
		"X-Flask-Session-Name":    "Zoë Ünal",
	}
	wantBig := map[string]string{"X-Flask-Session-User-Id": "42", "X-Flask-Session-Role": "admin"}
	cases := []struct {
		name, token string
		want        map[string]string // exposed headers; nil: invalid
		reason      string            // invalid_total reason
	}{
		{"valid", tok(0), wantFull, ""},
		{"old key (rotation)", tok(1), wantFull, ""},
		{"compressed", tok(2), wantBig, ""},
		{"31 days less an hour old", tok(3), wantFull, ""},
		{"compressed empty session", emptyCompressed, map[string]string{}, ""},
		{"CR LF in a value: not exposed", crlf, map[string]string{"X-Flask-Session-User-Id": "42"}, ""},
		{"expired", tok(4), nil, "expired"},
		{"signed tomorrow", future, nil, "expired"},
		{"other key", tok(5), nil, "bad_mac"},
		{"payload byte flipped", flipByte(tok(0), 3), nil, "bad_mac"},
		{"signature byte flipped", flipByte(tok(0), -5), nil, "bad_mac"},
		{"spliced signature", spliced, nil, "bad_mac"},
		{"signed list", tok(6), nil, "malformed"},
		{"not itsdangerous", "eyJ1c2VyX2lkIjo0Mn0", nil, "malformed"},
		{"plain JSON", `{"user_id":42}`, nil, "malformed"},
		{"truncated", tok(0)[:len(tok(0))-1], nil, "bad_mac"},
	}
	before := scrapeMetrics(t, ci.AdminAddr)
	wantInvalid := map[string]float64{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The client also sends its own copies of the headers: never forwarded.
			resp, _ := get(t, http.DefaultClient, ci.URL+"/", append([]string{"Cookie", "a=1; session=" + tc.token + "; b=2"}, spoofHeaders...)...)
			r := up.last()
			got := map[string]string{}
			for k, v := range flaskHeaders(r) {
				if len(v) != 1 {
					t.Errorf("upstream got %s %q: several values", k, v)
				}
				got[k] = v[0]
			}
			fwd, n := upstreamCookie(r, "session")
			clear := setCookies(resp, "session")
			if tc.want != nil {
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("exposed headers:\n got %q\nwant %q", got, tc.want)
				}
				if fwd != tc.token || n != 1 {
					t.Errorf("the session reached the app as %q (%d copies), want it untouched", fwd, n)
				}
				if len(clear) != 0 {
					t.Errorf("a valid session was answered with %q", clear)
				}
			} else {
				wantInvalid[tc.reason]++
				if len(got) != 0 {
					t.Errorf("an invalid session exposed %q", got)
				}
				if n != 0 {
					t.Errorf("the invalid session was forwarded: %q", fwd)
				}
				if !slices.Equal(clear, []string{"session=; Path=/; Max-Age=0"}) {
					t.Errorf("the invalid session was answered with %q, want it cleared", clear)
				}
			}
			if a, _ := upstreamCookie(r, "a"); a != "1" {
				t.Errorf("the other cookies did not reach the app: %q", r.Header.Values("Cookie"))
			}
			checkEdgePlaceholders(t, r, resp, tc.want)
		})
	}
	got := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr))
	if fmt.Sprint(got) != fmt.Sprint(wantInvalid) {
		t.Errorf("caddy_signed_cookies_invalid_total grew by\n %v\nwant\n %v", got, wantInvalid)
	}

	// No session at all: the client's copies of the headers still go, and nothing is set.
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", spoofHeaders...)
	if h := flaskHeaders(up.last()); len(h) != 0 {
		t.Errorf("without a session the upstream got %q", h)
	}
	checkEdgePlaceholders(t, up.last(), resp, nil)
	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("without a session: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	// A browser's copy of Flask's deletion (an empty value) is no forgery: not counted, and
	// still no client header.
	before = scrapeMetrics(t, ci.AdminAddr)
	get(t, http.DefaultClient, ci.URL+"/", append([]string{"Cookie", "session="}, spoofHeaders...)...)
	if h := flaskHeaders(up.last()); len(h) != 0 {
		t.Errorf("with an empty session the upstream got %q", h)
	}
	if d := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr)); len(d) != 0 {
		t.Errorf("an empty session counted as invalid: %v", d)
	}
}

// A zip bomb in the session cookie costs nothing: unsigned, it is refused on its signature
// before anything is inflated; signed with the real key (by a leaked key, or an app bug), it is
// inflated only up to the cap and refused. Both take about as long as a normal session.
func TestFlaskSessionZipBomb(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key `+flaskKey+`
			expose user_id
		}
	}
	reverse_proxy `+up.Addr, withGlobals("metrics"))
	// 2.9 MB of JSON in under 4 KB of cookie.
	bomb := `b"." + base64.urlsafe_b64encode(zlib.compress(b'{"user_id":"' + b"a" * 2900000 + b'"}', 9)).rstrip(b"=")`
	res := dangerousPy(t,
		flaskSign(flaskKey, `{"user_id": 42, "role": "admin", "cart": ["item-%d" % i for i in range(40)]}`),
		pyOp{"op": "flask_raw", "secret": flaskKey, "payload": bomb},
		pyOp{"op": "flask_raw", "secret": attackerKey, "payload": bomb},
	)
	normal, signedBomb, forgedBomb := res[0].Token, res[1].Token, res[2].Token
	if len(signedBomb) > 4096 || len(signedBomb) < 3000 || signedBomb[0] != '.' {
		t.Fatalf("the bomb is %d bytes", len(signedBomb))
	}
	// The fastest of interleaved requests of each kind (a busy machine only ever adds time),
	// where cost ratios are measured.
	c := secClient(t)
	secTime(t, c, ci.URL+"/", "session="+normal) // warm up the connection
	secTwice(t, func() error {
		if !testskip.Costs() {
			return nil
		}
		d := secFastest(t, c, ci.URL+"/", 15, 2*time.Second, "session="+normal, "session="+signedBomb, "session="+forgedBomb)
		t.Logf("fastest request: normal session %v, signed bomb %v, forged bomb %v", d[0], d[1], d[2])
		for i, name := range []string{"signed bomb", "forged bomb"} {
			if d[i+1] > 4*d[0]+time.Millisecond {
				return fmt.Errorf("%s: %v a request, against %v for a normal session", name, d[i+1], d[0])
			}
		}
		return nil
	})
	before := scrapeMetrics(t, ci.AdminAddr)
	const n = 5
	for range n {
		secTime(t, c, ci.URL+"/", "session="+signedBomb)
		secTime(t, c, ci.URL+"/", "session="+forgedBomb)
	}
	got := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr))
	if want := map[string]float64{"too_long": n, "bad_mac": n}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invalid_total grew by %v, want %v", got, want)
	}
	get(t, c, ci.URL+"/", "Cookie", "session="+signedBomb)
	if _, k := upstreamCookie(up.last(), "session"); k != 0 || len(flaskHeaders(up.last())) != 0 {
		t.Errorf("the bomb reached the app")
	}
}

// on_invalid reject: a bad session is refused with 400 through handle_errors (and cleared
// there, so a stale cookie is not refused until it expires); a valid one and none pass, the
// client's header copies removed either way.
func TestFlaskSessionReject(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key `+flaskKey+`
			expose user_id
			on_invalid reject
		}
	}
	reverse_proxy `+up.Addr+`
	handle_errors {
		respond "refused {err.status_code}" {err.status_code}
	}`, withGlobals("metrics"))
	res := dangerousPy(t,
		flaskSign(flaskKey, `{"user_id": 42}`),
		flaskSign(attackerKey, `{"user_id": 1}`),
		aged(flaskSign(flaskKey, `{"user_id": 42}`), 40*24*time.Hour),
	)
	before := scrapeMetrics(t, ci.AdminAddr)
	for _, tc := range []struct{ name, token, reason string }{
		{"other key", res[1].Token, "bad_mac"},
		{"expired", res[2].Token, "expired"},
		{"malformed", "garbage", "malformed"},
	} {
		n := up.count()
		resp, body := get(t, http.DefaultClient, ci.URL+"/", append([]string{"Cookie", "session=" + tc.token}, spoofHeaders...)...)
		if resp.StatusCode != 400 || body != "refused 400" {
			t.Errorf("%s: %d %q, want 400 through handle_errors", tc.name, resp.StatusCode, body)
		}
		if up.count() != n {
			t.Errorf("%s: the request reached the upstream", tc.name)
		}
		if c := setCookies(resp, "session"); !slices.Equal(c, []string{"session=; Path=/; Max-Age=0"}) {
			t.Errorf("%s: the refusal sets %q, want the session cleared", tc.name, c)
		}
	}
	if got, want := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr)), map[string]float64{"bad_mac": 1, "expired": 1, "malformed": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invalid_total grew by %v, want %v", got, want)
	}
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", append([]string{"Cookie", "session=" + res[0].Token}, spoofHeaders...)...)
	if resp.StatusCode != 200 || up.last().Header.Get("X-Flask-Session-User-Id") != "42" || len(flaskHeaders(up.last())) != 1 {
		t.Errorf("valid session: %d, upstream headers %q", resp.StatusCode, flaskHeaders(up.last()))
	}
	resp, _ = get(t, http.DefaultClient, ci.URL+"/", spoofHeaders...)
	if resp.StatusCode != 200 || len(flaskHeaders(up.last())) != 0 {
		t.Errorf("no session: %d, upstream headers %q", resp.StatusCode, flaskHeaders(up.last()))
	}
}

// on_invalid pass: the app decides. A bad session reaches it as it is, with nothing exposed
// and nothing cleared; client header copies are still removed; a valid one is exposed as
// always. A custom cookie name, salt and header prefix, and max_age, are honoured.
func TestFlaskSessionPass(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session app_session {
			secret_key `+flaskKey+`
			salt other-salt
			max_age 1h
			expose user_id
			header_prefix X-App-
			on_invalid pass
		}
	}
	reverse_proxy `+up.Addr, withGlobals("metrics"))
	sign := func(session string) pyOp {
		op := flaskSign(flaskKey, session)
		op["salt"] = "other-salt"
		return op
	}
	res := dangerousPy(t,
		sign(`{"user_id": 42}`),
		flaskSign(flaskKey, `{"user_id": 43}`), // Flask's default salt: not this app's
		aged(sign(`{"user_id": 44}`), 2*time.Hour),
		aged(sign(`{"user_id": 45}`), 30*time.Minute),
	)
	spoof := []string{"X-App-User-Id", "1", "x_app_user_id", "2", "X-Flask-Session-User-Id", "3"}
	before := scrapeMetrics(t, ci.AdminAddr)
	for _, tc := range []struct{ name, token, want string }{
		{"valid", res[0].Token, "42"},
		{"30 minutes old", res[3].Token, "45"},
		{"default salt", res[1].Token, ""},
		{"older than max_age", res[2].Token, ""},
		{"malformed", "garbage", ""},
	} {
		resp, _ := get(t, http.DefaultClient, ci.URL+"/", append([]string{"Cookie", "app_session=" + tc.token}, spoof...)...)
		r := up.last()
		if v, n := upstreamCookie(r, "app_session"); v != tc.token || n != 1 {
			t.Errorf("%s: the app got app_session=%q (%d), want it as sent", tc.name, v, n)
		}
		var app []string
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(k, "_", "-")), "x-app-") {
				app = append(app, k+": "+strings.Join(v, ","))
			}
		}
		want := []string{}
		if tc.want != "" {
			want = []string{"X-App-User-Id: " + tc.want}
		}
		if !slices.Equal(append([]string{}, app...), want) {
			t.Errorf("%s: the app got %q, want %q", tc.name, app, want)
		}
		if h := r.Header.Get("X-Flask-Session-User-Id"); h != "3" {
			t.Errorf("%s: a header outside the prefix is not the module's: X-Flask-Session-User-Id %q, want the client's 3", tc.name, h)
		}
		if c := resp.Header.Values("Set-Cookie"); len(c) != 0 {
			t.Errorf("%s: Set-Cookie %q", tc.name, c)
		}
	}
	// The docs say an invalid session is "logged and counted as any invalid cookie", pass
	// included: an operator watching invalid_total sees the forgeries the app is left with.
	got := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr))
	if want := map[string]float64{"bad_mac": 1, "expired": 1, "malformed": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("on_invalid pass: invalid_total grew by %v, want %v (FlaskSession.OnInvalid: \"Logged and counted as any invalid cookie\")", got, want)
	}
}

// A real Flask app's login flows through Caddy to a second upstream that knows nothing of
// Flask (the strangler fig): /old/* is the Flask app, /new/* a Go service that reads only
// X-Flask-Session-User-Id. The browser logs in on the old app through Caddy; its cookies then
// carry the user to the new service. Logout, forgery and header spoofing end it.
func TestFlaskSessionRealAppToSecondUpstream(t *testing.T) {
	t.Setenv("FLASK_SECRET_KEY", flaskKey)
	app := startFlask(t)
	newSvc := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Flask-Session-User-Id"); id != "" {
			fmt.Fprintf(w, "new service: user %s", id)
			return
		}
		fmt.Fprint(w, "new service: anonymous")
	})
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key {env.FLASK_SECRET_KEY}
			expose user_id role
		}
	}
	handle_path /old/* {
		reverse_proxy `+app.Addr+`
	}
	handle /new/* {
		reverse_proxy `+newSvc.Addr+`
	}`, withGlobals("metrics"))
	c := newClient(t)
	u, _ := url.Parse(ci.URL)
	expect := func(step, path, want string, hdr ...string) {
		t.Helper()
		if _, body := get(t, c, ci.URL+path, hdr...); body != want {
			t.Errorf("%s: GET %s said %q, want %q", step, path, body, want)
		}
	}
	expect("before login", "/new/", "new service: anonymous")
	expect("before login, spoofing", "/new/", "new service: anonymous", spoofHeaders...)

	before := scrapeMetrics(t, ci.AdminAddr)
	session, lines := flaskLogin(t, c, ci.URL, ci.URL+"/old", "http://"+app.Addr, "alice")
	if len(lines) != 1 {
		t.Errorf("caddy_signed_cookies_dropped_total grew by %v", reasonDelta("dropped_total", before, scrapeMetrics(t, ci.AdminAddr)))
	} else if !strings.Contains(lines[0], "; Path=/") || !strings.Contains(lines[0], "HttpOnly") || !strings.Contains(lines[0], "Expires=") {
		t.Errorf("login: Set-Cookie %q lost Flask's attributes", lines[0]) // Flask's own line, untouched
	}
	if r := dangerousPy(t, pyOp{"op": "flask_loads", "secret": flaskKey, "token": session, "max_age": 60}); !r[0].OK {
		t.Errorf("the browser's session does not read in Flask: %+v", r[0])
	}
	expect("logged in", "/old/whoami", "user_id=42 role=admin\nX-Flask-Session-Role: admin\nX-Flask-Session-User-Id: 42\n")
	expect("logged in", "/new/", "new service: user 42")
	expect("logged in, spoofing", "/new/", "new service: user 42", spoofHeaders...)
	if h := flaskHeaders(newSvc.last()); fmt.Sprint(h) != fmt.Sprint(map[string][]string{"X-Flask-Session-User-Id": {"42"}, "X-Flask-Session-Role": {"admin"}}) {
		t.Errorf("the new service got %q", h)
	}
	// A permanent Flask session is re-signed on every request it serves (a new timestamp once
	// the second has turned), so the browser's value is the jar's now, not the login's.
	if v, _ := upstreamCookie(newSvc.last(), "session"); v != jarValue(t, c, ci.URL, "session") {
		t.Errorf("the new service got session=%q, want the browser's %q", v, jarValue(t, c, ci.URL, "session"))
	}

	// Bob's session, forged with another key: neither service sees a user, and the
	// browser's copy is cleared.
	forged := dangerousPy(t, flaskSign(attackerKey, `{"user_id": 7, "role": "admin"}`))[0].Token
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: forged, Path: "/"}})
	expect("forged", "/new/", "new service: anonymous")
	if v := jarValue(t, c, ci.URL, "session"); v != "" {
		t.Errorf("forged: the browser still holds session=%q", v)
	}
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: forged, Path: "/"}})
	expect("forged", "/old/whoami", "not logged in\n")

	// Log in again as bob, then out: Flask's deletion passes through, and the user is gone.
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: "", Path: "/", MaxAge: -1}})
	flaskLogin(t, c, ci.URL, ci.URL+"/old", "http://"+app.Addr, "bob")
	expect("bob", "/new/", "new service: user 7")
	resp, _ := postForm(t, c, ci.URL+"/old/logout", nil)
	if lines := setCookies(resp, "session"); len(lines) != 1 || !strings.HasPrefix(lines[0], "session=;") {
		t.Errorf("logout: Set-Cookie %q, want Flask's deletion", lines)
	}
	expect("logged out", "/new/", "new service: anonymous")
	expect("logged out", "/old/whoami", "not logged in\n")
}

// sign <names> { format itsdangerous }: what the upstream sets plain leaves as
// URLSafeSerializer(secret_key, salt).dumps(value), which itsdangerous loads to the original,
// and comes back plain; values itsdangerous signs (a Python service, or the app once it signs
// its own) are accepted, the old key's too; forgeries are dropped and cleared.
func TestItsDangerousSignedCookie(t *testing.T) {
	t.Setenv(flaskKeyEnv, flaskKey)
	const plain = "user:42|role=admin/x"
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			w.Header().Add("Set-Cookie", "my_cookie="+plain+"; Path=/; HttpOnly; SameSite=Lax")
			w.Header().Add("Set-Cookie", "other=plain; Path=/")
		}
		ck, err := r.Cookie("my_cookie")
		if err != nil {
			fmt.Fprint(w, "no my_cookie")
			return
		}
		fmt.Fprintf(w, "my_cookie is %s", ck.Value)
	})
	ci := startCaddy(t, `
	signed_cookies {
		sign my_cookie {
			format itsdangerous
			secret_key {env.`+flaskKeyEnv+`} `+flaskOldKey+`
			salt `+dangerousSalt+`
		}
	}
	reverse_proxy `+up.Addr, withGlobals("metrics"))
	c := newClient(t)
	u, _ := url.Parse(ci.URL)

	resp, _ := get(t, c, ci.URL+"/set")
	lines := setCookies(resp, "my_cookie")
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "; Path=/; HttpOnly; SameSite=Lax") {
		t.Fatalf("Set-Cookie %q, want one line with the attributes kept", lines)
	}
	if o := setCookies(resp, "other"); !slices.Equal(o, []string{"other=plain; Path=/"}) {
		t.Errorf("an unmanaged cookie changed: %q", o)
	}
	signed := jarValue(t, c, ci.URL, "my_cookie")
	if signed == "" || strings.Contains(signed, "user") {
		t.Fatalf("the browser holds my_cookie=%q", signed)
	}
	loads := func(token string, secrets ...string) pyOp {
		return pyOp{"op": "loads", "secrets": secrets, "salt": dangerousSalt, "token": token}
	}
	dumps := func(value, secret, salt string) pyOp {
		return pyOp{"op": "dumps", "secrets": []string{secret}, "salt": salt, "value": value}
	}
	res := dangerousPy(t,
		loads(signed, flaskKey),              // 0 Python reads what the module signed
		loads(signed, flaskOldKey, flaskKey), // 1 with itsdangerous' key list (oldest first)
		pyOp{"op": "loads", "secrets": []string{flaskKey}, "salt": "itsdangerous", "token": signed},       // 2 the salt matters
		dumps("from python", flaskKey, dangerousSalt),                                                     // 3
		dumps("from the old key", flaskOldKey, dangerousSalt),                                             // 4
		dumps("admin", attackerKey, dangerousSalt),                                                        // 5
		dumps("admin", flaskKey, "other-salt"),                                                            // 6
		pyOp{"op": "timed_dumps", "secrets": []string{flaskKey}, "salt": dangerousSalt, "value": "admin"}, // 7
	)
	for i := range 2 {
		if !res[i].OK || res[i].Value != plain {
			t.Errorf("URLSafeSerializer(...).loads(%q) = %+v, want %q", signed, res[i], plain)
		}
	}
	if res[2].OK {
		t.Errorf("itsdangerous read the value with its default salt: %+v", res[2])
	}
	if _, body := get(t, c, ci.URL+"/"); body != "my_cookie is "+plain {
		t.Errorf("return visit: the app said %q", body)
	}

	before := scrapeMetrics(t, ci.AdminAddr)
	for _, tc := range []struct{ name, value, want string }{
		{"signed by Python", res[3].Token, "my_cookie is from python"},
		{"signed by Python with the old key", res[4].Token, "my_cookie is from the old key"},
		{"another key", res[5].Token, ""},
		{"another salt", res[6].Token, ""},
		{"URLSafeTimedSerializer", res[7].Token, ""},
		{"tampered", flipByte(signed, 2), ""},
		{"plain", "admin", ""},
	} {
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "my_cookie", Value: tc.value, Path: "/"}})
		resp, body := get(t, c, ci.URL+"/")
		if tc.want != "" {
			if body != tc.want || len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("%s: the app said %q (Set-Cookie %q), want %q", tc.name, body, resp.Header.Values("Set-Cookie"), tc.want)
			}
			continue
		}
		if body != "no my_cookie" {
			t.Errorf("%s: the app said %q, want the value dropped", tc.name, body)
		}
		if cl := setCookies(resp, "my_cookie"); !slices.Equal(cl, []string{"my_cookie=; Path=/; Max-Age=0"}) {
			t.Errorf("%s: Set-Cookie %q, want it cleared", tc.name, cl)
		}
	}
	got := invalidDelta(before, scrapeMetrics(t, ci.AdminAddr))
	// The URLSafeTimedSerializer value's signature verifies (same key derivation, same salt),
	// its payload does not read as URLSafeSerializer's: malformed, as itsdangerous' BadPayload.
	if want := map[string]float64{"bad_mac": 3, "malformed": 2}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("invalid_total grew by %v, want %v (5 forgeries)", got, want)
	}
}

// A forged itsdangerous value is refused at once. Its keys are the configuration's, not the
// storage key ring's: re-reading storage (what a securecookie value failing its MAC makes the
// auto key ring do, one read at a time, the request waiting) cannot make it verify, so no
// forged itsdangerous value may ask for that. Checked for sign { format itsdangerous } and
// track { format itsdangerous }, with the auto key ring (no secret), as in the contract, next
// to a forged securecookie value on the same server, which does ask.
func TestItsDangerousForgeryNoWait(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		track {
			format itsdangerous
			secret_key `+flaskKey+`
			salt visitor
		}
		sign my_cookie {
			format itsdangerous
			secret_key `+flaskKey+`
			salt `+dangerousSalt+`
		}
		sign session
	}
	reverse_proxy `+up.Addr)
	res := dangerousPy(t,
		pyOp{"op": "dumps", "secrets": []string{attackerKey}, "salt": dangerousSalt, "value": "admin"},
		pyOp{"op": "timed_dumps", "secrets": []string{attackerKey}, "salt": "visitor", "value": "0b6f3c1e-8a52-4d7e-9f10-2c3d4e5f6a7b"},
	)
	forgedSession := encodeFor(t, secCodec(t, secSecret("forger")), "session", "admin")
	c := &http.Client{Timeout: 10 * time.Second}
	get(t, c, ci.URL+"/") // a first request: connections, the key ring
	for _, tc := range []struct {
		name, cookie string
		asks         bool
		n            int
	}{
		{"sign my_cookie", "my_cookie=" + res[0].Token, false, 3},
		{"track", "vid=" + res[1].Token, false, 3},
		{"sign session (securecookie)", "session=" + forgedSession, true, 1},
	} {
		before := onDemandReads()
		for range tc.n {
			get(t, c, ci.URL+"/", "Cookie", tc.cookie)
			name := strings.Split(tc.cookie, "=")[0]
			if v, n := upstreamCookie(up.last(), name); n != 0 && name != "vid" {
				t.Fatalf("%s: the forged value reached the upstream: %q", tc.name, v)
			}
		}
		reads := onDemandReads() - before
		t.Logf("%s: %d on-demand key ring reads for %d forged values", tc.name, reads, tc.n)
		if asked := reads > 0; asked != tc.asks {
			t.Errorf("%s: %d on-demand key ring reads for %d forged values, want them %v", tc.name, reads, tc.n,
				map[bool]string{true: "to ask for one", false: "to ask for none: the format's keys are not in storage"}[tc.asks])
		}
	}
}

// onDemandReads is how many on-demand key ring reads have started, in every ring of the
// process.
func onDemandReads() int {
	n := 0
	rings.Range(func(_, v any) bool {
		n += v.(*keyring.Ring).OnDemandReads()
		return true
	})
	return n
}

// track { format itsdangerous }: the visitor cookie is URLSafeTimedSerializer(secret_key,
// salt).dumps(<UUID>), which a Python service loads with max_age to the ID the upstream saw;
// one Python signed is adopted as it is, an expired one replaced.
func TestItsDangerousVisitorCookie(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		track {
			format itsdangerous
			secret_key `+flaskKey+`
			salt visitor
			max_age 30d
		}
	}
	reverse_proxy `+up.Addr)
	c := newClient(t)
	u, _ := url.Parse(ci.URL)
	get(t, c, ci.URL+"/")
	id := up.last().Header.Get("X-Visitor-Id")
	if !uuidV4.MatchString(id) {
		t.Fatalf("the upstream got X-Visitor-Id %q", id)
	}
	vid := jarValue(t, c, ci.URL, "vid")
	const pyID = "0b6f3c1e-8a52-4d7e-9f10-2c3d4e5f6a7b"
	timed := func(op string, extra pyOp) pyOp {
		o := pyOp{"op": op, "secrets": []string{flaskKey}, "salt": "visitor", "max_age": 30 * 24 * 3600}
		for k, v := range extra {
			o[k] = v
		}
		return o
	}
	res := dangerousPy(t,
		timed("timed_loads", pyOp{"token": vid}),
		timed("timed_dumps", pyOp{"value": pyID}),
		aged(timed("timed_dumps", pyOp{"value": pyID}), 31*24*time.Hour),
	)
	if !res[0].OK || res[0].Value != id {
		t.Errorf("URLSafeTimedSerializer(...).loads(%q, max_age=30d) = %+v, want %q", vid, res[0], id)
	}
	get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got != id {
		t.Errorf("return visit: X-Visitor-Id %q, want %q", got, id)
	}
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "vid", Value: res[1].Token, Path: "/"}})
	resp, _ := get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got != pyID || len(setCookies(resp, "vid")) != 0 {
		t.Errorf("a Python-signed visitor cookie: X-Visitor-Id %q (Set-Cookie %q), want %q kept", got, setCookies(resp, "vid"), pyID)
	}
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "vid", Value: res[2].Token, Path: "/"}})
	get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got == pyID || !uuidV4.MatchString(got) {
		t.Errorf("an expired Python-signed visitor cookie: X-Visitor-Id %q, want a new ID", got)
	}
}

// Config errors name the field: weak itsdangerous keys (short, a repeated pattern, literal or
// from {env.X}) refused with how to make one, never echoing the key; flask_session without
// secret_key; a bad on_invalid; a format other than itsdangerous, in the Caddyfile and JSON.
func TestItsDangerousConfigErrors(t *testing.T) {
	t.Setenv("SIGNED_COOKIES_TEST_WEAK_KEY", "dev")
	t.Setenv("SIGNED_COOKIES_TEST_GOOD_KEY", flaskKey)
	howTo := "secrets.token_hex()"
	cases := []struct {
		name, body string
		want       []string
		secret     string // must not appear in the error
	}{
		{"short key", "sign my_cookie {\n format itsdangerous\n secret_key sixteen-chars-ab\n}",
			[]string{"sign my_cookie", "secret_key 1", "16 bytes", "at least 24", howTo}, "sixteen-chars-ab"},
		{"repeated pattern", "sign my_cookie {\n format itsdangerous\n secret_key " + strings.Repeat("abc1", 10) + "\n}",
			[]string{"sign my_cookie", "secret_key 1", "repeats a short pattern", howTo}, strings.Repeat("abc1", 10)},
		{"one weak key of two", "sign my_cookie {\n format itsdangerous\n secret_key " + flaskKey + " " + strings.Repeat("x", 32) + "\n}",
			[]string{"secret_key 2", "repeats a short pattern"}, strings.Repeat("x", 32)},
		{"weak key from env", "sign my_cookie {\n format itsdangerous\n secret_key {env.SIGNED_COOKIES_TEST_WEAK_KEY}\n}",
			[]string{"sign my_cookie", "secret_key 1", "3 bytes", howTo}, ""},
		{"unset env", "sign my_cookie {\n format itsdangerous\n secret_key {env.SIGNED_COOKIES_TEST_UNSET_KEY}\n}",
			[]string{"secret_key 1"}, ""},
		{"track short key", "track {\n format itsdangerous\n secret_key short\n}",
			[]string{"track", "secret_key 1", "at least 24", howTo}, ""},
		{"no format", "sign my_cookie {\n secret_key " + flaskKey + "\n}", []string{"sign my_cookie", "format"}, flaskKey},
		{"format django", "sign my_cookie {\n format django\n secret_key " + flaskKey + "\n}", []string{"format", "django"}, flaskKey},
		{"track format django", "track {\n format django\n secret_key " + flaskKey + "\n}", []string{"track", "format", "django"}, flaskKey},
		{"no secret_key", "sign my_cookie {\n format itsdangerous\n}", []string{"sign my_cookie", "secret_key"}, ""},
		{"flask_session without secret_key", "flask_session {\n expose user_id\n}", []string{"flask_session", "secret_key"}, ""},
		{"flask_session bad on_invalid", "flask_session {\n secret_key {env.SIGNED_COOKIES_TEST_GOOD_KEY}\n on_invalid ignore\n}",
			[]string{"flask_session", "on_invalid", "ignore"}, ""},
		{"flask_session unset env", "flask_session {\n secret_key {env.SIGNED_COOKIES_TEST_UNSET_KEY}\n}", []string{"flask_session", "secret_key 1"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := loadCaddyErr(t, "signed_cookies {\n"+tc.body+"\n}\nrespond ok")
			if err == nil {
				t.Fatalf("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.secret != "" && strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q echoes the key", err)
			}
		})
	}
	// JSON, which skips the Caddyfile's checks: Provision refuses the same.
	for _, tc := range []struct {
		name, handler string
		want          []string
	}{
		{"format django", `{"handler":"signed_cookies","sign_format":[{"names":["c"],"format":"django","secret_key":["` + flaskKey + `"]}]}`, []string{"format", "django"}},
		{"short key", `{"handler":"signed_cookies","sign_format":[{"names":["c"],"format":"itsdangerous","secret_key":["short"]}]}`, []string{"secret_key 1", "at least 24", howTo}},
		{"flask_session without secret_key", `{"handler":"signed_cookies","flask_session":{"expose":["user_id"]}}`, []string{"flask_session", "secret_key"}},
		{"flask_session on_invalid", `{"handler":"signed_cookies","flask_session":{"secret_key":["` + flaskKey + `"],"on_invalid":"ignore"}}`, []string{"on_invalid", "ignore"}},
	} {
		t.Run("json "+tc.name, func(t *testing.T) {
			err := loadCaddyErr(t, "", withJSON(json.RawMessage(tc.handler)))
			if err == nil {
				t.Fatalf("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// A weak Flask key is the app's own: a warning, not an error (the edge must read what
	// the app signs), and the valid configuration of the contract loads.
	if err := loadCaddyErr(t, "signed_cookies {\n flask_session {\n secret_key dev\n }\n}\nrespond ok"); err != nil {
		t.Errorf("flask_session with the app's weak key: %v", err)
	}
	if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`:0 {
	signed_cookies {
		flask_session {
			secret_key {env.FLASK_SECRET_KEY} {env.FLASK_SECRET_KEY_OLD}
			salt cookie-session
			max_age 31d
			expose user_id role
			header_prefix X-Flask-Session-
			on_invalid drop
		}
		sign my_cookie {
			format itsdangerous
			secret_key {env.FLASK_SECRET_KEY}
			salt my-salt
		}
	}
}`), nil); err != nil {
		t.Errorf("the documented configuration does not adapt: %v", err)
	}
}

// A session key that cannot be part of a header name (a space, non-ASCII) is refused when the
// configuration loads, or handled when requests come (the placeholder only, no header): it
// never turns a valid session into a failed request.
func TestFlaskSessionExposeOddKeys(t *testing.T) {
	up := startUpstream(t, nil)
	site := `
	signed_cookies {
		flask_session {
			secret_key ` + flaskKey + `
			expose user_id "user name" "grüße"
		}
	}
	request_header X-Name {http.signed_cookies.flask.user name}
	reverse_proxy ` + up.Addr
	if err := loadCaddyErr(t, site); err != nil {
		if !strings.Contains(err.Error(), "expose") {
			t.Errorf("refused with %q, which does not name expose", err)
		}
		return
	}
	ci := startCaddy(t, site)
	tok := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 42, "user name": "Ann", "grüße": "hallo"}`))[0].Token
	resp, body := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+tok)
	if r := up.last(); resp.StatusCode != 200 || r == nil || r.Header.Get("X-Flask-Session-User-Id") != "42" {
		t.Errorf("a valid session with the exposed keys \"user name\" and \"grüße\" (accepted at load): %d %q; the upstream got %d requests "+
			"(X-Flask-Session-user name and X-Flask-Session-grüße are no valid header field names: the proxy cannot send the request)",
			resp.StatusCode, body, up.count())
	}
}
