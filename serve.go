// The request's story: the policy runs on the request, the upstream's response goes through
// a writer that hands its headers to the policy at the final header write, and the metrics
// and logs hear what happened.

package signedcookies

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

// Placeholders set on every request.
const (
	phVisitorID  = "http.signed_cookies.visitor_id"
	phVisitorNew = "http.signed_cookies.visitor_new"
	phInvalid    = "http.signed_cookies.invalid"
	phFlask      = "http.signed_cookies.flask." // + an exposed key of the Flask session

	flowVar = "signed_cookies.flow"
)

// ServeHTTP verifies the request's cookies, gives the upstream their plain values and wraps
// the response writer so that what the upstream sets leaves signed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	f := requestFlow(r)
	pass, err := h.policy.Request(&f.Flow, r, h.clock(), h.clock)
	defer func() {
		h.report(&pass.Report)
		pass.Release()
	}()
	if err != nil {
		// The error response (Caddy's, or handle_errors') carries the clearing of the bad
		// cookies: a browser holding a stale one is not refused until it expires.
		pass.Done(w.Header())
		return caddyhttp.Error(errorStatus(err), err)
	}
	rw := writerPool.Get().(*responseWriter)
	defer writerPool.Put(rw)
	rw.wrap(w, pass)
	err = next.ServeHTTP(rw, r)
	pass.Done(w.Header())
	rw.wrap(nil, nil)
	return err
}

func errorStatus(err error) int {
	switch {
	case errors.Is(err, engine.ErrTooManyCookies):
		return http.StatusRequestHeaderFieldsTooLarge
	case errors.Is(err, engine.ErrInvalidCookie):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError // handlers that cannot share a request path
}

// flow is the request's engine.Flow and the provider of its placeholders.
type flow struct {
	engine.Flow
}

// requestFlow returns the request's flow, made by the first handler on its path: the handlers
// after it, and the error routes, share it.
func requestFlow(r *http.Request) *flow {
	if f, ok := caddyhttp.GetVar(r.Context(), flowVar).(*flow); ok {
		return f
	}
	f := new(flow)
	caddyhttp.SetVar(r.Context(), flowVar, f)
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// A provider rather than Replacer.Set: nothing is boxed or stored in the replacer's
		// map unless a placeholder is read.
		repl.Map(f.placeholder)
	}
	return f
}

func (f *flow) placeholder(key string) (any, bool) {
	switch key {
	case phVisitorID:
		return f.VisitorID()
	case phVisitorNew:
		return f.VisitorNew()
	case phInvalid:
		return f.Invalid(), true
	}
	if k, ok := strings.CutPrefix(key, phFlask); ok {
		return f.FlaskField(k)
	}
	return nil, false
}

// responseWriter hands the response's headers to the pass exactly once, at the final header
// write, however it is reached (WriteHeader, Write, ReadFrom, Flush, http.ResponseController).
type responseWriter struct {
	*caddyhttp.ResponseWriterWrapper
	pass        *engine.Pass
	wroteHeader bool
	wrapper     caddyhttp.ResponseWriterWrapper
}

// The writers are pooled: one is used by one request, until its handler returns.
var writerPool = sync.Pool{New: func() any { return new(responseWriter) }}

func (rw *responseWriter) wrap(w http.ResponseWriter, pass *engine.Pass) {
	rw.wrapper = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	rw.ResponseWriterWrapper, rw.pass, rw.wroteHeader = &rw.wrapper, pass, false
}

// WriteHeader rewrites the headers at the final status; 1xx responses pass through without
// managed cookies (101 Switching Protocols is final).
func (rw *responseWriter) WriteHeader(status int) {
	if rw.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		restore := rw.pass.Informational(rw.Header())
		rw.ResponseWriterWrapper.WriteHeader(status)
		restore()
		return
	}
	rw.wroteHeader = true
	rw.pass.Finalize(rw.Header())
	rw.ResponseWriterWrapper.WriteHeader(status)
}

func (rw *responseWriter) Write(b []byte) (int, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.Write(b)
}

// ReadFrom keeps io.Copy's fast path (sendfile) without bypassing the header rewrite.
func (rw *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	return rw.ResponseWriterWrapper.ReadFrom(r)
}

// Flush implies the final header write, as net/http's does.
func (rw *responseWriter) Flush() {
	_ = rw.FlushError()
}

// FlushError is what http.ResponseController.Flush calls (before Flush), so a flush error
// reaches the caller; like Flush, it writes the rewritten headers first.
func (rw *responseWriter) FlushError() error {
	if !rw.wroteHeader {
		rw.WriteHeader(http.StatusOK)
	}
	err := http.NewResponseController(rw.ResponseWriterWrapper.ResponseWriter).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Interface guards
var (
	_ http.ResponseWriter                       = (*responseWriter)(nil)
	_ http.Flusher                              = (*responseWriter)(nil)
	_ io.ReaderFrom                             = (*responseWriter)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*responseWriter)(nil)
)
