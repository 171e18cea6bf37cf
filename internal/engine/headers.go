// Request and response header hygiene: the parser differentials between Go and the upstream
// (PHP, Rack, Flask…) that would let a client deliver a header the module controls, and the
// response fields that would carry a cookie past the rewrite.

package engine

import (
	"io"
	"net/http"
	"strings"
)

// normalizeHeaderName folds a header name the way lenient stacks do: lower case, with '_'
// and '.' read as '-' (CGI and PHP turn X-Visitor_Id and X-Visitor-Id into one variable).
func normalizeHeaderName(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if c == '_' || c == '.' {
			b[i] = '-'
		}
	}
	return string(b)
}

// sameHeaderName reports whether k normalizes to norm, without allocating.
func sameHeaderName(k, norm string) bool {
	if len(k) != len(norm) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == '_' || c == '.':
			c = '-'
		}
		if c != norm[i] {
			return false
		}
	}
	return true
}

// controls reports whether a request header named k is one the policy sets for the upstream
// (in any spelling), so that no client copy of it may reach the upstream.
func (p *Policy) controls(k string) bool {
	return sameHeaderName(k, "cookie") || p.visitor != nil && p.visitor.headerNorm != "" && sameHeaderName(k, p.visitor.headerNorm) ||
		p.flask != nil && p.flask.headerNorm != "" && hasHeaderPrefix(k, p.flask.headerNorm)
}

// hasHeaderPrefix reports whether k, folded as normalizeHeaderName does, starts with norm.
func hasHeaderPrefix(k, norm string) bool {
	return len(k) >= len(norm) && sameHeaderName(k[:len(norm)], norm)
}

// scrubPrefix removes every client header whose name starts with the prefix, in any spelling.
func scrubPrefix(h http.Header, norm string) {
	for k := range h {
		if hasHeaderPrefix(k, norm) {
			delete(h, k)
		}
	}
}

// scrubHeader removes every client copy of the visitor ID header, in any spelling.
func scrubHeader(h http.Header, norm string) {
	for k := range h {
		if sameHeaderName(k, norm) {
			delete(h, k)
		}
	}
}

// scrubConnection removes Connection tokens naming a header the policy controls:
// reverse_proxy deletes the headers a Connection header names, which would drop the ones the
// policy set.
func (p *Policy) scrubConnection(h http.Header) {
	removeTokens(h, "Connection", p.controls)
}

// guardTrailers keeps the client from delivering a controlled header as a request trailer:
// reverse_proxy forwards trailers, and Apache's MergeTrailers or Tomcat's allowedTrailerHeaders
// fold them into the headers the app reads. Announced ones go now; those net/http fills in when
// the body ends go then, before anything downstream copies them.
func (p *Policy) guardTrailers(r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength >= 0 && r.Trailer == nil {
		return // no trailers can come
	}
	p.scrubTrailers(r.Trailer)
	r.Body = &trailerGuard{ReadCloser: r.Body, r: r, p: p}
}

func (p *Policy) scrubTrailers(t http.Header) {
	for k := range t {
		if p.controls(k) {
			delete(t, k)
		}
	}
}

type trailerGuard struct {
	io.ReadCloser
	r *http.Request
	p *Policy
}

func (g *trailerGuard) Read(b []byte) (int, error) {
	n, err := g.ReadCloser.Read(b)
	if err == io.EOF {
		g.p.scrubTrailers(g.r.Trailer)
	}
	return n, err
}

// dropTrailerCookies removes Set-Cookie set as a trailer: trailers are not rewritten, so a
// cookie there would leave unsigned.
func dropTrailerCookies(h http.Header) {
	for k := range h {
		if len(k) > len(http.TrailerPrefix) && strings.EqualFold(k[:len(http.TrailerPrefix)], http.TrailerPrefix) &&
			strings.EqualFold(k[len(http.TrailerPrefix):], "Set-Cookie") {
			delete(h, k)
		}
	}
}

// unannounceTrailerCookies removes Set-Cookie from the Trailer header before headers go out.
func unannounceTrailerCookies(h http.Header) {
	removeTokens(h, "Trailer", func(tok string) bool { return strings.EqualFold(tok, "Set-Cookie") })
}

// removeTokens rewrites the comma-separated header key without the tokens drop matches,
// allocating only when there is one.
func removeTokens(h http.Header, key string, drop func(tok string) bool) {
	values := h[key]
	found := false
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			found = found || drop(strings.TrimSpace(tok))
		}
	}
	if !found {
		return
	}
	var kept []string
	for _, v := range values {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !drop(tok) {
				kept = append(kept, tok)
			}
		}
	}
	if len(kept) == 0 {
		delete(h, key)
		return
	}
	h[key] = []string{strings.Join(kept, ", ")}
}
