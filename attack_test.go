// Attacks on what the upstream reads, through a real Caddy: crafted Cookie headers that mix
// adopted plain copies, encoded copies and pairs that need consent; pairs forwarded around the
// check for hidden cookies (a prefixed unsigned cookie, a Flask session passed as it is); a
// client's identity headers through two handlers on one path; and a cookie tossed in by a
// sibling subdomain in front of the valid one. Each test states the behaviour required; the
// comment says how the code before the single-compile redesign fails it.

package signedcookies

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// attackClient sends exactly the headers a test writes: no jar, no redirects, no reuse of a
// connection a previous request may have broken.
func attackClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// attackSend sends a GET with the given header pairs and returns the response (body read),
// or the transport error: a panic in a handler makes net/http drop the connection, which the
// caller reports as a failure of its own rather than a fatal one.
func attackSend(t testing.TB, c *http.Client, rawURL string, hdr ...string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// attackSeen is what the upstream received for one crafted request.
type attackSeen struct {
	sent   string // the client's Cookie header
	cookie string // the upstream's Cookie header, lines joined as a server joins them
	id     string // the upstream's X-Visitor-Id
}

// attackParsers returns the names Python's SimpleCookie and Go's parser read from each
// upstream Cookie header, with the values.
func attackParsers(t testing.TB, seen []attackSeen) (goRead, pyRead []map[string]string) {
	t.Helper()
	var hdrs []string
	for _, s := range seen {
		hdrs = append(hdrs, s.cookie)
		m := map[string]string{}
		r := &http.Request{Header: http.Header{"Cookie": {s.cookie}}}
		for _, c := range r.Cookies() {
			if _, ok := m[c.Name]; !ok {
				m[c.Name] = c.Value
			}
		}
		goRead = append(goRead, m)
	}
	if len(hdrs) == 0 {
		return nil, nil
	}
	return goRead, secSimpleCookie(t, hdrs)
}

// attackFuture is a deadline a year ahead.
func attackFuture() string { return rolloutFuture() }

// 1. A plain copy of an adopted cookie that an encoded copy of the same name overrides is
// taken out of the rebuilt header after every pair was read; the pairs that need consent are
// taken out after that, at offsets recorded before. On the old code the first removal
// (of a pair at the start of the header, which takes the separator after it) shifts the header
// under the offset of the pair right after it, so withholding that pair cuts the wrong bytes:
//
//	Cookie: session=p; theme=v; zz=XXXXXXrole=admin; session=<signed alice>
//
// reaches the upstream as "theme=v; role=admin" (a role it never had a signature for, and
// theme, which needs consent), and a longer plain copy makes the cut run past the header's
// end: the handler panics and the connection drops. The same with unwrap, which adopts every
// plain value. Whatever the header, the upstream must read no cookie the client did not
// validly send: no role, no vid but the module's, nothing that needs consent (none given);
// with Go's parser and Python's SimpleCookie alike; and the request answers 200.
func TestAttackAdoptConsentSpliceDesync(t *testing.T) {
	up := startUpstream(t, nil)
	signedSession := signedFor(t, "session", "alice")
	// Headers laid out so that the stale offsets land on the pairs of the attacker's choice,
	// for plain copies and consent-gated values of several lengths, and with the target at the
	// end of a filler pair (role=admin, a chosen vid) or past the end of the header.
	var headers []string
	for n := 1; n <= 4; n++ {
		p, v := strings.Repeat("p", n), strings.Repeat("v", n)
		filler := strings.Repeat("X", 5+n) // "zz=" + filler is as long as the stale span "; theme=v"
		for _, target := range []string{"role=admin", "vid=00000000-0000-4000-8000-000000000bad"} {
			headers = append(headers,
				"session="+p+"; theme="+v+"; zz="+filler+target+"; session="+signedSession,
				"session="+p+"; theme="+v+"; zz="+filler+target+"; other=1; session="+signedSession)
		}
		headers = append(headers,
			"session="+p+strings.Repeat("p", 20)+"; theme="+v+"; session="+signedSession, // the cut runs past the end
			"session="+p+"; session="+signedSession+"; theme="+v,
			"session="+p+"; theme="+v+"; session="+signedSession+"; zz=XXXXrole=admin",
		)
	}
	for _, mode := range []struct{ name, lines string }{
		{"adopt", "\t\tadopt session until " + attackFuture()},
		{"unwrap", "\t\tunwrap"},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			consent ok
		}
		sign session role
`+mode.lines+`
		cookie session theme {
			needs_consent
		}`))
			c := attackClient(t)
			var seen []attackSeen
			for _, h := range headers {
				n := up.count()
				resp, _, err := attackSend(t, c, ci.URL+"/", "Cookie", h)
				switch {
				case err != nil:
					t.Errorf("Cookie %q: the request failed (%v): a panic in the module drops the connection", h, err)
					continue
				case resp.StatusCode != http.StatusOK:
					t.Errorf("Cookie %q: status %d, want 200", h, resp.StatusCode)
					continue
				case up.count() != n+1:
					t.Errorf("Cookie %q: the request did not reach the upstream", h)
					continue
				}
				r := up.last()
				seen = append(seen, attackSeen{sent: h, cookie: strings.Join(r.Header.Values("Cookie"), "; "), id: r.Header.Get("X-Visitor-Id")})
			}
			goRead, pyRead := attackParsers(t, seen)
			for i, s := range seen {
				var wrong []string
				for _, parser := range []struct {
					name string
					read map[string]string
				}{{"Go", goRead[i]}, {"SimpleCookie", pyRead[i]}} {
					for _, name := range []string{"role", "session", "theme"} {
						if v, ok := parser.read[name]; ok {
							wrong = append(wrong, fmt.Sprintf("%s reads %s=%q", parser.name, name, v))
						}
					}
					if v, ok := parser.read["vid"]; ok && v != s.id {
						wrong = append(wrong, fmt.Sprintf("%s reads vid=%q (the module's ID: %q)", parser.name, v, s.id))
					}
				}
				if len(wrong) > 0 {
					t.Errorf("Cookie %q: the upstream's Cookie %q: %s; want no role (never signed), no session or theme (no consent), no vid but the module's",
						s.sent, s.cookie, strings.Join(wrong, ", "))
				}
			}
		})
	}
}

// 2. Every pair that reaches the upstream passes the check for a managed cookie hidden after
// a byte some parser splits at (' ', ','). On the old code two kinds of pair skip it: (a) a
// cookie with a transparent prefix and no signature, forwarded under its app name as it
// came ("__Host-theme=x session=admin" reaches the app as "theme=x session=admin", which
// SimpleCookie reads as session=admin); (b) a Flask session that fails and is passed to the
// app (on_invalid pass) as it came, with role=admin after a space or comma.
func TestAttackHiddenPairForwarded(t *testing.T) {
	up := startUpstream(t, nil)
	check := func(t *testing.T, ci caddyInstance, hidden string, headers []string) {
		t.Helper()
		c := attackClient(t)
		var seen []attackSeen
		for _, h := range headers {
			n := up.count()
			resp, _, err := attackSend(t, c, ci.URL+"/", "Cookie", h)
			if err != nil || resp.StatusCode != http.StatusOK || up.count() != n+1 {
				t.Errorf("Cookie %q: %v, status %v, reached the upstream %v; want 200 and forwarded", h, err, resp, up.count() == n+1)
				continue
			}
			seen = append(seen, attackSeen{sent: h, cookie: strings.Join(up.last().Header.Values("Cookie"), "; ")})
		}
		goRead, pyRead := attackParsers(t, seen)
		for i, s := range seen {
			if v, ok := pyRead[i][hidden]; ok {
				t.Errorf("Cookie %q: the upstream's Cookie %q reads %s=%q to Python's SimpleCookie", s.sent, s.cookie, hidden, v)
			}
			if v, ok := goRead[i][hidden]; ok {
				t.Errorf("Cookie %q: the upstream's Cookie %q reads %s=%q to Go's parser", s.sent, s.cookie, hidden, v)
			}
			// ASP.NET Core and old Rack split pairs at ',' as well as ';'.
			for _, part := range strings.FieldsFunc(s.cookie, func(r rune) bool { return r == ';' || r == ',' }) {
				if name, v, _ := strings.Cut(strings.TrimSpace(part), "="); name == hidden {
					t.Errorf("Cookie %q: the upstream's Cookie %q reads %s=%q to a parser that splits at ','", s.sent, s.cookie, hidden, v)
				}
			}
		}
	}
	t.Run("prefixed unsigned cookie", func(t *testing.T) {
		ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie theme {
			prefix __Host-
		}`))
		check(t, ci, "session", []string{
			"__Host-theme=x session=admin",
			"__Host-theme=x,session=admin",
			"__Host-theme=x\tsession=admin",
			`__Host-theme="x session=admin"`,
		})
	})
	t.Run("flask session passed", func(t *testing.T) {
		flaskPython(t)
		ci := startCaddy(t, ruleSite(up.Addr, `
		sign role
		flask_session {
			secret_key `+flaskKey+`
			on_invalid pass
		}`))
		check(t, ci, "role", []string{
			"session=junk role=admin",
			"session=junk,role=admin",
			`session="junk role=admin"`,
		})
	})
}

