// The test harness: a real Caddy (in this process through caddy.Load, or as a child process
// for several instances), real upstreams on ephemeral ports, real HTTP clients with cookie
// jars. Tests that start Caddy live in this package and do not run in parallel: Caddy is a
// process-wide singleton.
//
// Where the tests are (root package):
//
//	harness_test.go          starting Caddy (startCaddy and its options, loadCaddyErr), upstreams,
//	                         metrics scraping, a Caddy process's log, missing tools
//	harness_http_test.go     clients: cookie jars, requests written by hand, HTTPS/HTTP/2/HTTP/3
//	harness_cookies_test.go  codecs, Set-Cookie and Cookie parsing and checks, common sites
//	harness_flask_test.go    the Flask app of examples/flask and Python's itsdangerous
//	harness_keyring_test.go  the storage key ring file: read, write, await
//	harness_storage_test.go  storage modules for the key ring's bad days (writes fail, reads stall)
//	request_test.go          what the upstream sees: Cookie rebuilt, forged and look-alike
//	                         cookies, smuggling, the ID header, Connection, 431, on_invalid reject
//	response_test.go         what the client gets: Set-Cookie signed, kept byte for byte or
//	                         dropped, deletions, too long, trailers, clearing lines, Cache-Control
//	visitor_test.go          the visitor cookie: issued, kept, replaced, its attributes, Secure
//	writer_test.go           however a response is written (streaming, 1xx, websockets, SSE) and
//	                         over HTTP/1.1, HTTPS, HTTP/2 and HTTP/3
//	cookies_test.go          cookie blocks: attributes, Domain/Path rewrites, prefixes, split
//	compose_test.go          several handlers on one request path
//	rollout_test.go          adopt, adopt_nginx, id_format nginx, unwrap
//	flask_test.go            the Flask legacy app behind the module
//	flask_session_test.go    flask_session and the itsdangerous format
//	examples_test.go, examples_flask_test.go   the example configs, run
//	docs_test.go             every config block of the README and docs/ loads; links resolve
//	newcomer_test.go         a first deployment's quiet mistakes made loud: a wrong Flask key,
//	                         long rollout windows, realms, lb_policy, partly managed apps, errors
//	security_test.go         the guarantees of SECURITY.md that need their own tests
//	keys_test.go             configured secrets, rotation, realms, reloads
//	keyring_fault_test.go    the storage key ring on bad days, across processes (its unit tests
//	                         are internal/keyring's)
//	ops_test.go              metrics, placeholders, logs, privacy gates
//	command_test.go          the caddy signed-cookies command
//	caddyfile_test.go        Caddyfile parsing and golden adapt files
//	helpers_unit_test.go     the pure helpers: config checks, Caddyfile readers, the composition
//	                         walk's pieces, isHTTPS, errorStatus, placeholders
//	browser_test.go, browser_cookies_test.go   what Chromium decides
//	bench_test.go, allocs_test.go   benchmarks and allocation counts

package signedcookies

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
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
	// Configs that name no storage (the README's and docs' examples, validated as written)
	// get Caddy's default one: a directory of this run, never the user's own.
	dir, err := os.MkdirTemp("", "signed-cookies-test-data-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_DATA_HOME", dir)
	os.Setenv("XDG_CONFIG_HOME", dir)
	caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	code := testskip.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixedSecret is a 32-byte secret that looks random (the module refuses ones that do not),
