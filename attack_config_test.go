// Configurations that load but cannot do what they say, through a real Caddy load: two rules
// claiming one cookie name (within a handler, or a prefix rule against a rule for the
// prefixed name), itsdangerous rules that let one cookie's value replay as another's,
// settings given twice or out of range, and a placeholder that reads a managed cookie before
// signed_cookies has verified it. Split from attack_test.go: these are about the load.

package signedcookies

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// attackLoad loads site (a site body) with Caddy's log in a file, and returns the warnings it
// logged that mention signed_cookies (each a JSON line) and the load's error.
func attackLoad(t *testing.T, site string) ([]string, error) {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "caddy.log")
	err := loadCaddyErr(t, site, withGlobals(fmt.Sprintf("log {\n\t\toutput file %s\n\t\tformat json\n\t\tlevel INFO\n\t}", logPath)))
	b, rerr := os.ReadFile(logPath)
	if rerr != nil && !os.IsNotExist(rerr) {
		t.Fatal(rerr)
	}
	var warns []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, "signed_cookies") {
			warns = append(warns, l)
		}
	}
	return warns, err
}

// attackRefusal is one configuration that must not load silently.
type attackRefusal struct {
	name  string
	lines string   // signed_cookies lines (secret added)
	want  []string // what the error (or, with warn, a warning) names
	warn  bool     // a warning at load is enough
}

func attackCheckRefusals(t *testing.T, cases []attackRefusal) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warns, err := attackLoad(t, ruleSite("127.0.0.1:9", c.lines))
			if err != nil {
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("refused with %q, which does not name %q", err, w)
					}
				}
				return
			}
			if c.warn {
				for _, l := range warns {
					if containsAll(l, c.want) {
						return
					}
				}
				t.Errorf("loaded with no warning naming %q; want it refused or warned (warnings: %q)\n%s", c.want, warns, c.lines)
				return
			}
			t.Errorf("loaded; want it refused with an error naming %q\n%s", c.want, c.lines)
		})
	}
}

