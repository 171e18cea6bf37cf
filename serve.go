// The request path: what the upstream sees of the client's cookies and headers, and the
// decisions (issue, re-sign, clear) that the response writer carries out. Kept apart from
// module.go, which configures, and writer.go, which rewrites the response.
package signedcookies

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// Placeholders set on every request.
const (
	phVisitorID  = "http.signed_cookies.visitor_id"
	phVisitorNew = "http.signed_cookies.visitor_new"
	phInvalid    = "http.signed_cookies.invalid"

	varProcessed = "signed_cookies.processed"

	// Bounds on what one request can write to the logs and the invalid placeholder.
	maxInvalidLogs  = 8
	maxInvalidNames = 1024
)

// requestState is the per-request scratch, pooled: the Cookie rebuild result, the writer
// wrapper and the decisions it acts on.
type requestState struct {
	res     cookie.Result
	w       responseWriter
	buf     []byte
	visitor [cookie.VisitorIDLen]byte
	known   bool     // visitor holds a verified or new ID
	issue   bool     // a new visitor ID was minted
	resign  bool     // the valid visitor cookie gets a fresh signature
	https   bool     // the client's connection is HTTPS (known when a cookie is set)
	clear   []string // managed cookies to clear in the browser
	// finalCookies is how many Set-Cookie lines the final header write left
	finalCookies int
	invalid      []byte // names of dropped cookies, comma separated
	now          int64  // Unix seconds, read once per request: verifying, deletions
	signAt       int64  // Unix seconds for signing, read at the first signature (0: not yet)
	rww          caddyhttp.ResponseWriterWrapper
}

// signTime is the time the response's cookies are signed with, read when the first one is:
// a cookie's signature then ages with the browser's Max-Age, which starts at the response,
// however long the upstream took.
func (st *requestState) signTime(h *Handler) int64 {
	if st.signAt == 0 {
		st.signAt = h.now().Unix()
	}
	return st.signAt
}

// forwarded holds what the request keeps after ServeHTTP returns: the header values the
// upstream reads and the placeholders the access log and later handlers read. It is allocated
// per request, never pooled: one allocation for all of them.
type forwarded struct {
	cookie, id [1]string // the header values: later handlers may edit them in place
	visitorID  string    // {http.signed_cookies.visitor_id}, apart from the header value
	track      bool      // a tracking cookie is configured: the visitor placeholders exist
	issued     bool      // {http.signed_cookies.visitor_new}
	invalid    string    // {http.signed_cookies.invalid}
}

// placeholder is the replacer provider of the module's placeholders. A provider rather than
// Replacer.Set: nothing is boxed or stored in the replacer's map unless a placeholder is read.
func (fw *forwarded) placeholder(key string) (any, bool) {
	switch key {
	case phVisitorID:
		return fw.visitorID, fw.track
	case phVisitorNew:
		return fw.issued, fw.track
	case phInvalid:
		return fw.invalid, true
	}
	return nil, false
}

var statePool = sync.Pool{New: func() any { return new(requestState) }}

func (st *requestState) reset() {
	st.res.Reset()
	st.known, st.issue, st.resign, st.https = false, false, false, false
	st.finalCookies, st.signAt = 0, 0
	clear(st.clear)
	st.clear, st.invalid, st.buf = st.clear[:0], st.invalid[:0], st.buf[:0]
	st.w = responseWriter{}
	st.rww = caddyhttp.ResponseWriterWrapper{}
}

