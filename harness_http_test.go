// Clients of the tests: cookie-jar clients, requests written by hand, and clients that speak
// one protocol (HTTP/1.1, over TLS or not, HTTP/2, HTTP/3) to a Caddy started withTLS.

package signedcookies

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

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

// rawRequest sends a request written by hand (request line, header lines; Host is added)
// over a fresh TCP connection, so that header spellings, repeats and several Cookie lines
// reach Caddy exactly as written, and reads the response.
func rawRequest(t testing.TB, ci caddyInstance, requestLine string, headerLines ...string) (*http.Response, string) {
	t.Helper()
	conn, addr := dialRaw(t, ci)
	defer conn.Close()
	var b strings.Builder
	b.WriteString(requestLine + "\r\nHost: " + addr + "\r\n")
	for _, l := range headerLines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return rawExchange(t, conn, b.String())
}

// rawExchange writes raw to conn as it is, and reads the response and its body.
func rawExchange(t testing.TB, conn net.Conn, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

// dialRaw opens a TCP connection to ci's site with a deadline, for requests written by hand.
func dialRaw(t testing.TB, ci caddyInstance) (net.Conn, string) {
	t.Helper()
	addr := strings.TrimPrefix(ci.URL, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return conn, addr
}

// cookieLines turns Cookie values into header lines for rawRequest.
func cookieLines(values []string) []string {
	lines := make([]string, len(values))
	for i, v := range values {
		lines[i] = "Cookie: " + v
	}
	return lines
}

// protocols are the client protocols the tests of a Caddy started withTLS run over.
var protocols = []string{"h1", "h1-tls", "h2", "h3"}

// url is the site's address for proto: plain HTTP for "h1", HTTPS otherwise (withTLS).
func (ci caddyInstance) url(proto string) string {
	if proto == "h1" {
		return ci.URL
	}
	return ci.HTTPS
}

// client returns a client with a cookie jar speaking proto: "h1" (plain HTTP/1.1), "h1-tls"
// (HTTP/1.1 over TLS), "h2" (HTTP/2 over TLS) or "h3" (HTTP/3 over QUIC), trusting the CA
// of a Caddy started withTLS.
func (ci caddyInstance) client(t testing.TB, proto string) *http.Client {
	t.Helper()
	c := newClient(t)
	if proto == "h3" {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: ci.roots}}
		t.Cleanup(func() { tr.Close() })
		c.Transport = &checkProto{tr: tr, major: 3}
		return c
	}
	var p http.Protocols
	switch proto {
	case "h1", "h1-tls":
		p.SetHTTP1(true)
	case "h2":
		p.SetHTTP2(true)
	default:
		t.Fatalf("unknown protocol %q", proto)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ci.roots}, Protocols: &p}
	t.Cleanup(tr.CloseIdleConnections)
	c.Transport = &checkProto{tr: tr, major: map[bool]int{true: 2, false: 1}[proto == "h2"]}
	return c
}

// checkProto fails a round trip that did not use the expected HTTP major version.
type checkProto struct {
	tr    http.RoundTripper
	major int
}

func (c *checkProto) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.tr.RoundTrip(r)
	if err == nil && resp.ProtoMajor != c.major {
		resp.Body.Close()
		return nil, fmt.Errorf("response over %s, want HTTP/%d", resp.Proto, c.major)
	}
	return resp, err
}