// the same on every run.
func fixedSecret(label string) string {
	sum := sha256.Sum256([]byte(label))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// testSecret is a fixed secret for tests; otherSecret a second, different one.
var testSecret, otherSecret = fixedSecret("test secret"), fixedSecret("other secret")

// givenPorts are the ports freePort has handed out in this process.
var givenPorts struct {
	sync.Mutex
	m map[int]bool
}

// freePort returns a port free now and never returned before in this process. Caddy binds its
// listeners with SO_REUSEPORT, so two instances (or a site and an admin endpoint) given the same
// port would both bind it and share its connections, silently; the kernel may hand a port it
// just freed out again, so each is handed out once.
func freePort(t testing.TB) int {
	t.Helper()
	givenPorts.Lock()
	defer givenPorts.Unlock()
	if givenPorts.m == nil {
		givenPorts.m = map[int]bool{}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !givenPorts.m[port] {
			givenPorts.m[port] = true
			return port
		}
	}
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

// caddyInstance is a running Caddy (or, from caddyfileFor, one about to run).
type caddyInstance struct {
	URL       string // http://127.0.0.1:port of the site
	Port      int
	AdminAddr string
	Caddyfile string    // the config it runs, when it came from a Caddyfile
	HTTPS     string    // withTLS: https://127.0.0.1:port of the same site
	Cmd       *exec.Cmd // asProcess: the child process; its output is caddyLog's
	roots     *x509.CertPool
}

// quietLog is the global option every Caddy of the tests has unless withGlobals says
// otherwise: Caddy's log at ERROR.
const quietLog = "log {\n\t\tlevel ERROR\n\t}"

// caddySetup is what the options of startCaddy, caddyfileFor and loadCaddyErr set.
type caddySetup struct {
	globals   string
	storage   string
	top       string
	tls       bool
	json      []any
	caddyfile string // a whole Caddyfile written by the test
	siteURL   string // where that Caddyfile's site is
	process   bool
}

type caddyOpt func(*caddySetup)

// withGlobals puts global options of the test's choosing in place of quietLog (admin,
// storage and HTTPS are the harness's).
func withGlobals(globals string) caddyOpt { return func(s *caddySetup) { s.globals = globals } }

// withStorage keeps storage in dir (default: a new temp dir), to share it between instances
// or read it.
func withStorage(dir string) caddyOpt { return func(s *caddySetup) { s.storage = dir } }

// withTop places top-level blocks (snippets, named routes, other sites) between the global
// options and the site, and formats the Caddyfile (such blocks are written unindented).
func withTop(blocks string) caddyOpt { return func(s *caddySetup) { s.top = blocks } }

// withTLS serves the site a second time at https://127.0.0.1:port (tls internal, a temp CA
// never installed) and waits for a verified handshake; ci.url and ci.client pick the
// protocol.
func withTLS() caddyOpt { return func(s *caddySetup) { s.tls = true } }

// withJSON runs a JSON config instead of a Caddyfile (the site argument must be empty): one
// server whose route handles with these handlers, in order. A *Handler, or a map without a
// "handler" key, is a signed_cookies handler; a json.RawMessage goes in as written. Only
// withStorage applies to it.
func withJSON(handlers ...any) caddyOpt { return func(s *caddySetup) { s.json = handlers } }

// withCaddyfile runs a whole Caddyfile written by the test (the site argument must be
// empty), whose site is at siteURL ("" when only its load matters).
func withCaddyfile(cf, siteURL string) caddyOpt {
	return func(s *caddySetup) { s.caddyfile, s.siteURL = cf, siteURL }
}

// asProcess runs Caddy as a child process (this test binary in caddy mode) rather than in
// this process: for several instances at once. ci.Cmd is the process.
func asProcess() caddyOpt { return func(s *caddySetup) { s.process = true } }

// startCaddy runs Caddy with site as the body of one site block, http://127.0.0.1:port,
// and stops it when the test ends. Directives such as `reverse_proxy {upstream}` are written
// by the caller. By default: in this process, the admin API on another free port, storage in
// a temp dir, quietLog, no HTTPS.
func startCaddy(t testing.TB, site string, opts ...caddyOpt) caddyInstance {
	t.Helper()
	s := newCaddySetup(t, site, opts)
	cfg, ci := s.config(t, site)
	if s.process {
		addr := fmt.Sprintf("127.0.0.1:%d", ci.Port)
		waitFree(t, addr)
		ci.Cmd = runCaddyProcess(t, ci)
		waitListening(t, addr)
		return ci
	}
	if ci.Caddyfile != "" {
		cfg = adapt(t, ci.Caddyfile)
	}
	if err := caddy.Load(cfg, true); err != nil {
		shown := ci.Caddyfile
		if shown == "" {
			shown = string(cfg)
		}
		t.Fatalf("loading config: %v\n%s", err, shown)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	if ci.Port != 0 {
		waitListening(t, fmt.Sprintf("127.0.0.1:%d", ci.Port))
	}
	if s.tls {
		waitHTTPS(t, &ci, s.storage)
	}
	return ci
}

// loadCaddyErr loads what startCaddy would run and returns the error (the Caddyfile
// adapter's included), nil when it loaded; Caddy is stopped either way. asProcess: the
// error holds the process's output, nil once it listens.
func loadCaddyErr(t testing.TB, site string, opts ...caddyOpt) error {
	t.Helper()
	s := newCaddySetup(t, site, opts)
	cfg, ci := s.config(t, site)
	if s.process {
		waitFree(t, fmt.Sprintf("127.0.0.1:%d", ci.Port))
		return caddyProcessErr(t, ci)
	}
	if ci.Caddyfile != "" {
		js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(ci.Caddyfile), nil)
		if err != nil {
			return err
		}
		cfg = js
	}
	err := caddy.Load(cfg, true)
	_ = caddy.Stop()
	return err
}

// caddyfileFor writes the Caddyfile startCaddy would run, without running it, and says
// where it would listen.
func caddyfileFor(t testing.TB, site string, opts ...caddyOpt) (string, caddyInstance) {
	t.Helper()
	s := newCaddySetup(t, site, opts)
	if s.json != nil {
		t.Fatal("caddyfileFor: withJSON has no Caddyfile")
	}
	_, ci := s.config(t, site)
	return ci.Caddyfile, ci
}

func newCaddySetup(t testing.TB, site string, opts []caddyOpt) *caddySetup {
	t.Helper()
	s := &caddySetup{globals: quietLog}
	for _, o := range opts {
		o(s)
	}
	if s.storage == "" {
		s.storage = t.TempDir()
	}
	whole := s.json != nil || s.caddyfile != ""
	switch {
	case whole && site != "":
		t.Fatal("startCaddy: withJSON and withCaddyfile take the whole config; the site must be empty")
	case s.json != nil && (s.process || s.tls || s.top != "" || s.caddyfile != ""):
		t.Fatal("startCaddy: withJSON takes withStorage only")
	case s.caddyfile != "" && (s.tls || s.top != ""):
		t.Fatal("startCaddy: withCaddyfile takes asProcess only")
	case s.process && s.tls:
		t.Fatal("startCaddy: withTLS runs in this process only")
	}
	return s
}

// config builds the config: JSON (withJSON) or a Caddyfile in ci.Caddyfile.
func (s *caddySetup) config(t testing.TB, site string) ([]byte, caddyInstance) {
	t.Helper()
	if s.caddyfile != "" {
		ci := caddyInstance{URL: s.siteURL, Caddyfile: s.caddyfile}
		if s.siteURL != "" {
			u, err := url.Parse(s.siteURL)
			if err != nil {
				t.Fatal(err)
			}
			if ci.Port, err = strconv.Atoi(u.Port()); err != nil {
				t.Fatalf("withCaddyfile: %s has no port", s.siteURL)
			}
		}
		return nil, ci
	}
	ci := caddyInstance{Port: freePort(t), AdminAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	ci.URL = fmt.Sprintf("http://127.0.0.1:%d", ci.Port)
	if s.json != nil {
		return s.jsonConfig(t, ci), ci
	}
	https, httpsSite := "off", ""
	if s.tls {
		ci.HTTPS = fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
		https = "disable_redirects\n\tskip_install_trust"
		httpsSite = fmt.Sprintf("\n%s {\n\tbind 127.0.0.1\n\ttls internal\n%s\n}\n", ci.HTTPS, site)
	}
	cf := fmt.Sprintf(`{
	admin %s
	auto_https %s
	persist_config off
	storage file_system %s
	%s
}
%s
http://127.0.0.1:%d {
	bind 127.0.0.1
%s
}
%s`, ci.AdminAddr, https, s.storage, s.globals, s.top, ci.Port, site, httpsSite)
	if s.top != "" {
		cf = string(caddyfile.Format([]byte(cf)))
	}
	ci.Caddyfile = cf
	return nil, ci
}

func (s *caddySetup) jsonConfig(t testing.TB, ci caddyInstance) []byte {
	t.Helper()
	var handle []any
	for _, h := range s.json {
		switch h := h.(type) {
		case *Handler:
			var m map[string]any
			if js, err := json.Marshal(h); err != nil || json.Unmarshal(js, &m) != nil {
				t.Fatalf("handler to JSON: %v", err)
			}
			m["handler"] = "signed_cookies"
			handle = append(handle, m)
		case map[string]any:
			if _, ok := h["handler"]; !ok {
				h["handler"] = "signed_cookies"
			}
			handle = append(handle, h)
		case json.RawMessage:
			handle = append(handle, h)
		default:
			t.Fatalf("withJSON: a %T is no handler", h)
		}
	}
	cfg, err := json.Marshal(map[string]any{
		"admin":   map[string]any{"listen": ci.AdminAddr, "config": map[string]any{"persist": false}},
		"storage": map[string]any{"module": "file_system", "root": s.storage},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
			"listen":          []string{fmt.Sprintf("127.0.0.1:%d", ci.Port)},
			"automatic_https": map[string]any{"disable": true},
			"routes":          []any{map[string]any{"handle": handle}},
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
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

// waitHTTPS waits until ci's HTTPS site completes a verified handshake: the internal CA and
// the certificate are made in the background.
func waitHTTPS(t testing.TB, ci *caddyInstance, storage string) {
	t.Helper()
	addr := strings.TrimPrefix(ci.HTTPS, "https://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		pem, err := os.ReadFile(filepath.Join(storage, "pki", "authorities", "local", "root.crt"))
		if err == nil {
			ci.roots = x509.NewCertPool()
			ci.roots.AppendCertsFromPEM(pem)
			var conn *tls.Conn
			conn, err = tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{RootCAs: ci.roots})
			if err == nil {
				conn.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("HTTPS on %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
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

// waitFree waits until nothing listens on addr. caddy.Stop returns once the servers have
// begun to shut down, not when their listeners are closed: a process started on the port of
// a config just loaded and stopped in this process could otherwise be taken for listening
// while the old listener still answers.
func waitFree(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s still listens", addr)
}

// caddyCommand is this test binary set to run ci's Caddyfile as the caddy command, with a
// home of its own.
func caddyCommand(t testing.TB, ci caddyInstance) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(ci.Caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), runCaddyEnv+"=1", runCaddyEnv+"_ARGS=run --config "+path+" --adapter caddyfile",
		"HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	return cmd
}

// runCaddyProcess starts ci as a child process, its output in a file (see caddyLog), and
// stops it when the test ends.
func runCaddyProcess(t testing.TB, ci caddyInstance) *exec.Cmd {
	t.Helper()
	cmd := caddyCommand(t, ci)
	logf, err := os.Create(filepath.Join(t.TempDir(), "caddy.log"))
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
	return cmd
}

// caddyProcessErr runs ci as a child process and returns its output as an error if it exits
// with one, nil (after stopping it) once its site listens.
func caddyProcessErr(t testing.TB, ci caddyInstance) error {
	t.Helper()
	cmd := caddyCommand(t, ci)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-done:
			if err != nil {
				return errors.New(out.String())
			}
			return nil
		case <-time.After(50 * time.Millisecond):
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", ci.Port), 200*time.Millisecond); err == nil {
			c.Close()
			_ = cmd.Process.Kill()
			<-done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("Caddy neither exited nor listened in 20s:\n%s", out.String())
		}
	}
}

// caddyLog is what a Caddy process started with asProcess has logged so far.
func caddyLog(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	b, err := os.ReadFile(cmd.Stdout.(*os.File).Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// awaitLog waits until a Caddy process started with asProcess has logged want.
func awaitLog(t testing.TB, cmd *exec.Cmd, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(caddyLog(t, cmd), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the log never said %q:\n%s", want, caddyLog(t, cmd))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// scrapeMetrics reads the caddy_signed_cookies_* samples from Caddy's /metrics.
func scrapeMetrics(t testing.TB, admin string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_signed_cookies_") {
			continue
		}
		k, v, _ := strings.Cut(line, " ")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("bad metric line %q", line)
		}
		out[k] = f
	}
	return out
}

// missingTool skips the test locally and fails it in CI (listed at the end of the run).
func missingTool(t testing.TB, what string) {
	t.Helper()
	testskip.Missing(t, what)
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

// postLoad loads a config through the admin API, on a connection of its own: Caddy replaces its
// admin server at every load and stops the old one in the background, so a kept-alive
// connection from the previous load may be closed under the next POST (which, unlike a GET, the
// transport does not retry).
func postLoad(t testing.TB, admin string, js []byte) {
	t.Helper()
	cl := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	// Each load replaces Caddy's admin server: a POST that meets the old one as it closes is
	// reset (or refused, until the new one listens) before Caddy reads it, and is sent again.
	// Loading a config that is already running changes nothing.
	deadline := time.Now().Add(10 * time.Second)
	var resp *http.Response
	var err error
	for {
		resp, err = cl.Post("http://"+admin+"/load", "application/json", bytes.NewReader(js))
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		t.Fatalf("POST /load: %d %s", resp.StatusCode, b.String())
	}
}

// awaitConfig returns once fresh connections to url are answered by the config whose header
// hdr is want, three times in a row. POST /load returns before the old server has shut down,
// and the old server still answers a request that reaches it on an idle keep-alive connection
// (or accepts a new one) in that moment; so the default transport's idle connections (those
// of newClient) are closed first.
func awaitConfig(t testing.TB, url, hdr, want string) {
	t.Helper()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	inARow := 0
	for {
		tr := &http.Transport{DisableKeepAlives: true}
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
		if err == nil {
			resp.Body.Close()
		}
		if err == nil && resp.Header.Get(hdr) == want {
			if inARow++; inARow == 3 {
				return
			}
		} else {
			inARow = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reloaded config (%s: %s) never answered: %v", hdr, want, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
