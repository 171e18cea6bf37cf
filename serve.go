// The request's story: the policy runs on the request, the upstream's response goes through
// a writer that hands its headers to the policy at the final header write, and the metrics
// and logs hear what happened.

package signedcookies

import (
	"errors"
	"io"
	"net/http"
	"reflect"
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
//
// The first signed_cookies handler on a request's path keeps the state the handlers on the
// path share in its pass (no allocation); the later ones find it in the request's vars while
// it runs. Error routes run after it returned: on an error, a copy that outlives the pass
// takes its place.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// The vars map is looked up once (GetVar and SetVar would walk the context three times).
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	owner := reflect.ValueOf(vars).Pointer() // the request's identity: its vars map (0 for none)
	prev, _ := vars[flowVar].(*engine.Flow)
	if prev != nil && !prev.Owned(owner) {
		prev = nil // left by a finished first pass (see below), its flow since reused
	}
	pass, err := h.policy.Request(prev, r, h.clock(), h.clock)
	var ph *placeholders
	if prev == nil {
		pass.Flow().Own(owner)
		if vars != nil {
			vars[flowVar] = pass.Flow()
		}
		ph = registerPlaceholders(r, pass.Flow())
	}
	defer func() {
		h.report(&pass.Report, r.Header["Cookie"])
		if prev == nil {
			// The pass goes back to its pool. On an error, error routes run next and read the
			// flow: a copy that outlives the pass takes its place. Otherwise the entry is left:
			// writing the vars map now would race with reverse_proxy, whose dials read it from
			// goroutines that may outlive the request; should a handler still run (an outer
			// one's error), the flow, reused by then, is no longer this request's (Owned).
			kept := (*engine.Flow)(nil)
			if err != nil {
				kept = pass.Flow().Keep()
				if vars != nil {
					vars[flowVar] = kept
				}
			}
			ph.detach(kept)
		}
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

// placeholders provides the request's placeholders from its flow: the live one while the
// first handler runs, then the copy error routes use, or the values as they ended.
type placeholders struct {
	flow  *engine.Flow // nil once ended
	ended engine.Placeholders
}

// registerPlaceholders adds the request's placeholders to its replacer, if it has one.
func registerPlaceholders(r *http.Request, f *engine.Flow) *placeholders {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return nil
	}
	ph := &placeholders{flow: f}
	// A provider rather than Replacer.Set: nothing is boxed or stored in the replacer's map
	// unless a placeholder is read.
	repl.Map(ph.get)
	return ph
}

// detach points the placeholders at what outlives the first handler's pass: the kept flow,
// or a copy of the values.
func (ph *placeholders) detach(kept *engine.Flow) {
	if ph == nil {
		return
	}
	if kept == nil {
		ph.ended = ph.flow.Placeholders()
	}
	ph.flow = kept
}

func (ph *placeholders) get(key string) (any, bool) {
	if f := ph.flow; f != nil {
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
	v := &ph.ended
	switch key {
	case phVisitorID:
		return v.VisitorID, v.Tracked
	case phVisitorNew:
		return v.VisitorNew, v.Tracked
	case phInvalid:
		return v.Invalid, true
	}
	if k, ok := strings.CutPrefix(key, phFlask); ok {
		for _, fd := range v.Flask {
			if fd.Key == k {
				return fd.Value, true
			}
		}
		return "", v.FlaskRan
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
