package cdp

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Options says how Start runs Chromium.
type Options struct {
	ExecPath    string    // the Chromium binary
	UserDataDir string    // the profile directory
	Flags       []string  // switches without the leading "--": "headless", "lang=en"
	Output      io.Writer // receives what Chromium prints on stdout and stderr; may be nil
}

// origin is the Origin of the client's websocket handshake, which Chromium is told to allow.
// The .invalid top-level domain never resolves, so no web page the browser loads has it.
const origin = "http://cdp-client.invalid"

// listening starts the line in which Chromium prints its browser websocket address.
const listening = "DevTools listening on "

// Browser is a Chromium process that Start started, and the connection to it.
type Browser struct {
	conn    *Conn
	proc    *os.Process
	exited  chan struct{} // closed when the process has exited
	waitErr error         // its exit status; set before exited closes
	// outputDone is closed when Chromium's output ends: its helper processes share it, so
	// then they have exited too (or closed it).
	outputDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Start starts Chromium with a DevTools port of the system's choosing and connects to it.
// The process is killed when ctx ends, so ctx bounds the browser's whole life; Close stops
// it gracefully before that.
func Start(ctx context.Context, o Options) (*Browser, error) {
	var args []string
	for _, f := range o.Flags {
		args = append(args, "--"+f)
	}
	args = append(args, "--user-data-dir="+o.UserDataDir, "--remote-debugging-port=0",
		"--remote-allow-origins="+origin, "about:blank")
	cmd := exec.Command(o.ExecPath, args...)
	// A pipe of our own rather than cmd.StdoutPipe: Chromium's helper processes inherit it,
	// and cmd.Wait must not wait for them to close it.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, err
	}
	b := &Browser{proc: cmd.Process, exited: make(chan struct{}), outputDone: make(chan struct{})}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			b.proc.Kill()
		case <-b.exited:
		}
	}()
	urls := make(chan string, 1)
	go func() {
		scanOutput(r, o.Output, urls)
		close(b.outputDone)
	}()

	fail := func(err error) (*Browser, error) {
		b.proc.Kill()
		<-b.exited
		return nil, err
	}
	var wsURL string
	select {
	case wsURL = <-urls:
		if wsURL == "" {
			b.proc.Kill()
			<-b.exited
			return nil, fmt.Errorf("chromium closed its output before it listened for DevTools (%v)", b.waitErr)
		}
	case <-b.exited:
		return nil, fmt.Errorf("chromium exited before it listened for DevTools: %v", b.waitErr)
	case <-ctx.Done():
		return fail(fmt.Errorf("waiting for chromium's DevTools address: %w", ctx.Err()))
	}
	if b.conn, err = Dial(ctx, wsURL, origin); err != nil {
		return fail(fmt.Errorf("connecting to %s: %w", wsURL, err))
	}
	return b, nil
}

// scanOutput copies Chromium's output to out line by line and sends the websocket address
// it prints on urls, or closes urls when the output ends without one.
func scanOutput(r io.ReadCloser, out io.Writer, urls chan<- string) {
	defer r.Close()
	br := bufio.NewReader(r)
	found := false
	for {
		line, err := br.ReadString('\n')
		if out != nil && line != "" {
			out.Write([]byte(line))
		}
		if !found && strings.HasPrefix(line, listening) {
			found = true
			urls <- strings.TrimSpace(line[len(listening):])
		}
		if err != nil {
			if !found {
				close(urls)
			}
			return
		}
	}
}

