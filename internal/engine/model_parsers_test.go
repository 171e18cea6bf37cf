// The model's check of the forwarded Cookie headers through the parsers upstreams use:
// Python's http.cookies.SimpleCookie and werkzeug's parse_cookie (Flask), PHP's $_COOKIE
// (php-cgi, over FastCGI), and the `cookie` package Express uses (Node). Each tool runs once
// over every header of the run, in one batch.

package engine

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// TestModelRealParsers runs generated exchanges through the engine, and every forwarded
// Cookie header through the real parsers: none may read a pair the model does not allow.
func TestModelRealParsers(t *testing.T) {
	// The exchanges, and what each upstream read.
	var views []mView
	var st mStats
	for seed := uint64(1); len(views) < 600 && seed < 5000; seed++ {
		g := newGen(nil, seed)
		pth := g.path()
		pols, errPol, why := pth.compile()
		if why != "" {
			continue
		}
		st.configs++
		for n := 1 + g.intn(3); n > 0; n-- {
			x := g.exchange(pth)
			x.fillNginx(g, pth)
			out := x.run(pth, pols, errPol)
			_, vs := mCheck(pth, x, out)
			views = append(views, vs...)
			st.exchanges++
		}
	}
	// Every header a parser must read: the forwarded ones, and name=value for every value the
	// model allows a name the parsers may read as managed (how each parser reads an allowed
	// pair is what it may read).
	seen := map[string]bool{}
	var headers []string
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			headers = append(headers, h)
		}
	}
	for _, v := range views {
		add(v.forwarded)
		for _, h := range v.ideals() {
			add(h)
		}
	}
	// Canaries: headers that each parser reads as a session cookie the model does not allow,
	// so that a parser that reads nothing cannot pass.
	canary := mView{where: "canary", md: newModel([]*mSpec{{sign: []string{"session"}}}, nil, false),
		consent: func(*mSpec) bool { return true }}
	canaries := []string{"a=1 session=forged", "x=1,session=forged", "session[x]=forged", "session =forged", "session=forged"}
	for _, h := range canaries {
		add(h)
	}
	t.Logf("%d paths, %d exchanges, %d upstream reads, %d headers to parse", st.configs, st.exchanges, len(views), len(headers))

	tools := []struct {
		name  string
		parse func(t *testing.T, headers []string) map[string][][][2]string // reader name → per header
	}{
		{"python3", parsePython},
		{"php-cgi", parsePHP},
		{"node", parseNode},
	}
	for _, tool := range tools {
		t.Run(tool.name, func(t *testing.T) {
			start := time.Now()
			results := tool.parse(t, headers)
			for name, per := range results {
				if len(per) != len(headers) {
					t.Fatalf("%s: %d results for %d headers", name, len(per), len(headers))
				}
				byHeader := make(map[string][][2]string, len(headers))
				for i, h := range headers {
					byHeader[h] = per[i]
				}
				rd := reader{name: name, read: func(h string) [][2]string {
					r, ok := byHeader[h]
					if !ok {
						t.Fatalf("%s: header %q was not parsed: the ideals miss it", name, h)
					}
					return r
				}}
				caught := 0
				for _, h := range canaries {
					caught += len(canary.md.checkReader("canary", rd, h, "", canary.consent))
				}
				if caught == 0 {
					t.Errorf("%s reads no forged session in %q", name, canaries)
				}
				var bad []string
				for _, v := range views {
					bad = append(bad, v.md.checkReader(v.where, rd, v.forwarded, v.vid, v.consent)...)
				}
				for i, b := range bad {
					if i == 10 {
						t.Errorf("… and %d more", len(bad)-10)
						break
					}
					t.Error(b)
				}
			}
			t.Logf("%d headers in %v", len(headers), time.Since(start).Round(time.Millisecond))
		})
	}
}

// ideals are the headers name=value for the values the model allows each name a parser of
// the forwarded header may read as managed.
func (v mView) ideals() []string {
	var names []string
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, n := range v.md.appNames() {
		add(n)
	}
	for _, p := range mSplitHeader(v.forwarded) {
		for _, n := range append([]string{p[0]}, mHidden(p[0]+"="+p[1])...) {
			for _, m := range v.md.readsAs(n) {
				add(m)
			}
		}
	}
	var out []string
	for _, m := range names {
		vals, _ := v.md.allowed(m, v.vid, v.consent)
		for _, a := range vals {
			out = append(out, m+"="+a)
		}
	}
	return out
}

