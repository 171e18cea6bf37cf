// The quiet mistakes of a first deployment, each made loud: a flask_session with the wrong
// key, a rollout window years long, a realm set on a live site, reverse_proxy's load
// balancing on the visitor cookie or a header the module does not send, a path matcher that
// leaves part of an app unmanaged, and the config errors a newcomer meets first.

package signedcookies

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const flaskAlarm = "every Flask session fails its signature"

// flaskAlarmLines stops Caddy (so that its log is complete) and counts the alarm's lines.
func flaskAlarmLines(t *testing.T, logPath string) []string {
	t.Helper()
	_ = caddy.Stop()
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(l, flaskAlarm) {
			out = append(out, l)
		}
	}
	return out
}

// awaitFileLog waits until a log file holds want.
func awaitFileLog(t *testing.T, path, want string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("the log never said %q:\n%s", want, b)
		}
	}
}

// A flask_session given another secret_key or salt than the app's fails every session the
// app signs. After flaskAlarmRun of them in a row, with none valid, Caddy logs one error that
// names secret_key and salt, and counts it; more failures within the interval add no line.
// With on_invalid pass (how the Flask recipe starts) the users stay logged in meanwhile.
// With the app's own key, forged sessions between valid ones raise nothing.
func TestFlaskWrongKeyIsAnError(t *testing.T) {
	appKey := formatKey("the app's")
	t.Setenv("FLASK_SECRET_KEY", appKey)
	app := startFlask(t)
	// A session as the app signs it, from a login at the app itself.
	resp, _ := postForm(t, &http.Client{Timeout: 10 * time.Second}, "http://"+app.Addr+"/login", url.Values{"username": {"alice"}})
	lines := setCookies(resp, "session")
	if len(lines) != 1 {
		t.Fatalf("login at the app: Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	session, _, _ := strings.Cut(strings.TrimPrefix(lines[0], "session="), ";")
	forged := dangerousPy(t, flaskSign(formatKey("attacker"), `{"user_id": 42, "role": "admin"}`))[0].Token

	run := func(t *testing.T, block string) (caddyInstance, string) {
		t.Helper()
		logPath := filepath.Join(t.TempDir(), "caddy.log")
		ci := startCaddy(t, "\tsigned_cookies {\n\t\tflask_session {\n"+block+"\n\t\t}\n\t}\n\treverse_proxy "+app.Addr,
			withGlobals(fmt.Sprintf("metrics\n\tlog {\n\t\toutput file %s\n\t\tlevel WARN\n\t}", logPath)))
		return ci, logPath
	}
	whoami := func(t *testing.T, ci caddyInstance, token string) string {
		t.Helper()
		resp, body := get(t, http.DefaultClient, ci.URL+"/whoami", "Cookie", "session="+token)
		if resp.StatusCode != 200 {
			t.Fatalf("/whoami answered %d", resp.StatusCode)
		}
		return body
	}
	const metric = "caddy_signed_cookies_flask_key_mismatch_total"

	for _, c := range []struct{ name, block, loggedIn string }{
		{"wrong_secret_key/drop", "\t\t\tsecret_key " + formatKey("not the app's"), "not logged in\n"},
		{"wrong_secret_key/pass", "\t\t\tsecret_key " + formatKey("not the app's") + "\n\t\t\ton_invalid pass", "user_id=42 role=admin\n"},
		{"wrong_salt/pass", "\t\t\tsecret_key " + appKey + "\n\t\t\tsalt session\n\t\t\ton_invalid pass", "user_id=42 role=admin\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci, logPath := run(t, c.block)
			before := scrapeMetrics(t, ci.AdminAddr)[metric]
			for i := range flaskAlarmRun - 1 {
				if body := whoami(t, ci, session); body != c.loggedIn {
					t.Fatalf("request %d: the app said %q, want %q", i+1, body, c.loggedIn)
				}
			}
			if b, _ := os.ReadFile(logPath); strings.Contains(string(b), flaskAlarm) {
				t.Fatalf("alarm after %d failed sessions, want it at %d:\n%s", flaskAlarmRun-1, flaskAlarmRun, b)
			}
			for range flaskAlarmRun + 5 {
				whoami(t, ci, session)
			}
			awaitFileLog(t, logPath, flaskAlarm)
			if got := scrapeMetrics(t, ci.AdminAddr)[metric] - before; got != 1 {
				t.Errorf("%s grew by %v, want 1", metric, got)
			}
			alarms := flaskAlarmLines(t, logPath)
			if len(alarms) != 1 {
				t.Fatalf("%d alarm lines, want 1 per interval:\n%s", len(alarms), strings.Join(alarms, "\n"))
			}
			for _, want := range []string{`"level":"error"`, "secret_key", "salt", `"cookie":"session"`, "on_invalid pass"} {
				if !strings.Contains(alarms[0], want) {
					t.Errorf("the alarm does not say %q:\n%s", want, alarms[0])
				}
			}
		})
	}

	t.Run("fixed/forged_between_valid", func(t *testing.T) {
		ci, logPath := run(t, "\t\t\tsecret_key "+appKey)
		for range 2 {
			for range flaskAlarmRun - 1 {
				whoami(t, ci, forged)
			}
			if body := whoami(t, ci, session); body != "user_id=42 role=admin\n" {
				t.Fatalf("a valid session: the app said %q", body)
			}
		}
		if alarms := flaskAlarmLines(t, logPath); len(alarms) != 0 {
			t.Errorf("alarm with valid sessions between the forged ones:\n%s", strings.Join(alarms, "\n"))
		}
	})
}

const longWindow = "rollout window longer than the cookies' lifetime"

// A rollout window that outlives the cookies it is for (a deadline years out) is a warning
// naming the field and a date to use instead; one within their lifetime is not.
func TestRolloutWindowLongerThanLifetimeWarns(t *testing.T) {
	soon := time.Now().Add(10 * day).UTC().Format(time.DateOnly)
	for _, c := range []struct{ name, lines, field string }{
		{"adopt_2099", "sign session\n\tadopt session until 2099-01-01", `"field":"adopt session"`},
		{"adopt_past_attributes_max_age", "sign session\n\tadopt session until " + soon + " {\n\t\tattributes \"Path=/; Max-Age=86400\"\n\t}", `"lifetime":"1d"`},
		{"adopt_past_max_age", "sign session\n\tmax_age 7d\n\tadopt session until " + soon, `"lifetime":"7d"`},
		{"adopt_nginx_2099", "track {\n\t\tadopt_nginx uid until 2099-01-01\n\t}", `"field":"track: adopt_nginx uid"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := compWarnings(t, "", "", sc("", "secret "+testSecret, c.lines)+"respond ok\n")
			if !strings.Contains(log, longWindow) || !strings.Contains(log, c.field) || !strings.Contains(log, `"suggested_until":"`) {
				t.Errorf("no warning naming %s and a date:\n%s", c.field, log)
			}
		})
	}
	for _, c := range []struct{ name, lines string }{
		{"adopt_within_max_age", "sign session\n\tadopt session until " + soon},
		{"adopt_nginx_within_400d", "track {\n\t\tadopt_nginx uid until " + soon + "\n\t}"},
	} {
		t.Run("fixed/"+c.name, func(t *testing.T) {
			if log := compWarnings(t, "", "", sc("", "secret "+testSecret, c.lines)+"respond ok\n"); strings.Contains(log, longWindow) {
				t.Errorf("warned:\n%s", log)
			}
		})
	}
}