// Close closes the browser gracefully (Browser.close), which makes Chromium write its
// profile, and waits for the process to exit. It kills the process when ctx ends first, and
// reports that as an error, as it does a failed exit. Later calls return the first result.
func (b *Browser) Close(ctx context.Context) error {
	b.closeOnce.Do(func() {
		// Chromium can drop the connection before it answers: what counts is the exit.
		callErr := b.conn.Call(ctx, "", "Browser.close", nil, nil)
		select {
		case <-b.exited:
		case <-ctx.Done():
			b.proc.Kill()
			<-b.exited
			b.closeErr = fmt.Errorf("chromium did not exit after Browser.close (%v), killed it", ctx.Err())
		}
		b.conn.Close()
		// The helpers (the network service writes the cookie store) outlive the main process
		// a little: wait for them, so that the profile is complete and can be removed.
		var helpersErr error
		select {
		case <-b.outputDone:
		case <-ctx.Done():
			helpersErr = fmt.Errorf("chromium's helper processes had not exited when %v: its profile may be incomplete", ctx.Err())
		}
		switch {
		case b.closeErr != nil:
		case helpersErr != nil:
			b.closeErr = helpersErr
		case b.waitErr != nil:
			b.closeErr = fmt.Errorf("chromium exited: %v", b.waitErr)
		case callErr != nil && !errors.Is(callErr, ErrClosed):
			b.closeErr = callErr
		}
	})
	return b.closeErr
}

// Tab is a page target of the browser, attached in a session of its own.
type Tab struct {
	conn             *Conn
	targetID         string
	sessionID        string
	browserContextID string // empty: the default context, the profile's
}

