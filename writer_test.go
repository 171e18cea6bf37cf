// The response-writer capability matrix through a real Caddy: however the headers
// leave (WriteHeader, Write, ReadFrom, Flush, http.ResponseController, 1xx, 101 + hijack,
// streaming, an error before any write) and over HTTP/1.1, HTTPS, HTTP/2 and HTTP/3, managed
// cookies leave signed exactly once and never plain.

package signedcookies

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	caddy.RegisterModule(testWriter{})
	httpcaddyfile.RegisterHandlerDirective("signed_cookies_test_writer", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		h.Next()
		if h.NextArg() {
			return nil, h.ArgErr()
		}
		return new(testWriter), nil
	})
}

// testWriter is a test-only handler placed right after signed_cookies (inside a route), so
// that it drives the module's response writer directly. Under /w/<mode> it sets a managed,
// an unmanaged and a tracking-name cookie, then writes the response the <mode> way;
// elsewhere it calls next.
type testWriter struct{}

func (testWriter) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.signed_cookies_test_writer",
		New: func() caddy.Module { return new(testWriter) },
	}
}

func (testWriter) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	mode, ok := strings.CutPrefix(r.URL.Path, "/w/")
	if !ok {
		return next.ServeHTTP(w, r)
	}
	h := w.Header()
	h.Add("Set-Cookie", "session=alice; Path=/; HttpOnly")
	h.Add("Set-Cookie", "theme=dark; Path=/")
	h.Add("Set-Cookie", "vid=forged; Path=/")
	var err error
	switch mode {
	case "writeheader":
		w.WriteHeader(http.StatusCreated)
		_, err = io.WriteString(w, "body")
	case "write":
		_, err = io.WriteString(w, "body")
	case "readfrom":
		rf, ok := w.(io.ReaderFrom)
		if !ok {
			return fmt.Errorf("%T is not an io.ReaderFrom", w)
		}
		_, err = rf.ReadFrom(struct{ io.Reader }{strings.NewReader("body")})
	case "copy-file":
		f, ferr := os.Open(r.URL.Query().Get("file"))
		if ferr != nil {
			return ferr
		}
		defer f.Close()
		_, err = io.Copy(w, f)
	case "flush":
		w.(http.Flusher).Flush()
		_, err = io.WriteString(w, "body")
	case "controller":
		rc := http.NewResponseController(w)
		if err := rc.SetWriteDeadline(time.Now().Add(time.Minute)); err != nil {
			return fmt.Errorf("SetWriteDeadline through the wrapper: %v", err)
		}
		if err := rc.Flush(); err != nil {
			return err
		}
		_, err = io.WriteString(w, "body")
	case "early-hints":
		h.Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		_, err = io.WriteString(w, "body")
	case "late-cookie":
		// Set after the header write: HTTP/1 and HTTP/2 ignore it; HTTP/3 would send it.
		w.WriteHeader(http.StatusOK)
		h.Add("Set-Cookie", "session=late; Path=/")
		h.Add("Set-Cookie", "late=1; Path=/")
		_, err = io.WriteString(w, "body")
	case "error":
		return caddyhttp.Error(http.StatusBadGateway, errors.New("test writer: failing before any write"))
	default:
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("unknown mode %q", mode))
	}
	return err
}

// writerSite is signed_cookies in front of the test writer, which falls through to
// reverse_proxy (a dead upstream under /down/, up otherwise); errors get handle_errors.
func writerSite(upAddr string) string {
	return `
	route {
		signed_cookies {
			secret ` + testSecret + `
			track
			sign session
		}
		signed_cookies_test_writer
		reverse_proxy /down/* 127.0.0.1:1
		reverse_proxy ` + upAddr + `
	}
	handle_errors {
		respond "handled {err.status_code}"
	}`
}

// wantWritten is what every /w/ response carries: session signed once with its attributes,
// the unmanaged cookie untouched, the upstream's vid dropped, the module's vid added.
func wantWritten(t testing.TB, proto string) []wantLine {
	secure := ""
	if proto != "h1" {
		secure = "; Secure"
	}
	sc := signCodec(t)
	return []wantLine{
		{name: "session", rest: "; Path=/; HttpOnly", plain: "alice", codec: sc},
		{exact: "theme=dark; Path=/"},
		{name: "vid", rest: vidAttrs + secure, codec: sc},
	}
}

