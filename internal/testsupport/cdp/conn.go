// Package cdp is a minimal Chrome DevTools Protocol client for the module's browser tests:
// it starts headless Chromium, opens tabs, navigates, evaluates JavaScript and reads the
// cookie store, and nothing else.
//
// It exists so that the module's consumers do not inherit a browser automation dependency:
// a test-only requirement in go.mod lands in the module graph of every Caddy build that
// imports the module. It is built on the standard library and golang.org/x/net/websocket,
// which Caddy requires anyway.
package cdp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/net/websocket"
)

// ErrClosed is the error of a call that the connection's end interrupted.
var ErrClosed = errors.New("cdp: connection closed")

// Error is an error the browser returned for a command.
type Error struct {
	Code    int64  `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data,omitempty"`
}

func (e *Error) Error() string {
	if e.Data != "" {
		return fmt.Sprintf("%s (%d): %s", e.Message, e.Code, e.Data)
	}
	return fmt.Sprintf("%s (%d)", e.Message, e.Code)
}

// message is one DevTools protocol message: a command (ID, Method, Params), its response
// (ID, Result or Error) or an event (Method, Params). SessionID names the target session;
// empty, the browser.
type message struct {
	ID        int64           `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *Error          `json:"error,omitempty"`
}

// waiter is a pending wait for an event: match runs on the reader goroutine for every event
// of the method in the session, and the first true closes done.
type waiter struct {
	sessionID, method string
	match             func(params json.RawMessage) bool
	done              chan struct{}
}

// Conn is a DevTools protocol connection over a websocket. A reader goroutine dispatches
// responses to their calls by ID and events to the waiters for them.
type Conn struct {
	ws      *websocket.Conn
	writeMu sync.Mutex

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan *message
	waiters map[*waiter]struct{}

	done chan struct{} // closed when the reader stops
	err  error         // why it stopped; set before done closes
}

// Dial connects to a DevTools websocket URL (ws://host:port/devtools/...). Chromium refuses
// a websocket handshake with an Origin header unless --remote-allow-origins lists it, and
// golang.org/x/net/websocket always sends one: origin must be what the browser allows.
func Dial(ctx context.Context, wsURL, origin string) (*Conn, error) {
	cfg, err := websocket.NewConfig(wsURL, origin)
	if err != nil {
		return nil, err
	}
	ws, err := cfg.DialContext(ctx)
	if err != nil {
		return nil, err
	}
	return newConn(ws), nil
}

func newConn(ws *websocket.Conn) *Conn {
	c := &Conn{
		ws:      ws,
		pending: map[int64]chan *message{},
		waiters: map[*waiter]struct{}{},
		done:    make(chan struct{}),
	}
	go c.read()
	return c
}

// Close closes the connection; pending calls return ErrClosed.
func (c *Conn) Close() error {
	err := c.ws.Close()
	<-c.done
	return err
}

func (c *Conn) read() {
	var err error
	for {
		var data []byte
		if err = websocket.Message.Receive(c.ws, &data); err != nil {
			break
		}
		var m message
		if err = json.Unmarshal(data, &m); err != nil {
			err = fmt.Errorf("cdp: malformed message %.200q: %w", data, err)
			break
		}
		c.mu.Lock()
		if m.ID != 0 {
			if ch, ok := c.pending[m.ID]; ok {
				delete(c.pending, m.ID)
				ch <- &m // buffered
			}
		} else {
			for w := range c.waiters {
				if w.method == m.Method && w.sessionID == m.SessionID && w.match(m.Params) {
					delete(c.waiters, w)
					close(w.done)
				}
			}
		}
		c.mu.Unlock()
	}
	c.ws.Close()
	c.mu.Lock()
	c.err = fmt.Errorf("%w: %v", ErrClosed, err)
	c.mu.Unlock()
	close(c.done)
}

// Call sends the command method with params (nil for none) to the session (empty for the
// browser), waits for its response and decodes the result into result (nil to drop it). An
// error response comes back as an *Error.
func (c *Conn) Call(ctx context.Context, sessionID, method string, params, result any) error {
	m := message{SessionID: sessionID, Method: method}
	if params != nil {
		p, err := json.Marshal(params)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		m.Params = p
	}
	ch := make(chan *message, 1)
	c.mu.Lock()
	c.nextID++
	m.ID = c.nextID
	c.pending[m.ID] = ch
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		delete(c.pending, m.ID)
		c.mu.Unlock()
	}

	data, err := json.Marshal(m)
	if err != nil {
		forget()
		return fmt.Errorf("%s: %w", method, err)
	}
	c.writeMu.Lock()
	dl, _ := ctx.Deadline() // zero: none
	c.ws.SetWriteDeadline(dl)
	err = websocket.Message.Send(c.ws, string(data)) // a text frame
	c.writeMu.Unlock()
	if err != nil {
		forget()
		select {
		case <-c.done:
			err = c.err
		default:
		}
		return fmt.Errorf("%s: %w", method, err)
	}

	var resp *message
	select {
	case resp = <-ch:
	case <-ctx.Done():
		forget()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	case <-c.done:
		select {
		case resp = <-ch: // answered just before the end
		default:
			return fmt.Errorf("%s: %w", method, c.err)
		}
	}
	if resp.Error != nil {
		return fmt.Errorf("%s: %w", method, resp.Error)
	}
	if result != nil {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("%s: decoding the result %.200q: %w", method, resp.Result, err)
		}
	}
	return nil
}

// waitFor registers a wait for the first event method of the session whose params match,
// before the command that causes it is sent. wait blocks until that event arrives, ctx ends
// or the connection closes; cancel drops the registration.
func (c *Conn) waitFor(sessionID, method string, match func(params json.RawMessage) bool) (wait func(ctx context.Context) error, cancel func()) {
	w := &waiter{sessionID: sessionID, method: method, match: match, done: make(chan struct{})}
	c.mu.Lock()
	c.waiters[w] = struct{}{}
	c.mu.Unlock()
	cancel = func() {
		c.mu.Lock()
		delete(c.waiters, w)
		c.mu.Unlock()
	}
	wait = func(ctx context.Context) error {
		select {
		case <-w.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", method, ctx.Err())
		case <-c.done:
			select {
			case <-w.done: // arrived just before the end
				return nil
			default:
				return fmt.Errorf("waiting for %s: %w", method, c.err)
			}
		}
	}
	return wait, cancel
}