// The warning about handlers sharing keys without a realm says which site to give one: a
// realm set on a live site invalidates every cookie it issued.
func TestRealmWarningSaysWhichSite(t *testing.T) {
	site := "handle /a/* {\n" + sc("", "secret "+testSecret, "sign session") + "respond a\n}\nhandle {\n" +
		sc("", "secret "+testSecret, "sign session") + "respond b\n}\n"
	log := compWarnings(t, "", "", site)
	for _, want := range []string{sharedKeysWarning, "the site that has no users yet", "setting a realm on a live site invalidates every cookie it issued"} {
		if !strings.Contains(log, want) {
			t.Errorf("the warning does not say %q:\n%s", want, log)
		}
	}
}

// reverse_proxy's lb_policy cookie on the visitor cookie's name can never stick (the module
// keeps the app, reverse_proxy included, from setting that cookie): refused at load, in the
// Caddyfile and in JSON, with the replacement. Another name loads.
func TestLBPolicyCookieOnVisitorCookieRefused(t *testing.T) {
	proxy := "reverse_proxy 127.0.0.1:9 127.0.0.1:10 {\n\tlb_policy cookie %s\n}\n"
	for _, c := range []struct{ name, site, want string }{
		{"default_track", sc("", "secret "+testSecret, "track") + fmt.Sprintf(proxy, "vid"), "lb_policy header X-Visitor-Id"},
		{"renamed_track_and_header", sc("", "secret "+testSecret, "track sid {\n\t\theader X-Client\n\t}") + fmt.Sprintf(proxy, "sid"), "lb_policy header X-Client"},
		{"in_handle", sc("", "secret "+testSecret, "track") + "handle /app/* {\n" + fmt.Sprintf(proxy, "vid") + "}\n", "lb_policy header X-Visitor-Id"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := loadCaddyErr(t, c.site)
			if err == nil {
				t.Fatalf("loaded:\n%s", c.site)
			}
			if !strings.Contains(err.Error(), "lb_policy cookie") || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "reverse_proxy (server") {
				t.Errorf("the error does not name lb_policy cookie, the reverse_proxy and %q: %v", c.want, err)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		rp := []byte(`{"handler":"reverse_proxy","upstreams":[{"dial":"127.0.0.1:9"}],"load_balancing":{"selection_policy":{"policy":"cookie","name":"vid"}}}`)
		err := loadCaddyErr(t, "", withJSON(map[string]any{"secrets": []string{testSecret}}, json.RawMessage(rp)))
		if err == nil || !strings.Contains(err.Error(), "lb_policy cookie vid") {
			t.Errorf("JSON config: %v", err)
		}
	})
	t.Run("fixed/other_name", func(t *testing.T) {
		if err := loadCaddyErr(t, sc("", "secret "+testSecret, "track")+fmt.Sprintf(proxy, "lb")); err != nil {
			t.Errorf("refused: %v", err)
		}
	})
}

