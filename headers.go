// Request header hygiene and name checks: the parser differentials between Go and the
// upstream (PHP, Rack, Flask…) that would let a client smuggle a visitor ID past the module.
package signedcookies

import (
	"errors"
	"fmt"
	"net/http"
	"path"
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

// scrubHeader removes every client copy of the visitor ID header, in any spelling.
func scrubHeader(h http.Header, norm string) {
	for k := range h {
		if sameHeaderName(k, norm) {
			delete(h, k)
		}
	}
}

// scrubConnection removes Connection tokens naming Cookie or the ID header: reverse_proxy
// deletes the headers a Connection header names, which would drop the ones set here.
func scrubConnection(h http.Header, t *trackRuntime) {
	removeTokens(h, "Connection", func(tok string) bool {
		return sameHeaderName(tok, "cookie") || t != nil && t.headerNorm != "" && sameHeaderName(tok, t.headerNorm)
	})
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

func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

func checkToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return fmt.Errorf("%q has a character not allowed in a name", s)
		}
	}
	return nil
}

// checkPattern accepts a cookie name or a path.Match glob over cookie-name characters.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty cookie name")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %v", p, err)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isTokenChar(c) && !strings.ContainsRune(`*?[]\`, rune(c)) {
			return fmt.Errorf("%q has a character not allowed in a cookie name", p)
		}
	}
	return nil
}
