// Package nginxtest runs the real nginx (Debian's, 1.22) for the tests that compare the module
// with it or read its cookies: in the foreground, on a free loopback port, with every path it
// writes inside a temporary directory (nothing under /etc/nginx is read), stopped when the test
// ends. Without nginx a test skips locally and fails in CI (see testskip).
package nginxtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// Bin is where Debian installs nginx.
const Bin = "/usr/sbin/nginx"

// Start runs nginx with one server block, server being what follows its listen directive,
// and returns the server's base URL once it accepts connections.
func Start(t testing.TB, server string) string {
	t.Helper()
	if _, err := os.Stat(Bin); err != nil {
		testskip.Missing(t, Bin)
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
%[3]s
	}
}
`, dir, addr, server)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	errLog := filepath.Join(dir, "error.log")
	// -e: nginx opens its built-in error log before it reads the config.
	cmd := exec.Command(Bin, "-p", dir, "-c", confPath, "-e", errLog, "-g", "daemon off;")
	out, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // nginx has its own copy
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	showLog := func() string {
		o, _ := os.ReadFile(out.Name())
		e, _ := os.ReadFile(errLog)
		return string(o) + string(e)
	}
	t.Cleanup(func() {
		// SIGTERM is nginx's fast shutdown; with master_process off there is no worker to
		// leave behind.
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
