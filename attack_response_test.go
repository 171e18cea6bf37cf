// Attacks on what the client receives, through a real Caddy: Set-Cookie lines that leave
// around the consent gate (an adoption's upgrade, an error route, a Flask session), an error
// route that answers with the app's cookies and no signed_cookies of its own, and a handler
// that replaces a Set-Cookie line after the module rewrote the headers (HTTP/3 sends the
// header map as it is at the first body write). Split from attack_test.go: that file is about
// what the upstream reads.

package signedcookies

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// attackIsDeletion reports whether a Set-Cookie line deletes its cookie (an empty value,
// Max-Age<=0, or an Expires in the past): what a consent gate lets through.
func attackIsDeletion(line string) bool {
	c, err := http.ParseSetCookie(line)
	if err != nil {
		return false
	}
	return c.Value == "" || c.MaxAge < 0 || !c.Expires.IsZero() && c.Expires.Before(time.Now())
}

// attackStored lists the response's Set-Cookie lines for name that store a value.
func attackStored(resp *http.Response, name string) []string {
	var out []string
	for _, l := range setCookies(resp, name) {
		if !attackIsDeletion(l) {
			out = append(out, l)
		}
	}
	return out
}

// attackBlock is a signed_cookies block with the test secret and the given lines.
func attackBlock(lines string) string {
	return "\tsigned_cookies {\n\t\tsecret " + testSecret + "\n" + lines + "\n\t}\n"
}

// attackConsentLines are the signed_cookies lines of a site whose session cookie (managed by
// sign, adopted with attributes so that a plain value is upgraded) needs consent.
func attackConsentLines(extra string) string {
	return `
		track {
			consent ok
		}
		sign session role
		adopt session until ` + attackFuture() + ` {
			attributes "Path=/; Max-Age=3600"
		}
		cookie session {
			needs_consent
		}` + extra
}

