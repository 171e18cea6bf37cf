package signedcookies

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

var uuidInText = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-`)

func TestMetrics(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			w.Header().Add("Set-Cookie", "session=alice; Path=/")
		case "/big":
			w.Header().Add("Set-Cookie", "session="+strings.Repeat("x", 4000))
		case "/steal":
			w.Header().Add("Set-Cookie", "vid=mine")
		}
	})
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		track
	}
	reverse_proxy `+up.Addr, withGlobals("metrics"))
	before := scrapeMetrics(t, ci.AdminAddr)
	c := newClient(t)
	get(t, c, ci.URL+"/login")                                      // issued 1, signed 1
	get(t, c, ci.URL+"/")                                           // verified 2
	get(t, c, ci.URL+"/big")                                        // verified 2, dropped too_long
	get(t, c, ci.URL+"/steal")                                      // verified 2, dropped tracking_name
	get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session=bad") // invalid malformed, issued 1
	get(t, http.DefaultClient, ci.URL+"/", "Cookie", "Session=x")   // invalid lookalike, issued 1
	after := scrapeMetrics(t, ci.AdminAddr)
	want := map[string]float64{
		"caddy_signed_cookies_issued_total":                          3,
		"caddy_signed_cookies_signed_total":                          1,
		"caddy_signed_cookies_verified_total":                        6,
		`caddy_signed_cookies_dropped_total{reason="too_long"}`:      1,
		`caddy_signed_cookies_dropped_total{reason="tracking_name"}`: 1,
		`caddy_signed_cookies_invalid_total{reason="malformed"}`:     1,
		`caddy_signed_cookies_invalid_total{reason="lookalike"}`:     1,
	}
	for k, d := range want {
		if got := after[k] - before[k]; got != d {
			t.Errorf("%s grew by %v, want %v", k, got, d)
		}
	}
	for k := range after {
		if strings.Contains(k, "alice") || uuidInText.MatchString(k) {
			t.Errorf("metric %s carries a value", k)
		}
	}
}

// The placeholders reach other handlers (header, log_append), and the access-log recipe puts
// the visitor ID in the log while the cookie value stays out of it.
func TestPlaceholdersAndAccessLog(t *testing.T) {
	up := startUpstream(t, nil)
	logFile := filepath.Join(t.TempDir(), "access.log")
	ci := startCaddy(t, fmt.Sprintf(`
	log {
		output file %s
	}
	log_append visitor_id {http.signed_cookies.visitor_id}
	signed_cookies {
		secret %s
		sign session
	track
	}
	header X-Seen-Id {http.signed_cookies.visitor_id}
	header X-Seen-New {http.signed_cookies.visitor_new}
	header X-Seen-Invalid {http.signed_cookies.invalid}
	# edits the forwarded header in place; the placeholder keeps the ID
	request_header X-Visitor-Id "-" "_"
	reverse_proxy %s`, logFile, testSecret, up.Addr))
	c := newClient(t)
	resp, _ := get(t, c, ci.URL+"/")
	id, _ := upstreamCookie(up.last(), "vid")
	if got := up.last().Header.Get("X-Visitor-Id"); id == "" || got != strings.ReplaceAll(id, "-", "_") {
		t.Fatalf("upstream got X-Visitor-Id %q and vid %q: request_header did not run as the test expects", got, id)
	}
	if resp.Header.Get("X-Seen-Id") != id || resp.Header.Get("X-Seen-New") != "true" || resp.Header.Get("X-Seen-Invalid") != "" {
		t.Errorf("first visit placeholders: id %q new %q invalid %q (upstream id %q)",
			resp.Header.Get("X-Seen-Id"), resp.Header.Get("X-Seen-New"), resp.Header.Get("X-Seen-Invalid"), id)
	}
	resp, _ = get(t, c, ci.URL+"/", "Cookie", "session=forged; SESSION=x")
	if resp.Header.Get("X-Seen-Id") != id || resp.Header.Get("X-Seen-New") != "false" || resp.Header.Get("X-Seen-Invalid") != "session,SESSION" {
		t.Errorf("return visit placeholders: id %q new %q invalid %q",
			resp.Header.Get("X-Seen-Id"), resp.Header.Get("X-Seen-New"), resp.Header.Get("X-Seen-Invalid"))
	}
	_ = caddy.Stop()
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 access log lines, got %d:\n%s", len(lines), b)
	}
	for _, l := range lines {
		var entry struct {
			VisitorID string `json:"visitor_id"`
		}
		if err := json.Unmarshal([]byte(l), &entry); err != nil {
			t.Fatal(err)
		}
		if entry.VisitorID != id {
			t.Errorf("access log visitor_id %q, want %q", entry.VisitorID, id)
		}
	}
	if v := jarValue(t, c, ci.URL, "vid"); strings.Contains(string(b), v) {
		t.Errorf("access log holds the signed cookie value")
	}
}