// ServeHTTP verifies the request's cookies, gives the upstream their plain values and wraps
// the response writer so that what the upstream sets leaves signed.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Once per request: a second pass (handle_errors, invoke) would read the plain values the
	// first one forwarded as forgeries and re-sign what it already signed.
	if caddyhttp.GetVar(r.Context(), varProcessed) != nil {
		return next.ServeHTTP(w, r)
	}
	caddyhttp.SetVar(r.Context(), varProcessed, true)

	st := statePool.Get().(*requestState)
	defer func() {
		st.reset()
		statePool.Put(st)
	}()

	st.now = h.now().Unix()
	if h.track != nil && h.track.headerNorm != "" {
		scrubHeader(r.Header, h.track.headerNorm)
	}
	scrubConnection(r.Header, h.track)

	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// On the error paths the placeholders say no visitor, and which cookies failed.
	errorPlaceholders := func() {
		if repl != nil {
			repl.Map((&forwarded{track: h.track != nil, invalid: string(st.invalid)}).placeholder)
		}
	}
	if lines := r.Header["Cookie"]; len(lines) > 0 {
		if err := h.jar.RebuildAt(&st.res, lines, st.now); err != nil {
			h.metrics.invalid.WithLabelValues("too_many").Inc()
			h.logInvalid("*", "too_many")
			// handle_errors sees this request's headers: nothing unverified may stay in them
			delete(r.Header, "Cookie")
			errorPlaceholders()
			return caddyhttp.Error(http.StatusRequestHeaderFieldsTooLarge, err)
		}
	}

	rejected := h.noteDropped(st)
	if rejected && h.OnInvalid == "reject" {
		// handle_errors sees this request's headers: only what verified stays in them
		if len(st.res.Header) == 0 {
			delete(r.Header, "Cookie")
		} else {
			r.Header["Cookie"] = []string{string(st.res.Header)}
		}
		errorPlaceholders()
		return caddyhttp.Error(http.StatusBadRequest, errors.New("signed_cookies: invalid cookie"))
	}
	if n := len(st.res.Found); n > 0 {
		h.metrics.verified.Add(float64(n))
	}

	if h.track != nil {
		h.visit(st, r)
		if st.known {
			st.buf = cookie.AppendUUID(st.buf[:0], st.visitor[:])
			// The jar strips the visitor cookie; the upstream gets the verified ID (or the
			// new one, as if the visitor had always had it) from here.
			if !h.track.strip {
				st.res.AppendPair(h.track.name, st.buf)
			}
		}
	}
	if st.issue || st.resign || len(st.clear) > 0 {
		st.https = isHTTPS(r) // only a cookie set on the response needs it
	}
	// One string for the Cookie header and the ID (which ends it unless stripped), one
	// allocation for both header slices and the placeholders.
	var cookieHdr, id string
	if st.res.Changed && len(st.res.Header) > 0 {
		cookieHdr = string(st.res.Header)
	}
	if st.known {
		if !h.track.strip {
			id = cookieHdr[len(cookieHdr)-len(st.buf):]
		} else {
			id = string(st.buf)
		}
	}
	fw := &forwarded{cookie: [1]string{cookieHdr}, id: [1]string{id}, visitorID: id, track: h.track != nil,
		issued: st.issue, invalid: string(st.invalid)}
	if st.res.Changed {
		if cookieHdr == "" {
			delete(r.Header, "Cookie")
		} else {
			r.Header["Cookie"] = fw.cookie[:]
		}
	}
	if st.known && h.track.header != "" {
		r.Header[h.track.header] = fw.id[:]
	}
	if repl != nil {
		repl.Map(fw.placeholder)
	}

	st.rww = caddyhttp.ResponseWriterWrapper{ResponseWriter: w}
	st.w = responseWriter{ResponseWriterWrapper: &st.rww, h: h, st: st}
	err := next.ServeHTTP(&st.w, r)
	if !st.w.wroteHeader {
		// Nothing written: net/http (or, on error, Caddy's error handling through the
		// original writer) sends the header map as it is, so it is rewritten now.
		st.w.finalize()
	}
	// Set-Cookie added after the header write is ignored by HTTP/1 and HTTP/2 but would still
	// go out, unrewritten, on HTTP/3 (which sends the header map at the first body write).
	if hdr := w.Header(); len(hdr["Set-Cookie"]) > st.finalCookies {
		hdr["Set-Cookie"] = hdr["Set-Cookie"][:st.finalCookies:st.finalCookies]
	}
	dropTrailerCookies(w.Header())
	return err
}

