// The test harness: a real Caddy (in this process through caddy.Load, or as a child process
// for several instances), real upstreams on ephemeral ports, real HTTP clients with cookie
// jars. Tests that start Caddy live in this package and do not run in parallel: Caddy is a
// process-wide singleton.
package signedcookies

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/signedcookies/caddy-signedcookies/internal/testskip"
)

// runCaddyEnv makes the test binary act as the caddy command (see TestMain), so that tests
// can start several real Caddy processes with this module built in, without a build step.
const runCaddyEnv = "SIGNED_COOKIES_TEST_RUN_CADDY"

func TestMain(m *testing.M) {
	if os.Getenv(runCaddyEnv) == "1" {
		os.Args = append([]string{"caddy"}, strings.Fields(os.Getenv(runCaddyEnv+"_ARGS"))...)
		caddycmd.Main()
		return
	}
	os.Exit(testskip.Main(m))
}

// fixedSecret is a 32-byte secret that looks random (the module refuses ones that do not),
// the same on every run.
func fixedSecret(label string) string {
	sum := sha256.Sum256([]byte(label))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// testSecret is a fixed secret for tests; otherSecret a second, different one.
var testSecret, otherSecret = fixedSecret("test secret"), fixedSecret("other secret")

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// upstream is a real HTTP server standing for the app behind the module. It records what it
// received.
type upstream struct {
	*http.Server
	URL  string
	Addr string
	mu   sync.Mutex
	reqs []*http.Request
}

func (u *upstream) last() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		return nil
	}
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// startUpstream serves h on an ephemeral port, recording each request's headers.
func startUpstream(t testing.TB, h http.HandlerFunc) *upstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{Addr: l.Addr().String(), URL: "http://" + l.Addr().String()}
	u.Server = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := r.Clone(context.Background())
		u.mu.Lock()
		u.reqs = append(u.reqs, rc)
		u.mu.Unlock()
		if h != nil {
			h(w, r)
		}
	})}
	go u.Serve(l)
	t.Cleanup(func() { u.Close() })
	return u
}

// caddyInstance is a running Caddy.
type caddyInstance struct {
	URL       string // http://127.0.0.1:port of the site
	Port      int
	AdminAddr string
}

// caddyfileFor wraps site directives into a full Caddyfile: a site on a free port, the admin
// API on another, storage in a temp dir, quiet logs.
func caddyfileFor(t testing.TB, storageDir string, siteBody string) (string, caddyInstance) {
	t.Helper()
	return caddyfileGlobal(t, storageDir, "log {\n\t\tlevel ERROR\n\t}", siteBody)
}

// caddyfileGlobal is caddyfileFor with other global options than the quiet log.
func caddyfileGlobal(t testing.TB, storageDir, globals, siteBody string) (string, caddyInstance) {
	t.Helper()
	ci := caddyInstance{Port: freePort(t), AdminAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	ci.URL = fmt.Sprintf("http://127.0.0.1:%d", ci.Port)
	cf := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	storage file_system %s
	%s
}

http://127.0.0.1:%d {
	bind 127.0.0.1
%s
}
`, ci.AdminAddr, storageDir, globals, ci.Port, siteBody)
	return cf, ci
}

// adapt turns a Caddyfile into JSON, failing the test on errors or warnings.
func adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	js, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("adapt warning: %s", w.String())
	}
	return js
}

// startCaddy runs Caddy in this process with siteBody inside a site block. Directives such
// as `reverse_proxy {upstream}` are written by the caller.
func startCaddy(t testing.TB, siteBody string) caddyInstance {
	t.Helper()
	cf, ci := caddyfileFor(t, t.TempDir(), siteBody)
	if err := caddy.Load(adapt(t, cf), true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", ci.Port))
	return ci
}

// trackAndSignSite is the most common site of these tests: the test secret, a visitor cookie
// with the defaults, a signed session cookie, in front of upAddr.
func trackAndSignSite(upAddr string) string {
	return "\tsigned_cookies {\n\t\tsecret " + testSecret + "\n\t\ttrack\n\t\tsign session\n\t}\n\treverse_proxy " + upAddr
}

// loadCaddyErr tries to load siteBody and returns the error (nil when it loaded).
func loadCaddyErr(t testing.TB, siteBody string) error {
	t.Helper()
	cf, _ := caddyfileFor(t, t.TempDir(), siteBody)
	js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), nil)
	if err != nil {
		return err
	}
	err = caddy.Load(js, true)
	_ = caddy.Stop()
	return err
}

func waitListening(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listening on %s", addr)
}

// caddyProcess runs Caddy as a child process (this test binary in caddy mode) with the given
// Caddyfile, stopping it when the test ends.
func caddyProcess(t testing.TB, caddyfile string, ci caddyInstance) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runCaddyEnv+"=1", runCaddyEnv+"_ARGS=run --config "+path+" --adapter caddyfile",
		"HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	logf, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("caddy log (%s):\n%s", ci.URL, b)
		}
	})
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", ci.Port))
	return cmd
}

// client is an HTTP client with a cookie jar, as a browser would be.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// get sends a GET with extra headers and returns the response with its body read.
func get(t testing.TB, c *http.Client, rawURL string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	return do(t, c, req)
}

// do sends req and returns the response with its body read.
func do(t testing.TB, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", req.URL, err)
	}
	return resp, string(b)
}

// jarValue returns the value the client holds for a cookie.
func jarValue(t testing.TB, c *http.Client, rawURL, name string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// setCookies returns the response's Set-Cookie lines for name.
func setCookies(resp *http.Response, name string) []string {
	var out []string
	for _, l := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, name+"=") {
			out = append(out, l)
		}
	}
	return out
}

// upstreamCookie returns the value of name in the Cookie header the upstream received, and
// how many times it appeared.
func upstreamCookie(r *http.Request, name string) (string, int) {
	var v string
	n := 0
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				if n == 0 {
					v = val
				}
				n++
			}
		}
	}
	return v, n
}

// isIDHeaderSpelling reports whether k is X-Visitor-Id as lenient stacks read it (any case,
// '_' or '.' for '-').
func isIDHeaderSpelling(k string) bool {
	return strings.EqualFold(strings.NewReplacer("_", "-", ".", "-").Replace(k), "x-visitor-id")
}