// 4. Every Set-Cookie line that leaves passes the consent gate, not only the upstream's: with
// no consent cookie, no line that stores a cookie marked needs_consent is sent. On the old
// code (a) the upgrade of an adopted plain session is sent without consent (the module's own
// lines skip the gate) and (b) so it is on an error response, where the first handler's
// pending lines are added to the error route's answer; (c) a Flask session marked
// needs_consent is forwarded to the app without consent (it skips the withholding).
func TestAttackConsentEveryBranch(t *testing.T) {
	t.Run("adopt upgrade", func(t *testing.T) {
		up := startUpstream(t, nil)
		ci := startCaddy(t, ruleSite(up.Addr, attackConsentLines("")))
		resp, _ := get(t, rolloutRaw, ci.URL+"/", "Cookie", "session=legacy")
		if l := attackStored(resp, "session"); len(l) != 0 {
			t.Errorf("no consent: the adoption's upgrade is sent: Set-Cookie %q (session needs consent)", l)
		}
		if _, n := upstreamCookie(up.last(), "session"); n != 0 {
			t.Errorf("no consent: the upstream read session: Cookie %q", up.last().Header.Get("Cookie"))
		}
		// with consent the upgrade is sent: the test sees upgrades
		resp, _ = get(t, rolloutRaw, ci.URL+"/", "Cookie", "ok=1; session=legacy")
		if l := attackStored(resp, "session"); len(l) != 1 {
			t.Errorf("with consent: Set-Cookie for session %q, want the upgrade", l)
		}
	})
	t.Run("error route", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		lines := attackConsentLines("")
		ci := startCaddy(t, ruleSite(dead, lines)+`
	handle_errors {
`+attackBlock(lines)+`
		respond "error {err.status_code}" 500
	}`)
		resp, body := get(t, rolloutRaw, ci.URL+"/", "Cookie", "session=legacy")
		if resp.StatusCode != 500 || !strings.HasPrefix(body, "error") {
			t.Fatalf("%d %q, want the error route's answer", resp.StatusCode, body)
		}
		if l := attackStored(resp, "session"); len(l) != 0 {
			t.Errorf("no consent, error route: Set-Cookie %q stores session, which needs consent", l)
		}
	})
	t.Run("on_invalid reject", func(t *testing.T) {
		up := startUpstream(t, nil)
		ci := startCaddy(t, ruleSite(up.Addr, attackConsentLines("\n\t\ton_invalid reject"))+`
	handle_errors {
		respond "refused {err.status_code}" {err.status_code}
	}`)
		for _, hdr := range []string{"session=legacy; role=forged", "role=forged; session=legacy", "session=" + rolloutTamperMAC(t, signedFor(t, "session", "alice"))} {
			resp, _ := get(t, rolloutRaw, ci.URL+"/", "Cookie", hdr)
			if resp.StatusCode != 400 {
				t.Errorf("Cookie %q: status %d, want 400", hdr, resp.StatusCode)
			}
			if l := attackStored(resp, "session"); len(l) != 0 {
				t.Errorf("Cookie %q, no consent, 400: Set-Cookie %q stores session, which needs consent", hdr, l)
			}
		}
	})
	t.Run("flask_session", func(t *testing.T) {
		res := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 42}`))
		token := res[0].Token
		up := startUpstream(t, scriptedApp(map[string][]string{"/login": {"session=" + token + "; Path=/; HttpOnly"}}))
		ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			consent ok
		}
		flask_session {
			secret_key `+flaskKey+`
			expose user_id
		}
		cookie session {
			needs_consent
		}`))
		for _, consent := range []bool{false, true} {
			hdr := "session=" + token
			if consent {
				hdr = "ok=1; " + hdr
			}
			resp, _ := get(t, rolloutRaw, ci.URL+"/login", "Cookie", hdr)
			r := up.last()
			_, n := upstreamCookie(r, "session")
			stored := attackStored(resp, "session")
			if !consent {
				if n != 0 || r.Header.Get("X-Flask-Session-User-Id") != "" {
					t.Errorf("no consent: the upstream read the Flask session (Cookie %.60q, X-Flask-Session-User-Id %q); session needs consent",
						r.Header.Get("Cookie"), r.Header.Get("X-Flask-Session-User-Id"))
				}
				if len(stored) != 0 {
					t.Errorf("no consent: the app's Flask session is sent: Set-Cookie %.80q", stored)
				}
				continue
			}
			if n != 1 || len(stored) != 1 {
				t.Errorf("with consent: the upstream read session %d times, Set-Cookie %.80q; want both to pass", n, stored)
			}
		}
	})
}

// attackErrorApp sets a managed cookie of each kind and answers 200: the error route's
// upstream.
func attackErrorApp(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Set-Cookie", "role=admin; Path=/")
	w.Header().Add("Set-Cookie", "secretval=hunter2; Path=/")
	w.Write([]byte("error page"))
}