// noteDropped logs and counts what the Cookie rebuild dropped, fills the invalid placeholder
// and queues clearing of bad managed cookies. It reports whether any managed cookie failed.
func (h *Handler) noteDropped(st *requestState) bool {
	bad, logged, unlogged := false, 0, 0
	for _, d := range st.res.Dropped {
		if d.Reason == cookie.ReasonEmpty {
			continue // the browser's copy of an upstream deletion, not worth a word
		}
		h.metrics.invalid.WithLabelValues(d.Reason).Inc()
		if d.Rule < 0 && d.Reason != cookie.ReasonLookalike {
			// a pair that does not parse is someone else's noise, not an attack on ours
			if c := h.logger.Check(zapcore.DebugLevel, "unparsable cookie pair dropped"); c != nil {
				c.Write(zap.String("cookie", d.Name))
			}
			continue
		}
		if logged < maxInvalidLogs {
			h.logInvalid(d.Name, d.Reason)
			logged++
		} else {
			unlogged++
		}
		if d.Reason == cookie.ReasonDuplicate {
			continue
		}
		bad = true // a managed cookie that failed, or a look-alike of one
		if len(st.invalid)+1+len(d.Name) <= maxInvalidNames {
			if len(st.invalid) > 0 {
				st.invalid = append(st.invalid, ',')
			}
			st.invalid = append(st.invalid, d.Name...)
		}
		// Clear by name, once, and not when a valid copy of that very name is forwarded: a
		// glob rule covers several names, so a valid sess_a says nothing about a forged sess_b.
		if d.Rule >= 0 && d.Rule != h.trackRule && !st.res.HasFound(d.Name) && !slices.Contains(st.clear, d.Name) {
			st.clear = append(st.clear, d.Name)
		}
	}
	if unlogged > 0 {
		if c := h.logger.Check(zapcore.WarnLevel, "more invalid cookies dropped"); c != nil {
			c.Write(zap.Int("count", unlogged))
		}
	}
	return bad
}

// visit decides what happens to the visitor cookie: keep, re-sign or issue.
func (h *Handler) visit(st *requestState, r *http.Request) {
	t := h.track
	if f, ok := st.res.Lookup(h.trackRule); ok {
		if len(f.Value) == cookie.VisitorIDLen {
			copy(st.visitor[:], f.Value)
			st.known = true
			st.resign = f.Key > 0 || st.now-f.Signed > t.refresh
			return
		}
		// A correctly signed value of the wrong size can only come from a misconfiguration
		// (another app signing with the same secret); treat it as absent.
		h.metrics.invalid.WithLabelValues(cookie.ErrMalformed.Reason).Inc()
		h.logInvalid(t.name, cookie.ErrMalformed.Reason)
	}
	if !h.mayIssue(st, r) {
		return
	}
	st.visitor = cookie.NewVisitorID()
	st.known, st.issue = true, true
}

// mayIssue applies the privacy gates; they only ever hold back a new ID.
func (h *Handler) mayIssue(st *requestState, r *http.Request) bool {
	t := h.track
	if t.honorGPC && strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1" {
		return false
	}
	if t.consentName != "" && !hasPair(st.res.Header, t.consentName, t.consentValue, t.consentAny) {
		return false
	}
	if t.when != nil && !t.when.Match(r) {
		return false
	}
	return true
}

// hasPair looks for name=value (or name with any value) in a rebuilt Cookie header.
func hasPair(header []byte, name, value string, anyValue bool) bool {
	s := string(header)
	for s != "" {
		var part string
		part, s, _ = strings.Cut(s, "; ")
		k, v, _ := strings.Cut(part, "=")
		if k == name && (anyValue || v == value) {
			return true
		}
	}
	return false
}

// isHTTPS reports whether the client's connection is HTTPS, directly or through a trusted
// proxy that says so.
func isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		return strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
	}
	return false
}