// Sticky sessions on the visitor ID work with whatever header the ID travels in: the
// Caddyfile recipe (lb_policy header <track's header>) sends each visitor to one upstream
// from its very first request. lb_policy header X-Visitor-Id with the header renamed or off
// is a warning at load.
func TestStickyOnVisitorHeader(t *testing.T) {
	ups := []*upstream{startUpstream(t, nil), startUpstream(t, nil)}
	ci := startCaddy(t, sc("", "secret "+testSecret, "track {\n\t\theader X-Client\n\t}")+
		"reverse_proxy "+ups[0].Addr+" "+ups[1].Addr+" {\n\tlb_policy header X-Client\n}\n")
	for v := range 12 {
		c := newClient(t)
		first := -1
		for i := range 4 {
			before := []int{ups[0].count(), ups[1].count()}
			get(t, c, ci.URL+"/")
			got := -1
			for j, u := range ups {
				if u.count() > before[j] {
					got = j
				}
			}
			if got < 0 {
				t.Fatal("no upstream saw the request")
			}
			if ups[got].last().Header.Get("X-Client") == "" {
				t.Fatalf("visitor %d request %d: no X-Client upstream", v, i)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("visitor %d: request %d went to upstream %d, the first to %d", v, i, got, first)
			}
		}
	}
	_ = caddy.Stop()
	for _, c := range []struct{ name, track string }{
		{"renamed", "track {\n\t\theader X-Client\n\t}"},
		{"off", "track {\n\t\theader off\n\t}"},
	} {
		t.Run("warns/"+c.name, func(t *testing.T) {
			log := compWarnings(t, "", "", sc("", "secret "+testSecret, c.track)+"reverse_proxy 127.0.0.1:9 127.0.0.1:10 {\n\tlb_policy header X-Visitor-Id\n}\n")
			if !strings.Contains(log, "lb_policy header names the default visitor ID header") {
				t.Errorf("no warning:\n%s", log)
			}
		})
	}
	t.Run("fixed/default", func(t *testing.T) {
		log := compWarnings(t, "", "", sc("", "secret "+testSecret, "track")+"reverse_proxy 127.0.0.1:9 127.0.0.1:10 {\n\tlb_policy header X-Visitor-Id\n}\n")
		if strings.Contains(log, "lb_policy header names") {
			t.Errorf("warned:\n%s", log)
		}
	})
}

const partlyManaged = "an app reached both through signed_cookies and around it"