// hexPairs decodes a tool's answer: per header, pairs of hex-encoded names and values.
func hexPairs(t *testing.T, raw [][][2]string) [][][2]string {
	t.Helper()
	out := make([][][2]string, len(raw))
	for i, pairs := range raw {
		for _, p := range pairs {
			n, err1 := hex.DecodeString(p[0])
			v, err2 := hex.DecodeString(p[1])
			if err1 != nil || err2 != nil {
				t.Fatalf("bad hex in %q", p)
			}
			out[i] = append(out[i], [2]string{string(n), string(v)})
		}
	}
	return out
}

func hexHeaders(headers []string) []byte {
	hs := make([]string, len(headers))
	for i, h := range headers {
		hs[i] = hex.EncodeToString([]byte(h))
	}
	b, _ := json.Marshal(hs)
	return b
}

// lookTool finds a tool, or skips (fails in CI) without it.
func lookTool(t *testing.T, name, what string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testskip.Missing(t, what)
	}
	return p
}

// The headers reach Python as WSGI gives them (latin-1 text); names and values come back as
// UTF-8.
const pythonParsers = `
import sys, json, http.cookies
from werkzeug.http import parse_cookie
def h(s): return s.encode('utf-8', 'surrogateescape').hex()
out = {'SimpleCookie': [], 'werkzeug': []}
for raw in json.load(sys.stdin):
    header = bytes.fromhex(raw).decode('latin-1')
    c = http.cookies.SimpleCookie()
    try:
        c.load(header)
    except http.cookies.CookieError:
        pass
    out['SimpleCookie'].append([[h(k), h(m.value)] for k, m in c.items()])
    out['werkzeug'].append([[h(k), h(v)] for k, v in parse_cookie(header).items(multi=True)])
json.dump(out, sys.stdout)
`

func parsePython(t *testing.T, headers []string) map[string][][][2]string {
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		py = lookTool(t, "python3", "python3 with werkzeug")
	}
	cmd := exec.Command(py, "-c", pythonParsers)
	cmd.Stdin = bytes.NewReader(hexHeaders(headers))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "No module named") {
			testskip.Missing(t, "python3 with werkzeug (python3-flask)")
		}
		t.Fatalf("python3: %v: %s", err, stderr.String())
	}
	var raw map[string][][][2]string
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string][][][2]string{}
	for k, v := range raw {
		out["Python "+k] = hexPairs(t, v)
	}
	return out
}

// The script reads $_COOKIE as PHP filled it from HTTP_COOKIE: names mangled, arrays built,
// the first of duplicate names kept, values %-decoded.
const phpScript = `<?php
header('Content-Type: text/plain');
$out = [];
foreach ($_COOKIE as $k => $v) {
	$out[] = [bin2hex((string)$k), bin2hex(is_array($v) ? "\0array " . json_encode($v) : $v)];
}
echo json_encode($out);
`

func parsePHP(t *testing.T, headers []string) map[string][][][2]string {
	bin := lookTool(t, "php-cgi", "php-cgi")
	dir := t.TempDir()
	script := filepath.Join(dir, "cookies.php")
	if err := os.WriteFile(script, []byte(phpScript), 0o644); err != nil {
		t.Fatal(err)
	}
	// One php-cgi serving FastCGI on a socket it gets as its standard input.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-d", "cgi.force_redirect=0", "-d", "display_errors=stderr")
	cmd.Stdin = lf
	cmd.Env = append(os.Environ(), "PHP_FCGI_CHILDREN=0", "PHP_FCGI_MAX_REQUESTS=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() {
		cancel()
		_ = cmd.Wait()
	}()
	var per [][][2]string
	for i, h := range headers {
		body, err := fcgiGet(ln.Addr().String(), map[string]string{
			"SCRIPT_FILENAME": script, "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
			"GATEWAY_INTERFACE": "CGI/1.1", "HTTP_COOKIE": h, "REQUEST_URI": "/", "SCRIPT_NAME": "/cookies.php",
		})
		if err != nil {
			t.Fatalf("php-cgi, header %d: %v (%s)", i, err, stderr.String())
		}
		var raw [][2]string
		if err := json.Unmarshal(body, &raw); err != nil {
			t.Fatalf("php-cgi, header %q: %v: %q", h, err, body)
		}
		per = append(per, hexPairs(t, [][][2]string{raw})[0])
	}
	return map[string][][][2]string{"PHP $_COOKIE": per}
}

