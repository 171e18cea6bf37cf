// One Set-Cookie line as a browser reads it: where its value is (everything else is kept byte
// for byte), and whether and when the cookie expires.

package engine

import (
	"net/http"
	"strings"
	"time"
)

// setCookie locates the name and value of one Set-Cookie line (RFC 6265 §5.2): the first pair
// up to ';', split at the first '=', trimmed of spaces and tabs. Everything outside
// line[valueStart:valueEnd] is attribute bytes that a splice never touches.
type setCookie struct {
	line                 string
	name, value          string
	valueStart, valueEnd int
}

// parseSetCookie parses line. ok is false when the first pair has no '=' or an empty name:
// browsers store such a line as a nameless cookie, which no managed name can match.
func parseSetCookie(line string) (sc setCookie, ok bool) {
	end := strings.IndexByte(line, ';')
	if end < 0 {
		end = len(line)
	}
	eq := strings.IndexByte(line[:end], '=')
	if eq < 0 {
		return setCookie{}, false
	}
	name := trimWS(line[:eq])
	if name == "" {
		return setCookie{}, false
	}
	vs, ve := eq+1, end
	for vs < ve && isWS(line[vs]) {
		vs++
	}
	for ve > vs && isWS(line[ve-1]) {
		ve--
	}
	return setCookie{line: line, name: name, value: line[vs:ve], valueStart: vs, valueEnd: ve}, true
}

// appendSplice appends to dst the line with its value replaced by value, every other byte
// kept as it was.
func (sc setCookie) appendSplice(dst []byte, value []byte) []byte {
	dst = append(dst, sc.line[:sc.valueStart]...)
	dst = append(dst, value...)
	return append(dst, sc.line[sc.valueEnd:]...)
}

// lifetime reads the line's Max-Age and Expires as a browser does (RFC 6265 §5.2.1-2: an
// invalid one is ignored, the last valid one counts, Max-Age wins over Expires). deletion:
// the line removes the cookie (also for an empty value); otherwise, when the cookie expires
// (Unix seconds; expires is false for a session cookie). When in doubt the line is not a
// deletion: a deletion passes unsigned, which must never happen to a cookie the browser keeps.
func (sc setCookie) lifetime(now int64) (deletion bool, expiry int64, expires bool) {
	if sc.value == "" || sc.value == `""` {
		return true, 0, false
	}
	haveMaxAge, maxAge := false, int64(0)
	haveExpires, exp := false, int64(0)
	for attrs := sc.line[sc.valueEnd:]; attrs != ""; {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		if a = trimWS(a); a == "" || a[0]|0x20 != 'm' && a[0]|0x20 != 'e' {
			continue // Path, Domain, HttpOnly, SameSite…: not a lifetime
		}
		k, v, _ := strings.Cut(a, "=")
		k, v = trimWS(k), trimWS(v)
		switch {
		case strings.EqualFold(k, "max-age"):
			if n, ok := parseMaxAge(v); ok {
				haveMaxAge, maxAge = true, n
			}
		case strings.EqualFold(k, "expires"):
			if t, ok := parseExpires(v); ok {
				haveExpires, exp = true, t.Unix()
			}
		}
	}
	switch {
	case haveMaxAge && maxAge <= 0:
		return true, 0, false
	case haveMaxAge:
		if maxAge > maxLifetime {
			maxAge = maxLifetime
		}
		return false, now + maxAge, true
	case haveExpires && exp <= now:
		return true, 0, false
	case haveExpires:
		return false, exp, true
	}
	return false, 0, false
}

// maxLifetime bounds the lifetimes read from Max-Age so that now plus one cannot overflow;
// it is far past any cookie's real lifetime (browsers cap at 400 days).
const maxLifetime = 1 << 40

// parseMaxAge reads a Max-Age value as RFC 6265 §5.2.2 does: a '-' or a digit first, then only
// digits, of any size (no '+', which strconv accepts). Values too big to hold are maxLifetime.
func parseMaxAge(v string) (int64, bool) {
	digits := strings.TrimPrefix(v, "-")
	if digits == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxLifetime {
			n = n*10 + int64(c-'0')
		}
	}
	if len(digits) < len(v) {
		return -n, true
	}
	return n, true
}

// parseExpires reads the HTTP date formats Go knows, as a browser would (RFC 6265 §5.1.1):
// a two-digit year 69 is 2069, not Go's 1969, and a year before 1601 is no date at all.
func parseExpires(v string) (time.Time, bool) {
	t, err := http.ParseTime(v)
	if err != nil {
		return time.Time{}, false
	}
	if t.Year() == 1969 && !strings.Contains(v, "1969") {
		t = t.AddDate(100, 0, 0)
	}
	if t.Year() < 1601 {
		return time.Time{}, false
	}
	return t, true
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

func trimWS(s string) string {
	for s != "" && isWS(s[0]) {
		s = s[1:]
	}
	for s != "" && isWS(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
