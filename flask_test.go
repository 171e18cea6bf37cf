// The module in front of a real legacy app: the Flask app in examples/flask, run as its own
// process with the system Python, reached through a real Caddy by a cookie-jar client.

package signedcookies

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestFlaskLegacyAppBehindModule(t *testing.T) {
	app := startFlask(t)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign my_cookie
	}
	reverse_proxy `+app.Addr)
	codec := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{})
	u, _ := url.Parse(ci.URL)
	c := newClient(t)

	// holdsSigned checks the one rule: the client holds only a signed my_cookie.
	holdsSigned := func(step string) string {
		t.Helper()
		v := jarValue(t, c, ci.URL, "my_cookie")
		if v == "" || strings.Contains(v, "my_value") {
			t.Fatalf("%s: the jar holds my_cookie=%q, want a signed value", step, v)
		}
		if d, err := codec.Decode("my_cookie", v); err != nil || string(d.Value) != "my_value" {
			t.Fatalf("%s: the jar's my_cookie %q does not verify as my_value: %v", step, v, err)
		}
		return v
	}

	// First visit: the app sets its plain cookie; it leaves Caddy signed, attributes kept.
	resp, body := get(t, c, ci.URL+"/")
	id := visitorIDOf(t, c, ci.URL, "vid")
	if !uuidV4.MatchString(id) {
		t.Fatalf("visitor ID %q is not a v4 UUID", id)
	}
	if want := "set my_cookie\nX-Visitor-Id: " + id + "\n"; body != want {
		t.Fatalf("first visit: the app said %q, want %q", body, want)
	}
	lines := setCookies(resp, "my_cookie")
	if len(lines) != 1 || !strings.HasSuffix(lines[0], "; Path=/") || strings.HasPrefix(lines[0], "my_cookie=my_value") {
		t.Fatalf("first visit: my_cookie Set-Cookie %q, want one signed line ending in ; Path=/", lines)
	}
	first := holdsSigned("first visit")

	// Return visits: the app reads its own plain value, under the same visitor ID.
	for i := range 3 {
		resp, body = get(t, c, ci.URL+"/")
		if want := "my_cookie is my_value\nX-Visitor-Id: " + id + "\n"; body != want {
			t.Fatalf("visit %d: the app said %q, want %q", i+2, body, want)
		}
		if len(resp.Header.Values("Set-Cookie")) != 0 {
			t.Errorf("visit %d: unexpected Set-Cookie %q", i+2, resp.Header.Values("Set-Cookie"))
		}
		if v := holdsSigned(fmt.Sprintf("visit %d", i+2)); v != first {
			t.Errorf("visit %d: my_cookie changed from %q to %q", i+2, first, v)
		}
	}

	// The visitor-ID consumer: the app's log has the module's ID on every request.
	for i, r := range app.waitRequests(t, "/", 4) {
		wantCookie := "my_value"
		if i == 0 {
			wantCookie = "-"
		}
		if r != [3]string{"/", id, wantCookie} {
			t.Errorf("app log line %d: %q, want [/ %s %s]", i+1, r, id, wantCookie)
		}
	}

	// Forgeries: the plain value the app expects, another value, a tampered signature. None
	// reaches the app, which answers as to a new visitor; its new cookie leaves signed.
	tampered := []byte(first)
	if i := len(tampered) / 2; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	forgeries := []string{"my_value", "admin", string(tampered)}
	for _, forged := range forgeries {
		c.Jar.SetCookies(u, []*http.Cookie{{Name: "my_cookie", Value: forged, Path: "/"}})
		if jarValue(t, c, ci.URL, "my_cookie") != forged {
			t.Fatalf("could not plant %q in the jar", forged)
		}
		_, body = get(t, c, ci.URL+"/")
		if !strings.HasPrefix(body, "set my_cookie\n") {
			t.Errorf("forged my_cookie=%q: the app said %q, want it to set the cookie anew", forged, body)
		}
		holdsSigned("after forging " + forged)
		_, body = get(t, c, ci.URL+"/")
		if !strings.HasPrefix(body, "my_cookie is my_value\n") {
			t.Errorf("after forging %q and a new cookie: the app said %q", forged, body)
		}
	}
	for i, r := range app.waitRequests(t, "/", 4+2*len(forgeries)) {
		if r[2] != "-" && r[2] != "my_value" {
			t.Errorf("app log line %d: the app read my_cookie=%q", i+1, r[2])
		}
		if r[1] == "-" {
			t.Errorf("app log line %d: no X-Visitor-Id", i+1)
		}
	}
}

// TestFlaskExampleCaddyfile keeps the example's Caddyfile loadable.
func TestFlaskExampleCaddyfile(t *testing.T) {
	b, err := os.ReadFile("examples/flask/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	js := adapt(t, string(b))
	if !bytes.Contains(js, []byte(`"handler":"signed_cookies"`)) || !bytes.Contains(js, []byte(`"my_cookie"`)) {
		t.Errorf("examples/flask/Caddyfile does not configure signed_cookies for my_cookie:\n%s", js)
	}
}
