// The Flask app of examples/flask, run as its own process with the system Python, and
// Python's itsdangerous and Flask serializers as an oracle in a subprocess.

package signedcookies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
)

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

// formatKey is a fixed itsdangerous/Flask secret key as secrets.token_hex() makes them: 64
// hex digits, the same on every run.
func formatKey(label string) string {
	sum := sha256.Sum256([]byte("flask key " + label))
	return hex.EncodeToString(sum[:])
}

// dangerousOracle is the Python side: a JSON list of operations on stdin, a JSON list of
// results on stdout. Times are real (time.time()) unless "age" backdates the signature.
const dangerousOracle = `
import base64, datetime, json, sys, time, uuid, zlib
import itsdangerous
from itsdangerous.timed import TimestampSigner
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

real_timestamp = TimestampSigner.get_timestamp
NS = {"uuid": uuid, "datetime": datetime, "zlib": zlib, "base64": base64}


def at(op):
    if "age" in op:
        ts = int(time.time()) - op["age"]
        TimestampSigner.get_timestamp = lambda self: ts
    else:
        TimestampSigner.get_timestamp = real_timestamp


def flask_serializer(op):
    """What Flask signs its session cookie with: SecureCookieSessionInterface's serializer."""
    app = Flask("oracle")
    app.secret_key = op["secret"]
    app.session_interface = SecureCookieSessionInterface()  # the class's one is shared
    if "salt" in op:
        app.session_interface.salt = op["salt"]
    return app.session_interface.get_signing_serializer(app)


def run(op):
    at(op)
    k = op["op"]
    if k == "flask_dumps":  # a session, as Flask's save_session signs it
        return {"token": flask_serializer(op).dumps(eval(op["session"], NS))}
    if k == "flask_raw":  # a payload signed the way the session serializer signs its own
        s = flask_serializer(op)
        return {"token": s.make_signer(s.salt).sign(eval(op["payload"], NS)).decode()}
    if k == "flask_loads":  # what Flask's open_session reads
        s = flask_serializer(op)
        return {"ok": True, "value": s.loads(op["token"], max_age=op["max_age"])}
    if k in ("dumps", "loads"):
        s = itsdangerous.URLSafeSerializer(op["secrets"], salt=op["salt"])
        if k == "dumps":
            return {"token": s.dumps(op["value"])}
        return {"ok": True, "value": s.loads(op["token"])}
    if k in ("timed_dumps", "timed_loads"):
        s = itsdangerous.URLSafeTimedSerializer(op["secrets"], salt=op["salt"])
        if k == "timed_dumps":
            return {"token": s.dumps(op["value"])}
        return {"ok": True, "value": s.loads(op["token"], max_age=op["max_age"])}
    raise ValueError("unknown op " + k)


out = []
for op in json.load(sys.stdin):
    try:
        out.append(run(op))
    except itsdangerous.BadData as e:
        out.append({"ok": False, "error": type(e).__name__})
json.dump(out, sys.stdout, default=str)
`

// pyOp is one operation for the oracle.
type pyOp map[string]any

// pyResult is its answer: a token, or a loads outcome.
type pyResult struct {
	Token string `json:"token"`
	OK    bool   `json:"ok"`
	Value any    `json:"value"`
	Error string `json:"error"`
}

// dangerousPy runs the operations in one Python process (Flask's import is most of its cost).
func dangerousPy(t testing.TB, ops ...pyOp) []pyResult {
	t.Helper()
	in, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(flaskPython(t), "-c", dangerousOracle)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the Python oracle failed: %v\n%s", err, stderr.String())
	}
	var res []pyResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(ops) {
		t.Fatalf("the Python oracle answered %q (%v), want %d results", out, err, len(ops))
	}
	return res
}

// flaskSign signs a session (a Python expression) with Flask's own serializer.
func flaskSign(key, session string) pyOp {
	return pyOp{"op": "flask_dumps", "secret": key, "session": session}
}

// spoofHeaders are client-sent copies of the exposed headers, in the spellings stacks fold.
var spoofHeaders = []string{
	"X-Flask-Session-User-Id", "1",
	"X-Flask-Session-User-Id", "2",
	"x-flask-session-role", "admin",
	"X_Flask_Session_User_Id", "3",
	"X-FLASK-SESSION-ROLE", "admin",
	"X-Flask-Session.Role", "admin",
	"X-Flask-Session-Not-Exposed", "x",
}

// postForm posts a form.
func postForm(t testing.TB, c *http.Client, rawURL string, form url.Values) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, rawURL, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(t, c, req)
}

// flaskUsers are examples/flask/app.py's users and what its login answers for them.
var flaskUsers = map[string]string{
	"alice": "logged in as alice: user_id=42 role=admin\n",
	"bob":   "logged in as bob: user_id=7 role=editor\n",
}

// flaskLogin logs user in to examples/flask/app.py through Caddy (appBase: where Caddy serves
// the app; site: the URL the browser's jar keeps cookies for) and returns the session the
// browser then holds and the response's Set-Cookie lines for it. Flask's Set-Cookie must
// reach the browser as the app wrote it. When it does not (a bug of the module, reported as a
// failure), the browser gets the session from a login at the app itself (appDirect), so that
// the rest of the flow is still checked with a real Flask session.
func flaskLogin(t testing.TB, c *http.Client, site, appBase, appDirect, user string) (string, []string) {
	t.Helper()
	resp, body := postForm(t, c, appBase+"/login", url.Values{"username": {user}})
	if resp.StatusCode != 200 || body != flaskUsers[user] {
		t.Fatalf("login as %s: %d %q", user, resp.StatusCode, body)
	}
	lines := setCookies(resp, "session")
	session := jarValue(t, c, site, "session")
	if len(lines) == 1 && session != "" {
		return session, lines
	}
	t.Errorf("login as %s: the Flask app's session cookie did not reach the browser: Set-Cookie %q, jar %q "+
		"(the module drops the Flask app's own Set-Cookie for the flask_session cookie)", user, resp.Header.Values("Set-Cookie"), session)
	resp, _ = postForm(t, &http.Client{Timeout: 10 * time.Second}, appDirect+"/login", url.Values{"username": {user}})
	direct := setCookies(resp, "session")
	if len(direct) != 1 {
		t.Fatalf("login as %s at the app itself: Set-Cookie %q", user, resp.Header.Values("Set-Cookie"))
	}
	v, _, _ := strings.Cut(strings.TrimPrefix(direct[0], "session="), ";")
	u, _ := url.Parse(site)
	c.Jar.SetCookies(u, []*http.Cookie{{Name: "session", Value: v, Path: "/"}})
	return v, nil
}