// 3. The strangler fig: a site-wide flask_session and a nested one for /new/* on one request
// path. Where they differ in what reaches the upstream (the fields exposed), the load is
// refused naming both; on the old code it loads (the composition check knows nothing of
// Flask), and with the site-wide one on header_prefix off, the new service reads a
// client's X-Flask-Session-Role: admin. Where they are the same, no client copy of a header
// under the prefix reaches either upstream, with a session or without.
func TestAttackFlaskIdentityHeadersComposed(t *testing.T) {
	flaskPython(t)
	site := func(outer, inner, newAddr, oldAddr string) string {
		return `
	signed_cookies {
		flask_session {
			secret_key ` + flaskKey + `
` + outer + `
		}
	}
	handle /new/* {
		signed_cookies {
			flask_session {
				secret_key ` + flaskKey + `
` + inner + `
			}
		}
		reverse_proxy ` + newAddr + `
	}
	handle {
		reverse_proxy ` + oldAddr + `
	}`
	}
	t.Run("differing: refused", func(t *testing.T) {
		for _, c := range []struct{ name, outer, inner string }{
			{"expose", "\t\t\texpose user_id", "\t\t\t\texpose user_id role"},
			{"header_prefix off", "\t\t\theader_prefix off", "\t\t\t\texpose user_id role"},
			{"on_invalid", "\t\t\texpose user_id role\n\t\t\ton_invalid pass", "\t\t\t\texpose user_id role"},
		} {
			err := loadCaddyErr(t, site(c.outer, c.inner, "127.0.0.1:9", "127.0.0.1:9"))
			if err == nil {
				t.Errorf("%s: two flask_session handlers on /new/* that differ (%s) loaded; want the load refused naming both", c.name, c.name)
				continue
			}
			msg := err.Error()
			if strings.Count(msg, "flask_session") < 2 {
				t.Errorf("%s: error %q does not name both flask_session handlers", c.name, msg)
			}
		}
	})
	t.Run("identical: client headers never reach the upstream", func(t *testing.T) {
		newSvc, old := startUpstream(t, nil), startUpstream(t, nil)
		same := "\t\t\texpose user_id role"
		ci := startCaddy(t, site(same, same, newSvc.Addr, old.Addr))
		res := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 7}`), flaskSign(flaskKey, `{"user_id": 7, "role": "editor"}`))
		spoof := []string{"X-Flask-Session-Role", "admin", "x_flask_session_role", "admin", "X-Flask-Session.User-Id", "1"}
		for _, tc := range []struct {
			name, cookie, role string
		}{
			{"no session", "", ""},
			{"session without a role", "session=" + res[0].Token, ""},
			{"session with a role", "session=" + res[1].Token, "editor"},
			{"forged session", "session=" + flipByte(res[1].Token, -3), ""},
		} {
			for _, path := range []string{"/new/x", "/old"} {
				hdr := slices.Clone(spoof)
				if tc.cookie != "" {
					hdr = append(hdr, "Cookie", tc.cookie)
				}
				resp, _, err := attackSend(t, attackClient(t), ci.URL+path, hdr...)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("%s %s: %v %v", tc.name, path, err, resp)
					continue
				}
				up := newSvc
				if path == "/old" {
					up = old
				}
				got := flaskHeaders(up.last())
				var want map[string][]string
				if tc.role != "" {
					want = map[string][]string{"X-Flask-Session-Role": {tc.role}, "X-Flask-Session-User-Id": {"7"}}
				} else if tc.cookie != "" && tc.name != "forged session" {
					want = map[string][]string{"X-Flask-Session-User-Id": {"7"}}
				}
				if fmt.Sprint(got) != fmt.Sprint(want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("%s %s: the upstream got %q, want %q (never a client's copy)", tc.name, path, got, want)
				}
			}
		}
	})
}

// 10. A sibling subdomain can toss a cookie of the same name in front of the site's own
// (browsers send the one with the longer Path, or the older one, first). With on_invalid
// reject, a forged copy next to a valid one is dropped, not rejected: the request answers 200,
// the upstream reads the valid value, and nothing deletes the valid cookie in the browser. On
// the old code the forged copy fails first and the request gets 400 (and the valid Flask
// session, read second, is a duplicate: not forwarded either).
func TestAttackTossedCookieBeforeValid(t *testing.T) {
	up := startUpstream(t, nil)
	check := func(t *testing.T, ci caddyInstance, name, valid, want string, tossed []string) {
		t.Helper()
		for _, bad := range tossed {
			for _, order := range []struct{ label, hdr string }{
				{"tossed first", name + "=" + bad + "; " + name + "=" + valid},
				{"valid first", name + "=" + valid + "; " + name + "=" + bad},
			} {
				what := fmt.Sprintf("%s (%s=%.24q… next to the valid one)", order.label, name, bad)
				n := up.count()
				resp, _, err := attackSend(t, attackClient(t), ci.URL+"/", "Cookie", order.hdr)
				if err != nil || resp.StatusCode != http.StatusOK {
					status := 0
					if resp != nil {
						status = resp.StatusCode
					}
					t.Errorf("%s: status %d (%v), want 200: a tossed copy next to a valid one is dropped, not rejected", what, status, err)
					continue
				}
				if up.count() != n+1 {
					t.Errorf("%s: not forwarded", what)
					continue
				}
				if v, k := upstreamCookie(up.last(), name); v != want || k != 1 {
					t.Errorf("%s: the upstream read %s=%.40q (x%d), want the valid %.40q once", what, name, v, k, want)
				}
				for _, l := range setCookies(resp, name) {
					t.Errorf("%s: Set-Cookie %q: the valid cookie must not be deleted or replaced", what, l)
				}
			}
		}
	}
	t.Run("sign", func(t *testing.T) {
		ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		on_invalid reject`))
		check(t, ci, "session", signedFor(t, "session", "alice"), "alice", []string{
			"forged",
			signedFor(t, "other", "mallory"),
			encodeFor(t, secCodec(t, otherSecret), "session", "mallory"),
		})
	})
	t.Run("flask_session", func(t *testing.T) {
		res := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 42}`), flaskSign(attackerKey, `{"user_id": 1}`))
		ci := startCaddy(t, ruleSite(up.Addr, `
		flask_session {
			secret_key `+flaskKey+`
			expose user_id
			on_invalid reject
		}`))
		check(t, ci, "session", res[0].Token, res[0].Token, []string{"forged", res[1].Token})
		// the exposed field is the valid session's
		n := up.count()
		resp, _, err := attackSend(t, attackClient(t), ci.URL+"/", "Cookie", "session="+res[1].Token+"; session="+res[0].Token)
		if err == nil && resp.StatusCode == http.StatusOK && up.count() == n+1 {
			if got := up.last().Header.Get("X-Flask-Session-User-Id"); got != "42" {
				t.Errorf("tossed Flask session first: X-Flask-Session-User-Id %q, want the valid session's 42", got)
			}
		}
	})
}