func TestWriterCapabilityMatrix(t *testing.T) {
	up := startUpstream(t, nil)
	tc := startCaddy(t, writerSite(up.Addr), withTLS())
	file := filepath.Join(t.TempDir(), "body.txt")
	if err := os.WriteFile(file, []byte("file body"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		mode   string
		status int
		body   string
	}{
		{"writeheader", http.StatusCreated, "body"},
		{"write", http.StatusOK, "body"},
		{"readfrom", http.StatusOK, "body"},
		{"copy-file?file=" + file, http.StatusOK, "file body"},
		{"flush", http.StatusOK, "body"},
		{"controller", http.StatusOK, "body"},
		{"early-hints", http.StatusOK, "body"},
		{"late-cookie", http.StatusOK, "body"},
		{"error", http.StatusBadGateway, "handled 502"},
	}
	for _, proto := range protocols {
		for _, c := range cases {
			mode, _, _ := strings.Cut(c.mode, "?")
			t.Run(proto+"/"+mode, func(t *testing.T) {
				resp, body, infos := getTraced(t, tc.client(t, proto), tc.url(proto)+"/w/"+c.mode)
				if resp.StatusCode != c.status || body != c.body {
					t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, c.status, c.body)
				}
				lines := resp.Header.Values("Set-Cookie")
				checkSetCookies(t, lines, wantWritten(t, proto))
				noPlain(t, lines)
				if cc := resp.Header.Get("Cache-Control"); cc != "private" {
					t.Errorf("Cache-Control %q, want private", cc)
				}
				if mode != "early-hints" {
					if len(infos) != 0 {
						t.Errorf("unexpected 1xx responses: %v", infos)
					}
					return
				}
				// The 103 went out first with the Link and the unmanaged cookie only.
				if len(infos) != 1 || infos[0].code != http.StatusEarlyHints {
					t.Fatalf("want one 103 before the 200, got %v", infos)
				}
				if infos[0].header.Get("Link") == "" {
					t.Errorf("103 lost its Link header: %q", infos[0].header)
				}
				if got := infos[0].header.Values("Set-Cookie"); len(got) != 1 || got[0] != "theme=dark; Path=/" {
					t.Errorf("103 Set-Cookie = %q, want only the unmanaged one", got)
				}
			})
		}
	}

	t.Run("dead upstream: error before any write", func(t *testing.T) {
		for _, proto := range protocols {
			resp, body := get(t, tc.client(t, proto), tc.url(proto)+"/down/x")
			if resp.StatusCode != http.StatusBadGateway || body != "handled 502" {
				t.Errorf("%s: got %d %q, want 502 through handle_errors", proto, resp.StatusCode, body)
			}
			if len(setCookies(resp, "vid")) != 1 {
				t.Errorf("%s: error response lost the new visitor cookie: %q", proto, resp.Header.Values("Set-Cookie"))
			}
		}
	})
}

func TestWriterEarlyHintsThroughProxy(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</app.js>; rel=preload; as=script")
		h.Add("Set-Cookie", "session=alice; Path=/; HttpOnly")
		h.Add("Set-Cookie", "vid=forged; Path=/")
		h.Add("Set-Cookie", "theme=dark; Path=/")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "body") // the 200 repeats the header map, cookies included
	})
	tc := startCaddy(t, writerSite(up.Addr), withTLS())
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			resp, body, infos := getTraced(t, tc.client(t, proto), tc.url(proto)+"/")
			if resp.StatusCode != http.StatusOK || body != "body" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if len(infos) != 1 || infos[0].code != http.StatusEarlyHints || infos[0].header.Get("Link") == "" {
				t.Fatalf("want the upstream's 103 with its Link, got %v", infos)
			}
			if got := infos[0].header.Values("Set-Cookie"); len(got) != 1 || got[0] != "theme=dark; Path=/" {
				t.Errorf("103 Set-Cookie = %q, want only the unmanaged one", got)
			}
			lines := resp.Header.Values("Set-Cookie")
			checkSetCookies(t, lines, wantWritten(t, proto))
			noPlain(t, lines)
		})
	}
}

func TestWriterWebsocketUpgrade(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSet-Cookie: session=alice; Path=/\r\n\r\n")
		brw.WriteString("hello\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				return
			}
			brw.WriteString("echo: " + line)
			brw.Flush()
		}
	})
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	conn, addr := dialRaw(t, ci)
	defer conn.Close()
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Visitor-Id: spoof\r\n\r\n", addr)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	lines := resp.Header.Values("Set-Cookie")
	sc := signCodec(t)
	checkSetCookies(t, lines, []wantLine{
		{name: "session", rest: "; Path=/", plain: "alice", codec: sc},
		{name: "vid", rest: vidAttrs, codec: sc},
	})
	noPlain(t, lines)
	if id := up.last().Header.Get("X-Visitor-Id"); !uuidV4.MatchString(id) {
		t.Errorf("upstream's upgrade request X-Visitor-Id = %q, want the module's", id)
	}

	// Data flows both ways through the hijacked connections.
	if got, err := br.ReadString('\n'); err != nil || got != "hello\n" {
		t.Fatalf("upstream → client: %q, %v", got, err)
	}
	for _, msg := range []string{"ping\n", "pong\n"} {
		if _, err := io.WriteString(conn, msg); err != nil {
			t.Fatal(err)
		}
		if got, err := br.ReadString('\n'); err != nil || got != "echo: "+msg {
			t.Fatalf("client → upstream → client: %q, %v; want echo of %q", got, err, msg)
		}
	}
}

