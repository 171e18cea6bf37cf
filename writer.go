// The response writer wrapper: rewrites Set-Cookie exactly once, at the final header write,
// however it is reached (WriteHeader, Write, ReadFrom, Flush, http.ResponseController).
// Split from serve.go because it is the part every streaming path goes through.
package signedcookies

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

type responseWriter struct {
	*caddyhttp.ResponseWriterWrapper
	h           *Handler
	st          *requestState
	wroteHeader bool
}

// WriteHeader rewrites the headers at the final status; 1xx responses pass through without
// managed cookies (101 Switching Protocols is final).
func (rw *responseWriter) WriteHeader(status int) {
	if rw.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		// net/http sends the header map with a 1xx and keeps it for the final response, so
		// the managed cookies are held back from the 1xx only, then put back for finalize.
		hdr := rw.Header()
		saved := hdr["Set-Cookie"]
		rw.h.strip1xx(hdr)
		rw.ResponseWriterWrapper.WriteHeader(status)
		if saved != nil {
			hdr["Set-Cookie"] = saved
		}
		return
	}
	rw.finalize()
	rw.ResponseWriterWrapper.WriteHeader(status)
}

// finalize rewrites the header map, once: at the final header write, or after next when
// nothing was written.
func (rw *responseWriter) finalize() {
	rw.wroteHeader = true
	hdr := rw.Header()
	unannounceTrailerCookies(hdr)
	rw.h.rewriteSetCookies(hdr, rw.st)
	if rw.h.addOwnCookies(hdr, rw.st) {
		ensurePrivate(hdr)
	}
	rw.st.finalCookies = len(hdr["Set-Cookie"])
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

// rewriteSetCookies signs or encrypts the managed cookies the upstream sets, line by line,
// keeping every attribute byte. Lines that cannot be sent signed are dropped, never sent plain.
func (h *Handler) rewriteSetCookies(hdr http.Header, st *requestState) {
	lines := hdr["Set-Cookie"]
	if len(lines) == 0 {
		return
	}
	var out []string // copy on first change
	for i, line := range lines {
		repl, keep := h.rewriteSetCookie(line, st)
		if out == nil && (!keep || repl != line) {
			out = make([]string, i, len(lines))
			copy(out, lines[:i])
		}
		if out != nil && keep {
			out = append(out, repl)
		}
	}
	if out == nil {
		return
	}
	if len(out) == 0 {
		delete(hdr, "Set-Cookie")
		return
	}
	hdr["Set-Cookie"] = out
}

func (h *Handler) rewriteSetCookie(line string, st *requestState) (string, bool) {
	sc, ok := cookie.ParseSetCookie(line)
	if !ok {
		return line, true
	}
	ri := h.jar.Match(sc.Name)
	if ri < 0 {
		return line, true
	}
	if ri == h.trackRule { // the visitor cookie is the module's alone
		h.drop(sc.Name, "tracking_name")
		return "", false
	}
	if sc.IsDeletion(time.Unix(st.now, 0)) {
		return line, true
	}
	codec := h.jar.Rule(ri).Codec
	if len(sc.Name)+1+codec.EncodedLen(len(sc.Value)) > browserCookieLimit {
		h.drop(sc.Name, "too_long")
		return "", false
	}
	// The line is spliced in st.buf (free once the ID has been copied out) and copied once.
	b := append(st.buf[:0], line[:sc.ValueStart]...)
	b, err := codec.AppendEncodeAt(b, sc.Name, []byte(sc.Value), st.signTime(h))
	if err != nil {
		h.drop(sc.Name, "too_long")
		return "", false
	}
	b = append(b, line[sc.ValueEnd:]...)
	st.buf = b[:0]
	h.metrics.signed.Inc()
	return string(b), true
}

// strip1xx drops managed Set-Cookie lines from an informational response: browsers ignore
// them there, and they must not leave unsigned.
func (h *Handler) strip1xx(hdr http.Header) {
	lines := hdr["Set-Cookie"]
	if len(lines) == 0 {
		return
	}
	kept := lines[:0:0]
	for _, line := range lines {
		if sc, ok := cookie.ParseSetCookie(line); ok && h.jar.Match(sc.Name) >= 0 { // the visitor cookie's rule included
			h.drop(sc.Name, "informational")
			continue
		}
		kept = append(kept, line)
	}
	if len(kept) == 0 {
		delete(hdr, "Set-Cookie")
	} else {
		hdr["Set-Cookie"] = kept
	}
}

func (h *Handler) drop(name, reason string) {
	h.metrics.dropped.WithLabelValues(reason).Inc()
	if c := h.logger.Check(zapcore.WarnLevel, "Set-Cookie dropped"); c != nil {
		c.Write(zap.String("cookie", name), zap.String("reason", reason))
	}
}

// addOwnCookies appends the visitor cookie (new or re-signed) and the clearing of invalid
// managed cookies. It reports whether it added anything.
func (h *Handler) addOwnCookies(hdr http.Header, st *requestState) bool {
	added := false
	if t := h.track; t != nil && (st.issue || st.resign) {
		b := append(st.buf[:0], t.name...)
		b = append(b, '=')
		b, err := t.codec.AppendEncodeAt(b, t.name, st.visitor[:], st.signTime(h))
		if err == nil {
			b = append(b, t.attrs...)
			if t.secure == "on" || t.secure != "off" && (t.forceSecure || st.https) {
				b = append(b, "; Secure"...)
			}
			hdr["Set-Cookie"] = append(hdr["Set-Cookie"], string(b))
			added = true
			if st.issue {
				h.metrics.issued.Inc()
			} else {
				h.metrics.resigned.Inc()
			}
		}
		st.buf = b[:0]
	}
	for _, name := range st.clear {
		if upstreamSets(hdr, name) {
			continue
		}
		line := name + "=; Path=/; Max-Age=0"
		if st.https || strings.HasPrefix(name, "__Secure-") || strings.HasPrefix(name, "__Host-") {
			line += "; Secure" // browsers ignore a prefixed or HTTPS cookie's deletion without it
		}
		hdr["Set-Cookie"] = append(hdr["Set-Cookie"], line)
		added = true
	}
	return added
}

func upstreamSets(hdr http.Header, name string) bool {
	for _, line := range hdr["Set-Cookie"] {
		if sc, ok := cookie.ParseSetCookie(line); ok && sc.Name == name {
			return true
		}
	}
	return false
}

// ensurePrivate keeps shared caches from storing a response that carries a visitor's cookie.
// Cache-Control gets private. Caches in front may obey other fields instead, each of which is
// rewritten when present: the CDN-targeted fields of RFC 9213 (CDN-Cache-Control,
// Cloudflare-CDN-Cache-Control, any <target>-Cache-Control) get private too; Surrogate-Control
// (Fastly, Varnish) and Akamai's Edge-Control get no-store in place of their lifetimes, other
// directives (content="ESI/1.0") kept; nginx's X-Accel-Expires becomes 0.
func ensurePrivate(hdr http.Header) {
	privateRewrite.apply(hdr, "Cache-Control")
	const suffix = "-Cache-Control"
	for name := range hdr {
		switch {
		case len(name) > len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix):
			privateRewrite.apply(hdr, name)
		case strings.EqualFold(name, "Surrogate-Control"), strings.EqualFold(name, "Edge-Control"):
			noStoreRewrite.apply(hdr, name)
		case strings.EqualFold(name, "X-Accel-Expires"):
			hdr[name] = []string{"0"}
		}
	}
}

