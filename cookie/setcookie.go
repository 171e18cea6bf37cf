package cookie

import (
	"net/http"
	"strings"
	"time"
)

// SetCookie locates the name and value of one Set-Cookie line (RFC 6265 §5.2): the first pair
// up to ';', split at the first '=', trimmed of spaces and tabs. Everything outside
// line[ValueStart:ValueEnd] is attribute bytes that Splice never touches.
type SetCookie struct {
	Line       string
	Name       string
	Value      string
	ValueStart int
	ValueEnd   int
}

// ParseSetCookie parses line. ok is false when the first pair has no '=' or an empty name:
// browsers store such a line as a nameless cookie, which no managed name can match.
func ParseSetCookie(line string) (sc SetCookie, ok bool) {
	end := strings.IndexByte(line, ';')
	if end < 0 {
		end = len(line)
	}
	eq := strings.IndexByte(line[:end], '=')
	if eq < 0 {
		return SetCookie{}, false
	}
	name := trimWS(line[:eq])
	if name == "" {
		return SetCookie{}, false
	}
	vs, ve := eq+1, end
	for vs < ve && isWS(line[vs]) {
		vs++
	}
	for ve > vs && isWS(line[ve-1]) {
		ve--
	}
	return SetCookie{Line: line, Name: name, Value: line[vs:ve], ValueStart: vs, ValueEnd: ve}, true
}

// AppendSplice appends to dst the line with its value replaced by value, every other byte
// kept as it was.
func (sc SetCookie) AppendSplice(dst []byte, value []byte) []byte {
	dst = append(dst, sc.Line[:sc.ValueStart]...)
	dst = append(dst, value...)
	return append(dst, sc.Line[sc.ValueEnd:]...)
}

// Splice returns the line with its value replaced by value.
func (sc SetCookie) Splice(value string) string {
	return sc.Line[:sc.ValueStart] + value + sc.Line[sc.ValueEnd:]
}

// IsDeletion reports whether the line removes the cookie rather than sets it: an empty value
// (or ""), Max-Age of zero or less, or Expires in the past. Such lines pass through unchanged.
func (sc SetCookie) IsDeletion(now time.Time) bool {
	if sc.Value == "" || sc.Value == `""` {
		return true
	}
	// RFC 6265 §5.2.1-2: an invalid Max-Age or Expires is ignored, the last valid one counts,
	// and Max-Age takes precedence over Expires. When in doubt the line is not a deletion: a
	// deletion passes unsigned, which must never happen to a cookie the browser keeps.
	haveMaxAge, maxAgeDeletes, expired := false, false, false
	for attrs := sc.Line[sc.ValueEnd:]; attrs != ""; {
		var a string
		a, attrs, _ = strings.Cut(attrs, ";")
		k, v, _ := strings.Cut(a, "=")
		k, v = trimWS(k), trimWS(v)
		switch {
		case strings.EqualFold(k, "max-age"):
			if deletes, ok := parseMaxAge(v); ok {
				haveMaxAge, maxAgeDeletes = true, deletes
			}
		case strings.EqualFold(k, "expires"):
			if t, ok := parseExpires(v); ok {
				expired = !t.After(now)
			}
		}
	}
	if haveMaxAge {
		return maxAgeDeletes
	}
	return expired
}

// parseMaxAge reads a Max-Age value as RFC 6265 §5.2.2 does (a '-' or a digit first, then
// only digits, of any size: no '+', which strconv accepts) and reports whether it deletes
// the cookie (zero or less).
func parseMaxAge(v string) (deletes, ok bool) {
	digits := strings.TrimPrefix(v, "-")
	if digits == "" {
		return false, false
	}
	zero := true
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return false, false
		}
		zero = zero && c == '0'
	}
	return zero || len(digits) < len(v), true
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