func TestWriterServerSentEvents(t *testing.T) {
	gate := make(chan struct{})
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Add("Set-Cookie", "session=alice; Path=/")
		io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: two\n\n")
	})
	tc := startCaddy(t, writerSite(up.Addr), withTLS())
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			resp, err := tc.client(t, proto).Get(tc.url(proto) + "/events")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			secure := ""
			if proto != "h1" {
				secure = "; Secure"
			}
			sc := signCodec(t)
			lines := resp.Header.Values("Set-Cookie")
			checkSetCookies(t, lines, []wantLine{
				{name: "session", rest: "; Path=/", plain: "alice", codec: sc},
				{name: "vid", rest: vidAttrs + secure, codec: sc},
			})
			noPlain(t, lines)
			if cc := resp.Header.Get("Cache-Control"); cc != "no-cache, private" {
				t.Errorf("Cache-Control %q, want no-cache, private", cc)
			}
			// The first event arrives while the upstream is still holding the second: nothing
			// buffers the stream (a buffering writer would block here until the client timeout).
			br := bufio.NewReader(resp.Body)
			if ev := readEvent(t, br); ev != "data: one" {
				t.Fatalf("first event %q", ev)
			}
			select {
			case gate <- struct{}{}:
			case <-time.After(10 * time.Second):
				t.Fatal("upstream never waited for the gate")
			}
			if ev := readEvent(t, br); ev != "data: two" {
				t.Fatalf("second event %q", ev)
			}
		})
	}
}

func TestWriterIssueVerifyHTTP2HTTP3(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Add("Set-Cookie", "session=alice; Path=/; HttpOnly")
			w.Header().Add("Set-Cookie", "cart=3-apples; Path=/")
		}
		io.WriteString(w, r.Header.Get("X-Visitor-Id"))
	})
	tc := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
		sign session
		encrypt cart
	}
	reverse_proxy `+up.Addr, withTLS())
	for _, proto := range []string{"h2", "h3"} {
		t.Run(proto, func(t *testing.T) {
			c := tc.client(t, proto) // fails any response over another protocol

			resp, id := get(t, c, tc.HTTPS+"/")
			if !uuidV4.MatchString(id) {
				t.Fatalf("first visit: upstream ID %q", id)
			}
			checkSetCookies(t, resp.Header.Values("Set-Cookie"), []wantLine{{name: "vid", rest: vidAttrs + "; Secure", codec: signCodec(t)}})

			resp, again := get(t, c, tc.HTTPS+"/login")
			if again != id {
				t.Errorf("return visit: ID %q, want %q", again, id)
			}
			lines := resp.Header.Values("Set-Cookie")
			checkSetCookies(t, lines, []wantLine{
				{name: "session", rest: "; Path=/; HttpOnly", plain: "alice", codec: signCodec(t)},
				{name: "cart", rest: "; Path=/", plain: "3-apples", codec: encryptCodec(t)},
			})
			noPlain(t, lines)

			get(t, c, tc.HTTPS+"/")
			r := up.last()
			for name, want := range map[string]string{"vid": id, "session": "alice", "cart": "3-apples"} {
				if v, n := upstreamCookie(r, name); v != want || n != 1 {
					t.Errorf("upstream %s = %q (x%d), want %q", name, v, n, want)
				}
			}
			if got := r.Header.Get("X-Visitor-Id"); got != id {
				t.Errorf("upstream X-Visitor-Id %q, want %q", got, id)
			}
		})
	}
}

type info1xx struct {
	code   int
	header textproto.MIMEHeader
}

// getTraced is get that also records the 1xx responses seen before the final one.
func getTraced(t testing.TB, c *http.Client, rawURL string) (*http.Response, string, []info1xx) {
	t.Helper()
	var infos []info1xx
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			infos = append(infos, info1xx{code, h})
			return nil
		},
	}))
	resp, body := do(t, c, req)
	return resp, body, infos
}

// noPlain fails on any line carrying a managed plain value.
func noPlain(t testing.TB, lines []string) {
	t.Helper()
	for _, l := range lines {
		if strings.HasPrefix(l, "session=alice") || strings.HasPrefix(l, "vid=forged") || strings.HasPrefix(l, "cart=3-apples") {
			t.Errorf("plain managed cookie left Caddy: %q", l)
		}
	}
}

// readEvent reads one server-sent event (up to its blank line).
func readEvent(t testing.TB, br *bufio.Reader) string {
	t.Helper()
	var ev []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading event: %v", err)
		}
		if line = strings.TrimRight(line, "\r\n"); line == "" {
			return strings.Join(ev, "\n")
		}
		ev = append(ev, line)
	}
}