// A signed_cookies handler whose matcher skips paths that still reach the same app (a
// rewrite sending a skipped path there, or the rest of the site proxied to it) is a warning
// naming the handler and the app; a matcher that leaves nothing of the app unmanaged is not.
func TestPathMatcherLeavingAppUnmanagedWarns(t *testing.T) {
	h := sc("/app/*", "secret "+testSecret, "sign session")
	for _, c := range []struct{ name, site string }{
		{"rewrite_into_matched_path", "rewrite /old/* /app{path}\n" + h + "reverse_proxy 127.0.0.1:9\n"},
		{"rest_of_site_to_same_app", h + "reverse_proxy 127.0.0.1:9\n"},
		{"other_handle_same_app", "handle /app/* {\n" + sc("", "secret "+testSecret, "sign session") + "reverse_proxy 127.0.0.1:9\n}\nhandle {\nreverse_proxy 127.0.0.1:9\n}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := compWarnings(t, "", "", c.site)
			if !strings.Contains(log, partlyManaged) || !strings.Contains(log, `"app":"127.0.0.1:9"`) || !strings.Contains(log, "signed_cookies {sign session}") {
				t.Errorf("no warning naming the handler and the app:\n%s", log)
			}
		})
	}
	for _, c := range []struct{ name, site string }{
		{"no_matcher", "rewrite /old/* /app{path}\n" + sc("", "secret "+testSecret, "sign session") + "reverse_proxy 127.0.0.1:9\n"},
		{"proxy_on_the_same_path", h + "reverse_proxy /app/* 127.0.0.1:9\nrespond 404\n"},
		{"proxy_under_the_path", h + "reverse_proxy /app/api/* 127.0.0.1:9\nrespond 404\n"},
		{"other_app", "handle /app/* {\n" + sc("", "secret "+testSecret, "sign session") + "reverse_proxy 127.0.0.1:9\n}\nhandle {\nreverse_proxy 127.0.0.1:10\n}\n"},
		{"tracking_only", sc("/app/*", "secret "+testSecret, "track") + "reverse_proxy 127.0.0.1:9\n"},
	} {
		t.Run("fixed/"+c.name, func(t *testing.T) {
			if log := compWarnings(t, "", "", c.site); strings.Contains(log, partlyManaged) {
				t.Errorf("warned:\n%s", log)
			}
		})
	}
}

// The errors a newcomer meets first say what a secret is, how to make one and how a config
// names one kept outside it; a block where none goes says so; and a handler is located by
// its site address and matchers.
func TestNewcomerErrors(t *testing.T) {
	t.Setenv("SC_TEST_SET_SECRET", testSecret)
	for _, c := range []struct {
		name, lines string
		want        []string
	}{
		{"password", "secret hunter2hunter2", []string{"secret 1 is not valid base64", "not a password", "caddy signed-cookies secret", "{env.NAME}"}},
		{"shell_variable", "secret $SC_TEST_SET_SECRET", []string{"secret 1 looks like a shell variable", "{env.NAME}"}},
		{"unset_caddyfile_variable", "secret {$SC_TEST_UNSET_SECRET}", []string{"secret: no value", "{env.NAME}", "{$NAME}"}},
		{"short", "secret c2hvcnQ=", []string{"secret 1 decodes to 5 bytes", "caddy signed-cookies secret", "{env.NAME}"}},
		{"unset_env", "secret {env.SC_TEST_UNSET_SECRET}", []string{"{env.SC_TEST_UNSET_SECRET} is empty", "set it in Caddy's environment", "caddy signed-cookies secret"}},
		{"encrypt_block", "secret " + testSecret + "\n\tencrypt cart {\n\t\tsecure\n\t}", []string{"encrypt takes no block", "cookie cart {", "format itsdangerous"}},
		{"block_after_a_line", "secret " + testSecret + "\n\ttrack {\n\t\tmax_age 3d {\n\t\t}\n\t}", []string{"track: a block where none is allowed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := loadCaddyErr(t, sc("", c.lines)+"respond ok\n")
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("the error does not say %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), testSecret) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error echoes the secret: %v", err)
			}
		})
	}
	t.Run("located_by_site_and_matcher", func(t *testing.T) {
		site := sc("", "secret "+testSecret, "sign session") + "handle /app/* {\n" + sc("", "secret "+testSecret, "encrypt session") + "respond ok\n}\n"
		err := loadCaddyErr(t, site)
		if err == nil {
			t.Fatal("loaded")
		}
		if !regexp.MustCompile(`server srv0 on \S*127\.0\.0\.1:\d+, route 0 \[host 127\.0\.0\.1\]`).MatchString(err.Error()) {
			t.Errorf("the error does not locate the handlers by the site's address: %v", err)
		}
		if !strings.Contains(err.Error(), "[path /app/*]") {
			t.Errorf("the error does not locate the handler by its path matcher: %v", err)
		}
	})
}