// NewTab opens a blank tab. With newContext it is in a new browser context, an empty
// profile in memory like an incognito window, which Tab.Close disposes of.
func (b *Browser) NewTab(ctx context.Context, newContext bool) (*Tab, error) {
	t := &Tab{conn: b.conn}
	if newContext {
		var r struct {
			BrowserContextID string `json:"browserContextId"`
		}
		if err := b.conn.Call(ctx, "", "Target.createBrowserContext", nil, &r); err != nil {
			return nil, err
		}
		t.browserContextID = r.BrowserContextID
	}
	var created struct {
		TargetID string `json:"targetId"`
	}
	err := b.conn.Call(ctx, "", "Target.createTarget", struct {
		URL              string `json:"url"`
		BrowserContextID string `json:"browserContextId,omitempty"`
	}{"about:blank", t.browserContextID}, &created)
	t.targetID = created.TargetID
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	if err == nil {
		err = b.conn.Call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": t.targetID, "flatten": true}, &attached)
	}
	t.sessionID = attached.SessionID
	if err == nil {
		err = t.conn.Call(ctx, t.sessionID, "Page.enable", nil, nil)
	}
	if err == nil {
		err = t.conn.Call(ctx, t.sessionID, "Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}, nil)
	}
	if err != nil {
		t.Close(ctx)
		return nil, err
	}
	return t, nil
}

// Close closes the tab, and disposes of its browser context when NewTab made one.
func (t *Tab) Close(ctx context.Context) error {
	var err error
	if t.targetID != "" {
		err = t.conn.Call(ctx, "", "Target.closeTarget", map[string]any{"targetId": t.targetID}, nil)
	}
	if t.browserContextID != "" {
		err = errors.Join(err, t.conn.Call(ctx, "", "Target.disposeBrowserContext", map[string]any{"browserContextId": t.browserContextID}, nil))
	}
	return err
}

// Navigate loads url in the tab and waits for the new document's load event. A navigation
// that fails (a refused connection, a certificate error) returns Chromium's errorText.
func (t *Tab) Navigate(ctx context.Context, url string) error {
	// The load event can come before Page.navigate's answer names its loader: note every
	// loader that reaches "load" until the answer comes.
	var (
		mu     sync.Mutex
		loaded = map[string]bool{}
		want   string
	)
	wait, cancel := t.conn.waitFor(t.sessionID, "Page.lifecycleEvent", func(params json.RawMessage) bool {
		var ev struct{ Name, LoaderID string }
		if json.Unmarshal(params, &ev) != nil || ev.Name != "load" {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		loaded[ev.LoaderID] = true
		return want != "" && ev.LoaderID == want
	})
	defer cancel()
	var r struct {
		LoaderID  string `json:"loaderId"`
		ErrorText string `json:"errorText"`
	}
	if err := t.conn.Call(ctx, t.sessionID, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigating (Page.navigate): %s", r.ErrorText)
	}
	if r.LoaderID == "" {
		return nil // a navigation within the document: no new load
	}
	mu.Lock()
	want = r.LoaderID
	done := loaded[want]
	mu.Unlock()
	if done {
		return nil
	}
	return wait(ctx)
}

// Evaluate runs a JavaScript expression in the page, awaits it if it is a promise, and
// decodes its value into result. A thrown exception is an error, as is a value that JSON
// cannot carry (undefined, a function) when result is not nil.
func (t *Tab) Evaluate(ctx context.Context, expression string, result any) error {
	var r struct {
		Result struct {
			Type, Subtype, Description string
			Value                      json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception *struct{ Description string }
		}
	}
	err := t.conn.Call(ctx, t.sessionID, "Runtime.evaluate", map[string]any{
		"expression": expression, "returnByValue": true, "awaitPromise": true,
	}, &r)
	switch {
	case err != nil:
		return err
	case r.ExceptionDetails != nil:
		msg := r.ExceptionDetails.Text
		if e := r.ExceptionDetails.Exception; e != nil && e.Description != "" {
			msg = e.Description
		}
		return fmt.Errorf("evaluating (Runtime.evaluate): %s", msg)
	case result == nil:
		return nil
	case r.Result.Value == nil:
		return fmt.Errorf("evaluating (Runtime.evaluate): the result is %s %s, which has no JSON value", r.Result.Type, r.Result.Description)
	}
	return json.Unmarshal(r.Result.Value, result)
}

// Cookies returns the cookies the browser would send to any of urls (Network.getCookies).
func (t *Tab) Cookies(ctx context.Context, urls ...string) ([]*Cookie, error) {
	var r struct{ Cookies []*Cookie }
	err := t.conn.Call(ctx, t.sessionID, "Network.getCookies", map[string]any{"urls": urls}, &r)
	return r.Cookies, err
}

// AllCookies returns every cookie of the tab's browser context, partitioned ones included
// (Storage.getCookies).
func (t *Tab) AllCookies(ctx context.Context) ([]*Cookie, error) {
	var r struct{ Cookies []*Cookie }
	err := t.conn.Call(ctx, "", "Storage.getCookies", struct {
		BrowserContextID string `json:"browserContextId,omitempty"`
	}{t.browserContextID}, &r)
	return r.Cookies, err
}

// Cookie is a cookie as the DevTools protocol reports it (Network.Cookie).
type Cookie struct {
	Name         string
	Value        string
	Domain       string // with a leading dot for a Domain cookie; host-only without
	Path         string
	Expires      float64 // seconds since the epoch; -1 for a session cookie
	Size         int64
	HTTPOnly     bool `json:"httpOnly"`
	Secure       bool
	Session      bool
	SameSite     CookieSameSite // empty when the cookie has none
	Priority     string
	SourceScheme string
	SourcePort   int64
	PartitionKey *CookiePartitionKey // nil for an unpartitioned cookie
	// PartitionKeyOpaque is true when the partition key is opaque (the top-level site is).
	PartitionKeyOpaque bool
}

// CookieSameSite is a cookie's SameSite attribute.
type CookieSameSite string

// The values of CookieSameSite.
const (
	CookieSameSiteStrict CookieSameSite = "Strict"
	CookieSameSiteLax    CookieSameSite = "Lax"
	CookieSameSiteNone   CookieSameSite = "None"
)

// CookiePartitionKey is the partition of a partitioned (CHIPS) cookie.
type CookiePartitionKey struct {
	TopLevelSite         string // the site of the top-level URL the cookie was set under
	HasCrossSiteAncestor bool   // whether it was set in a cross-site frame tree
}

// String shows the key, not a pointer, in a Cookie printed with %v.
func (k *CookiePartitionKey) String() string {
	if k == nil {
		return "<nil>"
	}
	return fmt.Sprintf("{TopLevelSite:%s HasCrossSiteAncestor:%v}", k.TopLevelSite, k.HasCrossSiteAncestor)
}