// fcgiGet makes one FastCGI responder request (no body) and returns the response's body.
func fcgiGet(addr string, params map[string]string) ([]byte, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	record := func(typ byte, content []byte) []byte {
		h := []byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0}
		return append(h, content...)
	}
	var req []byte
	req = append(req, record(1, []byte{0, 1, 0, 0, 0, 0, 0, 0})...) // BEGIN_REQUEST, responder
	var p []byte
	length := func(n int) []byte {
		if n < 128 {
			return []byte{byte(n)}
		}
		return binary.BigEndian.AppendUint32(nil, uint32(n)|1<<31)
	}
	for k, v := range params {
		p = append(p, length(len(k))...)
		p = append(p, length(len(v))...)
		p = append(p, k...)
		p = append(p, v...)
	}
	for len(p) > 0 {
		n := min(len(p), 65535)
		req = append(req, record(4, p[:n])...) // PARAMS
		p = p[n:]
	}
	req = append(req, record(4, nil)...)
	req = append(req, record(5, nil)...) // STDIN, empty
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	r := bufio.NewReader(c)
	var stdout, stderr []byte
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return nil, err
		}
		content := make([]byte, int(h[4])<<8|int(h[5]))
		if _, err := io.ReadFull(r, content); err != nil {
			return nil, err
		}
		if _, err := r.Discard(int(h[6])); err != nil {
			return nil, err
		}
		switch h[1] {
		case 6:
			stdout = append(stdout, content...)
		case 7:
			stderr = append(stderr, content...)
		case 3: // END_REQUEST
			_, body, ok := bytes.Cut(stdout, []byte("\r\n\r\n"))
			if !ok {
				return nil, fmt.Errorf("no header end in %q (stderr %q)", stdout, stderr)
			}
			if len(stderr) > 0 {
				return nil, errors.New(string(stderr))
			}
			return body, nil
		}
	}
}

// nodeCookieVersion is the version of `cookie` that Express's cookie-parser 1.4.7 uses.
const nodeCookieVersion = "0.7.2"

// The headers reach Node as its HTTP parser gives them (latin-1 text).
const nodeScript = `
const cookie = require(process.argv[1]);
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  const h = s => Buffer.from(s, 'utf8').toString('hex');
  const out = JSON.parse(input).map(raw => {
    const header = Buffer.from(raw, 'hex').toString('latin1');
    return Object.entries(cookie.parse(header)).map(([k, v]) => [h(k), h(v)]);
  });
  process.stdout.write(JSON.stringify(out));
});
`

func parseNode(t *testing.T, headers []string) map[string][][][2]string {
	node := lookTool(t, "node", "node")
	npm := lookTool(t, "npm", "npm")
	// The package is installed once per machine, into a directory of its own.
	dir := filepath.Join(os.TempDir(), "signedcookies-node-cookie-"+nodeCookieVersion)
	module := filepath.Join(dir, "node_modules", "cookie")
	if _, err := os.Stat(filepath.Join(module, "package.json")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		tmp, err := os.MkdirTemp(os.TempDir(), "signedcookies-node-cookie-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(tmp)
		out, err := exec.CommandContext(ctx, npm, "install", "--prefix", tmp, "--no-audit", "--no-fund", "--no-save",
			"cookie@"+nodeCookieVersion).CombinedOutput()
		if err != nil {
			t.Logf("npm install cookie@%s: %v\n%s", nodeCookieVersion, err, out)
			testskip.Missing(t, "the npm package cookie (npm install failed)")
		}
		if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) {
			if _, statErr := os.Stat(filepath.Join(module, "package.json")); statErr != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(node, "-e", nodeScript, module)
	cmd.Stdin = bytes.NewReader(hexHeaders(headers))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.String())
	}
	var raw [][][2]string
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return map[string][][][2]string{"Node cookie " + nodeCookieVersion: hexPairs(t, raw)}
}
