package cdp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// fake is a websocket server that plays the browser: reply sees every command the client
// sends, in order, and answers through send (or not at all).
type fake struct {
	t    *testing.T
	ws   *websocket.Conn
	conn *Conn // the client, dialed to the fake
}

// textCodec receives a message and fails on anything but a text frame, which is what
// Chromium expects.
var textCodec = websocket.Codec{
	Marshal: func(v any) ([]byte, byte, error) { b, err := json.Marshal(v); return b, websocket.TextFrame, err },
	Unmarshal: func(data []byte, payloadType byte, v any) error {
		if payloadType != websocket.TextFrame {
			return errors.New("not a text frame")
		}
		return json.Unmarshal(data, v)
	},
}

func newFake(t *testing.T, reply func(f *fake, m message)) *fake {
	t.Helper()
	f := &fake{t: t}
	served := make(chan struct{})
	srv := httptest.NewServer(websocket.Handler(func(ws *websocket.Conn) {
		defer close(served)
		f.ws = ws
		for {
			var m message
			if err := textCodec.Receive(ws, &m); err != nil {
				if err != io.EOF && !strings.Contains(err.Error(), "closed") {
					t.Errorf("fake browser: %v", err)
				}
				return
			}
			reply(f, m)
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/devtools/browser/fake", origin)
	if err != nil {
		t.Fatal(err)
	}
	f.conn = c
	t.Cleanup(func() {
		c.Close()
		<-served
		srv.Close()
	})
	return f
}

// send writes a raw message to the client.
func (f *fake) send(raw string) {
	if err := websocket.Message.Send(f.ws, raw); err != nil {
		f.t.Errorf("fake browser: %v", err)
	}
}

func (f *fake) respond(m message, result any) {
	b, err := json.Marshal(map[string]any{"id": m.ID, "sessionId": m.SessionID, "result": result})
	if err != nil {
		f.t.Fatal(err)
	}
	f.send(string(b))
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Concurrent calls get increasing, distinct IDs, and each gets its own response although
// the browser answers in reverse order with events in between.
func TestCallDispatchesByID(t *testing.T) {
	const n = 5
	var got []message
	f := newFake(t, func(f *fake, m message) {
		got = append(got, m)
		if len(got) < n {
			return
		}
		f.send(`{"method":"Page.lifecycleEvent","sessionId":"S","params":{"name":"load"}}`)
		for i := n - 1; i >= 0; i-- {
			f.respond(got[i], map[string]any{"method": got[i].Method, "params": got[i].Params})
			f.send(`{"method":"Target.targetInfoChanged","params":{}}`)
		}
	})
	ctx := testCtx(t)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			method := "Test.m" + string(rune('a'+i))
			var r struct {
				Method string
				Params struct{ I int }
			}
			if err := f.conn.Call(ctx, "S", method, map[string]int{"i": i}, &r); err != nil {
				t.Errorf("%s: %v", method, err)
			} else if r.Method != method || r.Params.I != i {
				t.Errorf("%s got the response %+v", method, r)
			}
		})
	}
	wg.Wait()
	ids := map[int64]bool{}
	for _, m := range got {
		if m.SessionID != "S" || !strings.HasPrefix(m.Method, "Test.m") {
			t.Errorf("the browser received %+v", m)
		}
		ids[m.ID] = true
	}
	for id := int64(1); id <= n; id++ {
		if !ids[id] {
			t.Errorf("IDs sent %v: want 1 to %d", ids, n)
		}
	}

	// The next call takes the next ID, and has no params when given none.
	f2 := newFake(t, func(f *fake, m message) {
		if m.ID != 1 || m.Params != nil || m.SessionID != "" {
			t.Errorf("a browser call without params sent %+v", m)
		}
		f.respond(m, struct{}{})
	})
	if err := f2.conn.Call(ctx, "", "Browser.getVersion", nil, nil); err != nil {
		t.Fatal(err)
	}
}

// An error response is an *Error that carries the browser's message.
func TestCallError(t *testing.T) {
	f := newFake(t, func(f *fake, m message) {
		f.send(`{"id":1,"error":{"code":-32602,"message":"Invalid parameters","data":"Failed to deserialize params.url"}}`)
	})
	err := f.conn.Call(testCtx(t), "S", "Page.navigate", map[string]int{"url": 5}, nil)
	var cdpErr *Error
	if !errors.As(err, &cdpErr) || cdpErr.Code != -32602 {
		t.Fatalf("got %v, want an *Error", err)
	}
	want := "Page.navigate: Invalid parameters (-32602): Failed to deserialize params.url"
	if err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

// A browser that does not answer costs the call its deadline, no more; a connection that
// ends fails the calls waiting on it.
func TestCallDeadlineAndClose(t *testing.T) {
	hang := make(chan message, 2)
	f := newFake(t, func(f *fake, m message) { hang <- m })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := f.conn.Call(ctx, "", "Browser.close", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered call: %v, want the deadline", err)
	}
	<-hang
	// A late answer to the abandoned call is dropped.
	f.send(`{"id":1,"result":{}}`)

	errc := make(chan error, 1)
	go func() { errc <- f.conn.Call(testCtx(t), "", "Browser.close", nil, nil) }()
	<-hang
	f.ws.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("call on a closed connection: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a call outlived its connection")
	}
	if err := f.conn.Call(testCtx(t), "", "Browser.close", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call after the end: %v, want ErrClosed", err)
	}
}

// Navigate returns once its own document has loaded, whether the load event comes before
// or after Page.navigate's answer, and reports the errorText of a failed navigation.
func TestNavigate(t *testing.T) {
	const event = `{"method":"Page.lifecycleEvent","sessionId":"S","params":{"frameId":"F","loaderId":"%s","name":"%s"}}`
	var mode string
	late := make(chan func(), 1)
	f := newFake(t, func(f *fake, m message) {
		var p struct{ URL string }
		json.Unmarshal(m.Params, &p)
		if m.Method != "Page.navigate" || m.SessionID != "S" || p.URL != "http://example.test/" {
			t.Errorf("the browser received %+v", m)
		}
		ev := func(loader, name string) { f.send(fmt.Sprintf(event, loader, name)) }
		switch mode {
		case "load first":
			ev("L0", "load") // an older document's
			ev("L1", "DOMContentLoaded")
			ev("L1", "load")
			f.respond(m, map[string]string{"frameId": "F", "loaderId": "L1"})
		case "load after":
			f.respond(m, map[string]string{"frameId": "F", "loaderId": "L2"})
			ev("L0", "load")
			late <- func() { ev("L2", "load") }
		case "error":
			f.respond(m, map[string]string{"frameId": "F", "loaderId": "L3", "errorText": "net::ERR_CONNECTION_REFUSED"})
		case "same document":
			f.respond(m, map[string]string{"frameId": "F"})
		}
	})
	tab := &Tab{conn: f.conn, sessionID: "S"}
	ctx := testCtx(t)

	for _, mode = range []string{"load first", "same document"} {
		if err := tab.Navigate(ctx, "http://example.test/"); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}

	mode = "load after"
	done := make(chan error, 1)
	go func() { done <- tab.Navigate(ctx, "http://example.test/") }()
	load := <-late
	select {
	case err := <-done:
		t.Fatalf("Navigate returned before its load event: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	load()
	if err := <-done; err != nil {
		t.Errorf("load after the answer: %v", err)
	}

	mode = "error"
	if err := tab.Navigate(ctx, "http://example.test/"); err == nil || !strings.Contains(err.Error(), "net::ERR_CONNECTION_REFUSED") {
		t.Errorf("failed navigation: %v, want its errorText", err)
	}

	// No load at all: the deadline ends the wait.
	mode = "load after"
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := tab.Navigate(short, "http://example.test/"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("navigation that never loads: %v, want the deadline", err)
	}
	<-late
}

// Evaluate asks for the value itself, awaits promises, and turns exceptions and values
// without JSON into errors.
func TestEvaluate(t *testing.T) {
	results := map[string]string{
		"document.cookie": `{"result":{"type":"string","value":"a=b; c=d"}}`,
		"void 0":          `{"result":{"type":"undefined"}}`,
		"boom()": `{"result":{"type":"object","subtype":"error"},"exceptionDetails":{"exceptionId":1,"text":"Uncaught",
			"exception":{"type":"object","subtype":"error","description":"ReferenceError: boom is not defined"}}}`,
	}
	f := newFake(t, func(f *fake, m message) {
		var p struct {
			Expression                  string
			ReturnByValue, AwaitPromise bool
		}
		json.Unmarshal(m.Params, &p)
		if m.Method != "Runtime.evaluate" || m.SessionID != "S" || !p.ReturnByValue || !p.AwaitPromise {
			t.Errorf("the browser received %+v", m)
		}
		f.send(`{"id":` + jsonString(m.ID) + `,"sessionId":"S","result":` + results[p.Expression] + `}`)
	})
	tab := &Tab{conn: f.conn, sessionID: "S"}
	ctx := testCtx(t)

	var s string
	if err := tab.Evaluate(ctx, "document.cookie", &s); err != nil || s != "a=b; c=d" {
		t.Errorf("document.cookie: %q, %v", s, err)
	}
	if err := tab.Evaluate(ctx, "void 0", &s); err == nil || !strings.Contains(err.Error(), "undefined") {
		t.Errorf("undefined into a string: %v, want an error", err)
	}
	if err := tab.Evaluate(ctx, "void 0", nil); err != nil {
		t.Errorf("undefined, result ignored: %v", err)
	}
	if err := tab.Evaluate(ctx, "boom()", &s); err == nil || !strings.Contains(err.Error(), "ReferenceError: boom is not defined") {
		t.Errorf("exception: %v, want its description", err)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// The cookies decode from what Chromium sends; Storage.getCookies goes to the browser, for
// the tab's browser context.
func TestCookies(t *testing.T) {
	const cookies = `{"cookies":[{"name":"__Host-vid","value":"v1","domain":"localhost","path":"/",
		"expires":1.8e9,"size":14,"httpOnly":true,"secure":true,"session":false,"sameSite":"None",
		"priority":"Medium","sourceScheme":"Secure","sourcePort":8443,
		"partitionKey":{"topLevelSite":"https://localhost","hasCrossSiteAncestor":false},"partitionKeyOpaque":false},
		{"name":"s","value":"","domain":".example.test","path":"/a","expires":-1,"size":1,"httpOnly":false,
		"secure":false,"session":true,"priority":"Medium","sourceScheme":"NonSecure","sourcePort":80}]}`
	f := newFake(t, func(f *fake, m message) {
		switch m.Method {
		case "Storage.getCookies":
			if m.SessionID != "" || string(m.Params) != `{"browserContextId":"C"}` {
				t.Errorf("the browser received %s %s %s", m.SessionID, m.Method, m.Params)
			}
		case "Network.getCookies":
			if m.SessionID != "S" || string(m.Params) != `{"urls":["https://localhost/"]}` {
				t.Errorf("the browser received %s %s %s", m.SessionID, m.Method, m.Params)
			}
		}
		f.send(`{"id":` + jsonString(m.ID) + `,"result":` + cookies + `}`)
	})
	tab := &Tab{conn: f.conn, sessionID: "S", browserContextID: "C"}
	ctx := testCtx(t)
	all, err := tab.AllCookies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []*Cookie{{
		Name: "__Host-vid", Value: "v1", Domain: "localhost", Path: "/", Expires: 1.8e9, Size: 14,
		HTTPOnly: true, Secure: true, SameSite: CookieSameSiteNone, Priority: "Medium",
		SourceScheme: "Secure", SourcePort: 8443, PartitionKey: &CookiePartitionKey{TopLevelSite: "https://localhost"},
	}, {
		Name: "s", Domain: ".example.test", Path: "/a", Expires: -1, Size: 1, Session: true,
		Priority: "Medium", SourceScheme: "NonSecure", SourcePort: 80,
	}}
	if !reflect.DeepEqual(all, want) {
		t.Errorf("cookies\n%+v\nwant\n%+v", all, want)
	}
	if forURL, err := tab.Cookies(ctx, "https://localhost/"); err != nil || len(forURL) != 2 {
		t.Errorf("Network.getCookies: %v, %v", forURL, err)
	}
}

// scanOutput passes every line on and finds the websocket address among them.
func TestScanOutput(t *testing.T) {
	const out = "[0101/000000.000:ERROR:dbus/bus.cc(408)] Failed to connect to the bus\n" +
		"\nDevTools listening on ws://127.0.0.1:40503/devtools/browser/0f4a9c1e-1\n" +
		"[0101/000000.100:INFO:CONSOLE(1)] later\n"
	var got strings.Builder
	urls := make(chan string, 1)
	scanOutput(io.NopCloser(strings.NewReader(out)), &got, urls)
	if u := <-urls; u != "ws://127.0.0.1:40503/devtools/browser/0f4a9c1e-1" {
		t.Errorf("address %q", u)
	}
	if got.String() != out {
		t.Errorf("output passed on %q, want %q", got.String(), out)
	}

	urls = make(chan string, 1)
	scanOutput(io.NopCloser(strings.NewReader("no address, and no newline")), nil, urls)
	if u, ok := <-urls; ok {
		t.Errorf("address %q in output without one", u)
	}
}
