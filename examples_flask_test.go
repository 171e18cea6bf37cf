// examples/flask as a user runs it: its Caddyfile (only its ports replaced) in a Caddy
// process, in front of its app.py, both reading FLASK_SECRET_KEY.

package signedcookies

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
)

// newServiceField reads a field of the example's new service page.
var newServiceField = regexp.MustCompile(`(?m)^\s*(X-[A-Za-z-]+):[ \t]*(\S*)[ \t]*$`)

// TestFlaskExampleStranglerFig runs examples/flask/Caddyfile against examples/flask/app.py:
// my_cookie leaves in itsdangerous' format (Python loads it to my_value) and comes back plain;
// the visitor ID reaches both services; a login on the Flask app reaches the new service as
// X-Flask-Session-User-Id and -Role; spoofed headers, a forged session and a logout leave the
// new service with nobody.
func TestFlaskExampleStranglerFig(t *testing.T) {
	key := formatKey("example")
	t.Setenv("FLASK_SECRET_KEY", key)
	app := startFlask(t)
	b, err := os.ReadFile("examples/flask/Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	port, newPort := freePort(t), freePort(t)
	cf := string(b)
	for _, r := range [][2]string{
		{"http://localhost:8090 {", fmt.Sprintf("http://localhost:%d {", port)},
		{"reverse_proxy 127.0.0.1:8091", fmt.Sprintf("reverse_proxy 127.0.0.1:%d", newPort)},
		{"http://:8091 {", fmt.Sprintf("http://:%d {", newPort)},
		{"reverse_proxy 127.0.0.1:5000", "reverse_proxy " + app.Addr},
	} {
		if strings.Count(cf, r[0]) != 1 {
			t.Fatalf("examples/flask/Caddyfile has %d of %q; the test replaces its ports there", strings.Count(cf, r[0]), r[0])
		}
		cf = strings.Replace(cf, r[0], r[1], 1)
	}
	if !strings.Contains(cf, "admin off") {
		t.Errorf("examples/flask/Caddyfile has an admin endpoint: it would collide with the main demo's")
	}
	ci := startCaddy(t, "", withCaddyfile(cf, fmt.Sprintf("http://localhost:%d", port)), asProcess())
	c := newClient(t)
	u, _ := url.Parse(ci.URL)
	newService := func(step string, hdr ...string) map[string]string {
		t.Helper()
		resp, body := get(t, c, ci.URL+"/new/", hdr...)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "new service\n") {
			t.Fatalf("%s: /new/ answered %d %q", step, resp.StatusCode, body)
		}
		out := map[string]string{}
		for _, m := range newServiceField.FindAllStringSubmatch(body, -1) {
			out[m[1]] = m[2]
		}
		return out
	}

	// my_cookie: the app sets it plain; the browser holds what itsdangerous reads.
	_, body := get(t, c, ci.URL+"/")
	id := strings.TrimPrefix(strings.TrimSpace(strings.TrimPrefix(body, "set my_cookie\n")), "X-Visitor-Id: ")
	if !strings.HasPrefix(body, "set my_cookie\n") || !uuidV4.MatchString(id) {
		t.Fatalf("first visit: the app said %q", body)
	}
	signed := jarValue(t, c, ci.URL, "my_cookie")
	r := dangerousPy(t, pyOp{"op": "loads", "secrets": []string{key}, "salt": "my-salt", "token": signed})
	if !r[0].OK || r[0].Value != "my_value" {
		t.Errorf("URLSafeSerializer(FLASK_SECRET_KEY, salt=\"my-salt\").loads(%q) = %+v, want my_value", signed, r[0])
	}
	if _, body := get(t, c, ci.URL+"/"); body != "my_cookie is my_value\nX-Visitor-Id: "+id+"\n" {
		t.Errorf("return visit: the app said %q", body)
	}
	anonymous := map[string]string{"X-Flask-Session-User-Id": "", "X-Flask-Session-Role": "", "X-Visitor-Id": id}
	if got := newService("before login", spoofHeaders...); fmt.Sprint(got) != fmt.Sprint(anonymous) {
		t.Errorf("before login, spoofing: the new service saw %q, want %q", got, anonymous)
	}

	// Log in on the Flask app; the new service knows the user.
	flaskLogin(t, c, ci.URL, ci.URL, "http://"+app.Addr, "alice")
	if _, body := get(t, c, ci.URL+"/whoami"); body != "user_id=42 role=admin\nX-Flask-Session-Role: admin\nX-Flask-Session-User-Id: 42\n" {
		t.Errorf("whoami: the app said %q", body)
	}
	alice := map[string]string{"X-Flask-Session-User-Id": "42", "X-Flask-Session-Role": "admin", "X-Visitor-Id": id}
	if got := newService("logged in", spoofHeaders...); fmt.Sprint(got) != fmt.Sprint(alice) {
		t.Errorf("logged in: the new service saw %q, want %q", got, alice)
	}

	// Log out: Flask's deletion reaches the browser.
	resp, _ := postForm(t, c, ci.URL+"/logout", nil)
	if l := setCookies(resp, "session"); len(l) != 1 || !strings.HasPrefix(l[0], "session=;") {
		t.Errorf("logout: Set-Cookie %q, want Flask's deletion", l)
	}
	if got := newService("logged out"); fmt.Sprint(got) != fmt.Sprint(anonymous) {
		t.Errorf("logged out: the new service saw %q, want %q", got, anonymous)
	}

	// A session signed with another key: dropped, and cleared in the browser.
	forged := dangerousPy(t, flaskSign(attackerKey, `{"user_id": 42, "role": "admin"}`))[0].Token
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: forged, Path: "/"}})
	if got := newService("forged"); fmt.Sprint(got) != fmt.Sprint(anonymous) {
		t.Errorf("forged session: the new service saw %q, want %q", got, anonymous)
	}
	if v := jarValue(t, c, ci.URL, "session"); v != "" {
		t.Errorf("forged session: the browser still holds it")
	}
}
