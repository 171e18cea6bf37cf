package nginxuid

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/internal/testskip"
)

const nginxBin = "/usr/sbin/nginx"

// missingTool skips the test locally and fails it in CI (listed at the end of the run).
func missingTool(t testing.TB, what string) {
	t.Helper()
	testskip.Missing(t, what)
}

func TestMain(m *testing.M) { os.Exit(testskip.Main(m)) }

// startNginx runs nginx in the foreground on a free loopback port, with every
// path it writes inside a temporary directory, and returns its base URL.
// Each location answers "$uid_got|$uid_set".
func startNginx(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(nginxBin); err != nil {
		missingTool(t, nginxBin)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	dir := t.TempDir()
	conf := fmt.Sprintf(`
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s/client_body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s;
		userid on;
		userid_name uid;
		userid_expires 365d;
		default_type text/plain;
		location / { return 200 "$uid_got|$uid_set"; }
		location /mark { userid_mark x; return 200 "$uid_got|$uid_set"; }
	}
}
`, dir, addr)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	// -e: nginx opens its built-in error log before it reads the config.
	cmd := exec.Command(nginxBin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", errLog, "-g", "daemon off;")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	showLog := func() string {
		b, _ := os.ReadFile(errLog)
		return out.String() + string(b)
	}
	t.Cleanup(func() {
		// SIGTERM is nginx's fast shutdown; master_process off means there
		// is no worker to leave behind.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("nginx output and error log:\n%s", showLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "http://" + addr
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited before listening:\n%s", showLog())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx is not listening on %s:\n%s", addr, showLog())
		}
	}
}

// uidVars requests url, with "Cookie: uid=<cookie>" when withCookie, and returns nginx's $uid_got and $uid_set and the uid cookie it set.
func uidVars(t *testing.T, url, cookie string, withCookie bool) (got, set, setCookie string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withCookie {
		req.Header.Set("Cookie", "uid="+cookie)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %q %v", url, resp.Status, body, err)
	}
	got, set, found := strings.Cut(string(body), "|")
	if !found {
		t.Fatalf("GET %s: body %q", url, body)
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "uid" {
			setCookie = ck.Value
		}
	}
	return got, set, setCookie
}

func TestAgainstNginx(t *testing.T) {
	base := startNginx(t)

	// A fresh cookie: nginx prints the new ID in $uid_set, with the prefix.
	got, set, cookie := uidVars(t, base+"/", "", false)
	if got != "" || cookie == "" {
		t.Fatalf("first visit: $uid_got %q, Set-Cookie uid=%q", got, cookie)
	}
	id, ok := Parse(cookie)
	if !ok {
		t.Fatalf("Parse(%q) rejects nginx's own cookie", cookie)
	}
	if want := "uid=" + Hex(id); set != want {
		t.Fatalf("nginx's $uid_set = %q, Hex gives %q", set, want)
	}
	// Word 0 of a v2 ID is the server's IPv4 address in network order.
	if id[0] != 127 {
		t.Errorf("first ID byte %d, want 127 (the server address)", id[0])
	}
	if enc := Encode(id); enc != cookie {
		t.Errorf("nginx wrote %q, Encode writes %q", cookie, enc)
	}

	// The cookie comes back: nginx keeps it and sets none.
	got, set, again := uidVars(t, base+"/", cookie, true)
	if want := "uid=" + Hex(id); got != want || set != "" || again != "" {
		t.Fatalf("return visit: $uid_got %q $uid_set %q Set-Cookie %q, want $uid_got %q only", got, set, again, want)
	}

	// A cookie from Encode is taken as it stands.
	var mine [16]byte
	rand.Read(mine[:])
	mine[15] |= 1 // a zero last word is no ID to nginx
	got, set, again = uidVars(t, base+"/", Encode(mine), true)
	if want := "uid=" + Hex(mine); got != want || set != "" || again != "" {
		t.Fatalf("Encode(%x): $uid_got %q $uid_set %q Set-Cookie %q, want $uid_got %q only", mine, got, set, again, want)
	}

	// With userid_mark nginx writes the mark in place of the first '='.
	_, set, marked := uidVars(t, base+"/mark", "", false)
	if !strings.HasSuffix(marked, "x=") || len(marked) != 24 {
		t.Errorf("userid_mark x: cookie %q", marked)
	}
	if mid, ok := Parse(marked); !ok || set != "uid="+Hex(mid) {
		t.Errorf("marked cookie %q: Parse ok=%v Hex %s, nginx $uid_set %q", marked, ok, Hex(mid), set)
	}

	// Every table case: nginx's $uid_got is "uid=<Hex>" exactly when Parse
	// accepts, and a rejected value gets a new cookie.
	for _, c := range parseCases() {
		if c.noHTTP {
			continue
		}
		got, set, _ := uidVars(t, base+"/", c.value, true)
		id, ok := Parse(c.value)
		want := ""
		if ok {
			want = "uid=" + Hex(id)
		}
		if got != want || (set == "") != ok {
			t.Errorf("%s: uid=%.40q: nginx $uid_got %q $uid_set %q; Parse gives ok=%v %q", c.name, c.value, got, set, ok, want)
		}
	}
}