// Directive rewrites for ensurePrivate: a cache field gets private (unless private or no-store
// is there already), a surrogate field no-store in place of its lifetimes and of a negated
// no-store (Edge-Control's !no-store).
var (
	privateRewrite = directiveRewrite{add: "private", enough: []string{"private", "no-store"}, drop: []string{"public", "s-maxage"}}
	noStoreRewrite = directiveRewrite{add: "no-store", drop: []string{"max-age", "cache-maxage", "!no-store", "no-store"}}
)

// directiveRewrite edits a comma-separated directive field: the directives named in drop go,
// and add is appended, unless one named in enough is present (then the field stays as it is).
// Names compare without case; other directives are kept as written.
type directiveRewrite struct {
	add          string
	enough, drop []string
}

func (dr directiveRewrite) apply(hdr http.Header, field string) {
	var kept []string
	for _, v := range hdr[field] {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.TrimSpace(d)
			name, _, _ := strings.Cut(d, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if slices.Contains(dr.enough, name) {
				return
			}
			if name == "" || slices.Contains(dr.drop, name) {
				continue
			}
			kept = append(kept, d)
		}
	}
	hdr[field] = []string{strings.Join(append(kept, dr.add), ", ")}
}

// Interface guards
var (
	_ http.ResponseWriter                       = (*responseWriter)(nil)
	_ http.Flusher                              = (*responseWriter)(nil)
	_ io.ReaderFrom                             = (*responseWriter)(nil)
	_ interface{ Unwrap() http.ResponseWriter } = (*responseWriter)(nil)
)