// 9. An error route that proxies to the app, with no signed_cookies of its own, answers with
// the app's Set-Cookie lines as written: nothing rewrites them (the first handler's writer is
// not on the error route's path). Such a config is refused at load, naming the error route
// and saying to put signed_cookies in handle_errors; on the old code it loads and the error
// response sends role=admin and secretval=hunter2 plain. With signed_cookies in the error
// route, the app's managed cookies leave signed and encrypted.
func TestAttackErrorRouteWithoutModule(t *testing.T) {
	app := startUpstream(t, attackErrorApp)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	managed := "\t\tsign role\n\t\tencrypt secretval"
	t.Run("refused at load", func(t *testing.T) {
		site := ruleSite(dead, managed) + "\n\thandle_errors {\n\t\treverse_proxy " + app.Addr + "\n\t}"
		err := loadCaddyErr(t, site)
		if err != nil {
			if msg := err.Error(); !strings.Contains(msg, "handle_errors") || !strings.Contains(msg, "signed_cookies") {
				t.Errorf("error %q: want it to name the error route (handle_errors) and say to put signed_cookies in it", msg)
			}
			return
		}
		ci := startCaddy(t, site)
		resp, _ := get(t, rolloutRaw, ci.URL+"/")
		t.Errorf("an error route proxying to the app without signed_cookies loaded; want it refused naming handle_errors. "+
			"An error response now sends: %q", resp.Header.Values("Set-Cookie"))
	})
	t.Run("signed_cookies in the error route", func(t *testing.T) {
		ci := startCaddy(t, ruleSite(dead, managed)+"\n\thandle_errors {\n"+attackBlock(managed)+"\treverse_proxy "+app.Addr+"\n\t}")
		resp, body := get(t, rolloutRaw, ci.URL+"/")
		if body != "error page" {
			t.Fatalf("%d %q, want the error route's answer", resp.StatusCode, body)
		}
		for _, c := range []struct{ name, plain string }{{"role", "admin"}, {"secretval", "hunter2"}} {
			lines := setCookies(resp, c.name)
			if len(lines) != 1 {
				t.Errorf("%s: Set-Cookie %q, want one line", c.name, lines)
				continue
			}
			_, v, _ := splitSetCookie(lines[0])
			codec := signCodec(t)
			if c.name == "secretval" {
				codec = encryptCodec(t)
			}
			if d, err := codec.Decode(c.name, v); err != nil || string(d.Value) != c.plain || strings.Contains(lines[0], c.plain) {
				t.Errorf("%s leaves as %q on an error response: not encoded (%v)", c.name, lines[0], err)
			}
		}
	})
}

func init() {
	caddy.RegisterModule(attackLateCookie{})
	httpcaddyfile.RegisterHandlerDirective("attack_late_cookie", func(httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		return attackLateCookie{}, nil
	})
}

// attackLateCookie is a test-only handler that answers with a managed cookie and then,
// after WriteHeader and before the body, replaces that Set-Cookie line in the header map in
// place (the same number of lines): a handler with this bug exists in the wild more often
// than one would hope, and no stock Caddy handler does it from after the module.
type attackLateCookie struct{}

func (attackLateCookie) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.attack_late_cookie", New: func() caddy.Module { return attackLateCookie{} }}
}

func (attackLateCookie) ServeHTTP(w http.ResponseWriter, _ *http.Request, _ caddyhttp.Handler) error {
	w.Header().Add("Set-Cookie", "session=alice; Path=/")
	w.WriteHeader(http.StatusOK)
	lines := w.Header()["Set-Cookie"]
	for i, l := range lines {
		if strings.HasPrefix(l, "session=") {
			lines[i] = "session=admin; Path=/"
		}
	}
	_, err := w.Write([]byte("ok"))
	return err
}

// 12. The headers are rewritten once, at the final WriteHeader. HTTP/1 and HTTP/2 send the
// header map as it is then; HTTP/3 (quic-go) sends it at the first body write that leaves, or
// when the handler returns. A handler after the module that replaces a Set-Cookie line in
// place after WriteHeader (same count, so the check for lines added late does not see it)
// gets its unsigned line out over HTTP/3 on the old code. No managed cookie leaves unsigned
// over any protocol: a line that changed after the rewrite is dropped or rewritten.
func TestAttackSetCookieReplacedAfterHeaders(t *testing.T) {
	ci := startCaddy(t, `
	route {
		signed_cookies {
			secret `+testSecret+`
			sign session
		}
		attack_late_cookie
	}`, withTLS())
	codec := signCodec(t)
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			resp, _ := get(t, ci.client(t, proto), ci.url(proto)+"/")
			for _, l := range setCookies(resp, "session") {
				_, v, _ := splitSetCookie(l)
				if d, err := codec.Decode("session", v); err != nil {
					t.Errorf("over %s: Set-Cookie %q leaves unsigned (%v): the line replaced after WriteHeader", proto, l, err)
				} else if string(d.Value) != "alice" {
					t.Errorf("over %s: Set-Cookie %q decodes to %q", proto, l, d.Value)
				}
			}
		})
	}
}