func containsAll(s string, subs []string) bool {
	for _, w := range subs {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// 6. itsdangerous does not sign the cookie's name: under one key and salt, a value signed for
// one cookie verifies as any other. A block naming several cookies (or a glob), or two blocks
// with the same key and salt in one handler, lets the client replay a's value as b; the old
// code loads both.
func TestAttackItsDangerousNameReplayRefused(t *testing.T) {
	block := func(names, salt string) string {
		return "\t\tsign " + names + " {\n\t\t\tformat itsdangerous\n\t\t\tsecret_key " + flaskKey + "\n\t\t\tsalt " + salt + "\n\t\t}\n"
	}
	attackCheckRefusals(t, []attackRefusal{
		{"two names in one block", block("theme_a theme_b", "s1"), []string{"theme_a", "theme_b", "salt"}, false},
		{"a glob", block("pref_*", "s1"), []string{"pref_*", "salt"}, false},
		{"two blocks, one key and salt", block("theme_a", "s1") + block("theme_b", "s1"), []string{"theme_a", "theme_b", "salt"}, false},
	})
	// the same two cookies with a salt each load: the salt tells them apart
	if err := loadCaddyErr(t, ruleSite("127.0.0.1:9", block("theme_a", "s1")+block("theme_b", "s2"))); err != nil {
		t.Errorf("two itsdangerous blocks with their own salts: %v, want them to load", err)
	}
}

// 7. A rule for __Host-session and a prefix rule that makes the browser hold session as
// __Host-session claim one cookie. On the old code this loads and silently cancels the
// signing: the app's Set-Cookie session=alice leaves as __Host-session=alice, unsigned, and a
// client's __Host-session=admin reaches the app as session=admin. Refused at load, naming both.
func TestAttackPrefixAgainstPrefixedRuleRefused(t *testing.T) {
	lines := `
		sign __Host-session
		cookie session {
			prefix __Host-
		}`
	err := loadCaddyErr(t, ruleSite("127.0.0.1:9", lines))
	if err != nil {
		if !strings.Contains(err.Error(), "__Host-session") || !strings.Contains(err.Error(), "prefix") {
			t.Errorf("refused with %q: want it to name both rules (sign __Host-session, cookie session's prefix)", err)
		}
		return
	}
	up := startUpstream(t, scriptedApp(map[string][]string{"/login": {"session=alice; Path=/"}}))
	ci := startCaddy(t, ruleSite(up.Addr, lines))
	resp, _ := get(t, rolloutRaw, ci.URL+"/login")
	get(t, rolloutRaw, ci.URL+"/", "Cookie", "__Host-session=admin")
	v, _ := upstreamCookie(up.last(), "session")
	t.Errorf("sign __Host-session with cookie session { prefix __Host- } loaded; want it refused naming both. "+
		"The app's session now leaves as %q and a client's __Host-session=admin reaches it as session=%q", resp.Header.Values("Set-Cookie"), v)
}

// 8. Configurations that contradict themselves load on the old code: a cookie claimed by two
// rules of different kinds, a split chunk name claimed by sign, unwrap with nothing to
// unwrap, adopt's attributes given twice, split 0, partitioned without Secure, a rule no
// cookie can reach, and a JSON key given twice. Each is refused (or warned, where marked)
// naming the field. (The Caddyfile already refuses the other subdirectives given twice: those
// rows hold the line.)
func TestAttackContradictoryConfigRefused(t *testing.T) {
	flask := "\t\tflask_session {\n\t\t\tsecret_key " + flaskKey + "\n\t\t}\n"
	attackCheckRefusals(t, []attackRefusal{
		{"sign and flask_session", "\t\tsign session\n" + flask, []string{"session", "sign", "flask_session"}, false},
		{"track and flask_session", "\t\ttrack session\n" + flask, []string{"session", "track", "flask_session"}, false},
		{"split chunk claimed by sign", "\t\tsign session session__1\n\t\tcookie session {\n\t\t\tsplit\n\t\t}", []string{"session__1", "split"}, false},
		{"unwrap with nothing signed", "\t\tunwrap\n\t\ttrack", []string{"unwrap"}, true},
		{"max_age twice", "\t\tsign session\n\t\tmax_age 1h\n\t\tmax_age 2h", []string{"max_age"}, false},
		{"realm twice", "\t\tsign session\n\t\trealm a\n\t\trealm b", []string{"realm"}, false},
		{"on_invalid twice", "\t\tsign session\n\t\ton_invalid drop\n\t\ton_invalid reject", []string{"on_invalid"}, false},
		{"track max_age twice", "\t\ttrack {\n\t\t\tmax_age 1h\n\t\t\tmax_age 2h\n\t\t}", []string{"max_age"}, false},
		{"flask_session salt twice", "\t\tflask_session {\n\t\t\tsecret_key " + flaskKey + "\n\t\t\tsalt a\n\t\t\tsalt b\n\t\t}", []string{"salt"}, false},
		{"adopt attributes twice", "\t\tsign session\n\t\tadopt session until " + attackFuture() + " {\n\t\t\tattributes \"Path=/\"\n\t\t\tattributes \"Path=/app\"\n\t\t}", []string{"attributes"}, false},
		{"split 0", "\t\tsign session\n\t\tcookie session {\n\t\t\tsplit 0\n\t\t}", []string{"split"}, false},
		{"partitioned -secure", "\t\tcookie x {\n\t\t\tpartitioned\n\t\t\t-secure\n\t\t}", []string{"partitioned", "-secure"}, false},
		{"dead rule", "\t\tsign * session", []string{"session"}, true},
		{"sign * and encrypt session", "\t\tsign *\n\t\tencrypt session", []string{"session", "sign", "encrypt"}, false},
	})
	// JSON has no subdirectives, and a key given twice is not something a module can see:
	// Caddy decodes a loaded config through maps (its admin API keeps it so) before any
	// module reads its own JSON, so only the last of two keys ever reaches it, as for every
	// Caddy module.
}

// 11. A placeholder that reads a managed cookie ({http.request.cookie.role}) in a handler
// that runs before signed_cookies reads what the client sent, unverified: `vars` is ordered
// before signed_cookies in a site block, and a route runs as written. On the old code this
// loads silently (and the upstream's X-User reads a forged role=admin). The load warns naming
// the placeholder and the order, or refuses it.
func TestAttackPlaceholderBeforeModuleWarns(t *testing.T) {
	for _, c := range []struct{ name, site string }{
		{"vars in a site", `
	vars user {http.request.cookie.role}
	signed_cookies {
		secret ` + testSecret + `
		sign role
	}
	reverse_proxy 127.0.0.1:9 {
		header_up X-User {vars.user}
	}`},
		{"request_header in a route", `
	route {
		request_header X-User {http.request.cookie.role}
		signed_cookies {
			secret ` + testSecret + `
			sign role
		}
		reverse_proxy 127.0.0.1:9
	}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			warns, err := attackLoad(t, c.site)
			want := []string{"http.request.cookie.role", "signed_cookies"}
			if err != nil {
				if !containsAll(err.Error(), want) {
					t.Errorf("refused with %q: want it to name the placeholder and signed_cookies", err)
				}
				return
			}
			for _, l := range warns {
				if containsAll(l, want) {
					return
				}
			}
			t.Errorf("{http.request.cookie.role} read before signed_cookies verifies role: loaded with no warning naming the placeholder and the order (warnings: %q)", warns)
		})
	}
	// and what it lets through: a forged role, read before the module drops it
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	route {
		request_header X-User {http.request.cookie.role}
		signed_cookies {
			secret `+testSecret+`
			sign role
		}
		reverse_proxy `+up.Addr+`
	}`)
	get(t, http.DefaultClient, ci.URL+"/", "Cookie", "role=admin")
	if got := up.last().Header.Get("X-User"); got == "admin" {
		t.Logf("as loaded, the upstream reads X-User: %s from a forged role cookie the module dropped", got)
	}
}