// Logs name the cookie and the reason, never the value, whether the cookie is dropped or the
// request rejected; Provision says which keys are used.
func TestLogsNeverCarryValues(t *testing.T) {
	up := startUpstream(t, nil)
	signed, _ := cookie.NewCodec(mustRing(t, otherSecret), cookie.Options{}).Encode("session", []byte("topsecretvalue"))
	for _, tc := range []struct {
		onInvalid string
		status    int
		msg       string
	}{
		{"drop", http.StatusOK, "invalid cookie dropped"},
		{"reject", http.StatusBadRequest, "invalid cookie: request rejected"},
	} {
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
		on_invalid `+tc.onInvalid+`
	}
	reverse_proxy `+up.Addr, withGlobals(fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}", logFile)))
		resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+signed)
		if resp.StatusCode != tc.status {
			t.Errorf("on_invalid %s: status %d, want %d", tc.onInvalid, resp.StatusCode, tc.status)
		}
		_ = caddy.Stop()
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		log := string(b)
		if !strings.Contains(log, `"msg":"`+tc.msg+`","cookie":"session","reason":"bad_mac"`) {
			t.Errorf("on_invalid %s: no %q line naming the cookie and reason:\n%s", tc.onInvalid, tc.msg, log)
		}
		if !strings.Contains(log, `"msg":"signing keys from configured secrets","secrets":1`) {
			t.Errorf("on_invalid %s: no Provision line on the key source:\n%s", tc.onInvalid, log)
		}
		for _, secret := range []string{signed, "topsecretvalue", testSecret, otherSecret} {
			if strings.Contains(log, secret) {
				t.Errorf("on_invalid %s: log contains a value or key: %q", tc.onInvalid, secret)
			}
		}
	}
}

// Privacy gates hold back a new ID only; a valid cookie is always verified and forwarded.
func TestPrivacyGates(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track {
			honor_gpc
			consent cookie_ok=yes
			when not header User-Agent *bot*
		}
	}
	reverse_proxy `+up.Addr)
	valid, _ := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Encode("vid", []byte("0123456789abcdef"))
	validID := cookie.UUIDString([]byte("0123456789abcdef"))
	cases := []struct {
		name   string
		hdr    []string
		wantID string // "" none, "new" a new one, else that one
	}{
		{"no consent", nil, ""},
		{"consent", []string{"Cookie", "cookie_ok=yes"}, "new"},
		{"wrong consent value", []string{"Cookie", "cookie_ok=no"}, ""},
		{"consent but GPC", []string{"Cookie", "cookie_ok=yes", "Sec-GPC", "1"}, ""},
		{"consent but bot", []string{"Cookie", "cookie_ok=yes", "User-Agent", "Googlebot/2.1"}, ""},
		{"valid cookie, no consent", []string{"Cookie", "vid=" + valid}, validID},
		{"valid cookie, GPC", []string{"Cookie", "vid=" + valid, "Sec-GPC", "1"}, validID},
		{"valid cookie, bot", []string{"Cookie", "vid=" + valid, "User-Agent", "Googlebot/2.1"}, validID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := get(t, http.DefaultClient, ci.URL+"/", tc.hdr...)
			got := up.last().Header.Get("X-Visitor-Id")
			issued := len(setCookies(resp, "vid")) > 0
			switch tc.wantID {
			case "":
				if got != "" || issued {
					t.Errorf("ID %q issued=%v, want none", got, issued)
				}
				if _, n := upstreamCookie(up.last(), "vid"); n != 0 {
					t.Errorf("upstream Cookie has a vid")
				}
			case "new":
				if !uuidV4.MatchString(got) || !issued {
					t.Errorf("ID %q issued=%v, want a new one", got, issued)
				}
			default:
				if got != tc.wantID || issued {
					t.Errorf("ID %q issued=%v, want %q kept", got, issued, tc.wantID)
				}
			}
		})
	}
}
