// The module in front of a real legacy app: the Flask app in examples/flask, run as its own
// process with the system Python, reached through a real Caddy by a cookie-jar client.
package signedcookies

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testskip"
)

// missingTool skips the test locally and fails it in CI (listed at the end of the run).
func missingTool(t testing.TB, what string) {
	t.Helper()
	testskip.Missing(t, what)
}

var flaskPythonOnce = sync.OnceValue(func() string {
	// The Debian python3 is the one python3-flask installs into; a pyenv python3 earlier on
	// PATH may lack it.
	for _, py := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(py)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import flask").Run() == nil {
			return path
		}
	}
	return ""
})

// flaskPython returns a Python that can import flask, or skips/fails the test.
func flaskPython(t testing.TB) string {
	t.Helper()
	py := flaskPythonOnce()
	if py == "" {
		missingTool(t, "Flask (a python3 that can import flask: apt-get install python3-flask)")
	}
	return py
}

// lockedBuffer collects a child process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// flaskApp is the example legacy app running as a process.
type flaskApp struct {
	Addr string // 127.0.0.1:port
	log  *lockedBuffer
}

// startFlask runs examples/flask/app.py on a free port and waits until it accepts
// connections. Its output (the app's log lines) is kept for the test and shown on failure.
func startFlask(t testing.TB) *flaskApp {
	t.Helper()
	py := flaskPython(t)
	port := freePort(t)
	app := &flaskApp{Addr: fmt.Sprintf("127.0.0.1:%d", port), log: &lockedBuffer{}}
	cmd := exec.Command(py, "examples/flask/app.py", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	cmd.Stdout, cmd.Stderr = app.log, app.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Flask app: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("Flask app output:\n%s", app.log)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", app.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return app
		}
		select {
		case <-exited:
			t.Fatalf("the Flask app exited before listening:\n%s", app.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Flask app is not listening on %s:\n%s", app.Addr, app.log)
		}
	}
}

// appLogLine is what examples/flask/app.py logs for each request.
var appLogLine = regexp.MustCompile(`legacy path=(\S+) X-Visitor-Id=(\S+) my_cookie=(\S+)`)

// requests returns the app's log lines for path as [path, visitor ID, my_cookie] ("-" when
// absent).
func (a *flaskApp) requests(path string) [][3]string {
	var out [][3]string
	for _, m := range appLogLine.FindAllStringSubmatch(a.log.String(), -1) {
		if m[1] == path {
			out = append(out, [3]string{m[1], m[2], m[3]})
		}
	}
	return out
}

// waitRequests waits until the app has logged n requests for path (its output arrives
// through a pipe, a moment after the response) and returns them.
func (a *flaskApp) waitRequests(t testing.TB, path string, n int) [][3]string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		reqs := a.requests(path)
		if len(reqs) >= n || time.Now().After(deadline) {
			if len(reqs) != n {
				t.Fatalf("the Flask app logged %d requests for %s, want %d:\n%s", len(reqs), path, n, a.log)
			}
			return reqs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// visitorIDOf decodes the client's signed visitor cookie into the UUID the upstream sees.
func visitorIDOf(t testing.TB, c *http.Client, rawURL, name string) string {
	t.Helper()
	v := jarValue(t, c, rawURL, name)
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode(name, v)
	if err != nil {
		t.Fatalf("client's %s cookie %q does not verify: %v", name, v, err)
	}
	return cookie.UUIDString(d.Value)
}

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
