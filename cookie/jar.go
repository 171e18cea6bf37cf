package cookie

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// MaxPairs is the most Cookie pairs Rebuild accepts. Go's own parser gives up above 3000;
// past this the request is refused rather than partly understood.
const MaxPairs = 3000

// ErrTooManyPairs is returned by Rebuild when the Cookie header holds more than MaxPairs pairs.
var ErrTooManyPairs = errors.New("too many cookies in the request")

// Drop reasons reported by Rebuild besides the DecodeError reasons.
const (
	ReasonLookalike = "lookalike"  // a name the upstream may read as a managed one
	ReasonDuplicate = "duplicate"  // another copy of a managed cookie after a valid one
	ReasonUnparsed  = "unparsable" // a pair with no '=', an empty name or control bytes
)

// Rule makes cookies whose names match Pattern managed: verified and decoded by Codec.
type Rule struct {
	// Pattern is a cookie name or a path.Match glob ("sess_*").
	Pattern string
	Codec   *Codec
	// Plain renders the decoded value for the upstream (nil: as is).
	Plain func(dst, value []byte) []byte
	// Strip verifies the cookie but does not forward it.
	Strip bool
}

// Jar holds the rules for the Cookie header rebuild. It is immutable and safe for concurrent use.
type Jar struct {
	rules     []Rule
	glob      []bool
	canonical []string // canonical form of each pattern, for look-alike detection
}

// NewJar checks the rules and prepares them. The first matching rule wins.
func NewJar(rules ...Rule) (*Jar, error) {
	j := &Jar{rules: rules}
	for i, r := range rules {
		if r.Pattern == "" {
			return nil, fmt.Errorf("rule %d: empty cookie name", i+1)
		}
		if _, err := path.Match(r.Pattern, ""); err != nil {
			return nil, fmt.Errorf("rule %d: bad pattern %q: %v", i+1, r.Pattern, err)
		}
		if r.Codec == nil {
			return nil, fmt.Errorf("rule %d: no codec", i+1)
		}
		j.glob = append(j.glob, strings.ContainsAny(r.Pattern, `*?[\`))
		j.canonical = append(j.canonical, string(appendCanonical(nil, r.Pattern)))
	}
	return j, nil
}

// Match returns the index of the rule managing name, or -1.
func (j *Jar) Match(name string) int {
	for i, r := range j.rules {
		if j.glob[i] {
			if ok, _ := path.Match(r.Pattern, name); ok {
				return i
			}
		} else if r.Pattern == name {
			return i
		}
	}
	return -1
}

// Rule returns rule i.
func (j *Jar) Rule(i int) *Rule { return &j.rules[i] }

// IsLookalike reports whether name is not managed but an upstream could read it as a managed
// name: after trimming odd whitespace, %-decoding, folding case and mapping ' ', '.' and '['
// to '_' (as PHP does), it matches a rule.
func (j *Jar) IsLookalike(name string) bool {
	var buf []byte
	return j.isLookalike(name, &buf)
}

func (j *Jar) isLookalike(name string, buf *[]byte) bool {
	if j.Match(name) >= 0 {
		return false
	}
	*buf = appendCanonical((*buf)[:0], name)
	c := unsafeString(*buf)
	for i, p := range j.canonical {
		if j.glob[i] {
			if ok, _ := path.Match(p, c); ok {
				return true
			}
		} else if p == c {
			return true
		}
	}
	return false
}

// Found is the first valid copy of a managed cookie in a request.
type Found struct {
	Name string
	Rule int
	Decoded
}

// Dropped is a pair Rebuild did not forward.
type Dropped struct {
	Name   string
	Rule   int // -1 when the name is not managed
	Reason string
}

// Result is the outcome of Rebuild. Reuse one (Reset) to avoid allocations.
type Result struct {
	// Header is the rebuilt Cookie header value.
	Header []byte
	// Changed is false when Header equals the request's single Cookie line.
	Changed bool
	Found   []Found
	Dropped []Dropped
	Pairs   int
	values  []byte
	canon   []byte
}

// Reset empties r, keeping its buffers.
func (r *Result) Reset() {
	r.Header, r.Changed, r.Pairs = r.Header[:0], false, 0
	clear(r.Found)
	clear(r.Dropped)
	r.Found, r.Dropped, r.values = r.Found[:0], r.Dropped[:0], r.values[:0]
}

// Lookup returns the Found entry for rule i, if any.
func (r *Result) Lookup(rule int) (Found, bool) {
	for _, f := range r.Found {
		if f.Rule == rule {
			return f, true
		}
	}
	return Found{}, false
}

// Rebuild parses the request's Cookie header lines and writes into res the header the
// upstream should see: unmanaged pairs verbatim, the first valid copy of each managed cookie
// decoded, and nothing else (failed, duplicate, look-alike and unparsable pairs are reported
// in res.Dropped). Several lines are joined with "; ".
func (j *Jar) Rebuild(res *Result, lines []string) error {
	res.Reset()
	for _, line := range lines {
		for line != "" {
			var part string
			if k := strings.IndexByte(line, ';'); k >= 0 {
				part, line = line[:k], line[k+1:]
			} else {
				part, line = line, ""
			}
			part = trimWS(part)
			if part == "" {
				continue
			}
			res.Pairs++
			if res.Pairs > MaxPairs {
				res.Reset()
				return ErrTooManyPairs
			}
			j.pair(res, part)
		}
	}
	res.Changed = len(lines) != 1 || string(res.Header) != lines[0]
	return nil
}

func (j *Jar) pair(res *Result, part string) {
	eq := strings.IndexByte(part, '=')
	if eq <= 0 || hasCTL(part) {
		name := part
		if eq >= 0 {
			name = part[:eq]
		}
		res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: -1, Reason: ReasonUnparsed})
		return
	}
	name, value := part[:eq], part[eq+1:]
	ri := j.Match(name)
	if ri < 0 {
		if j.isLookalike(name, &res.canon) {
			res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: -1, Reason: ReasonLookalike})
			return
		}
		res.appendPair(part)
		return
	}
	for _, f := range res.Found {
		if f.Name == name {
			res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: ri, Reason: ReasonDuplicate})
			return
		}
	}
	r := &j.rules[ri]
	start := len(res.values)
	d, err := r.Codec.AppendDecode(res.values, name, value)
	if err != nil {
		reason := ReasonUnparsed
		var de *DecodeError
		if errors.As(err, &de) {
			reason = de.Reason
		}
		res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: ri, Reason: reason})
		return
	}
	res.values = d.Value
	d.Value = d.Value[start:len(d.Value):len(d.Value)]
	res.Found = append(res.Found, Found{Name: name, Rule: ri, Decoded: d})
	if r.Strip {
		return
	}
	res.startPair()
	res.Header = append(res.Header, name...)
	res.Header = append(res.Header, '=')
	if r.Plain != nil {
		res.Header = r.Plain(res.Header, d.Value)
	} else {
		res.Header = append(res.Header, d.Value...)
	}
}

func (res *Result) startPair() {
	if len(res.Header) > 0 {
		res.Header = append(res.Header, ';', ' ')
	}
}

func (res *Result) appendPair(part string) {
	res.startPair()
	res.Header = append(res.Header, part...)
}

// AppendPair adds name=value to the rebuilt header (the module uses it for a new visitor ID).
func (res *Result) AppendPair(name string, value []byte) {
	res.startPair()
	res.Header = append(res.Header, name...)
	res.Header = append(res.Header, '=')
	res.Header = append(res.Header, value...)
	res.Changed = true
}

func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// appendCanonical appends the form of name an upstream may read it as: %XX decoded, trimmed
// of ASCII whitespace, control bytes and non-ASCII bytes (Unicode spaces such as NBSP) at
// either end, ASCII folded to lower case, and ' ', '.', '[' mapped to '_'.
func appendCanonical(dst []byte, name string) []byte {
	start := len(dst)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	b := dst[start:]
	lo, hi := 0, len(b)
	for lo < hi && isOdd(b[lo]) {
		lo++
	}
	for hi > lo && isOdd(b[hi-1]) {
		hi--
	}
	n := copy(b, b[lo:hi])
	b = b[:n]
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == ' ' || c == '.' || c == '[':
			b[i] = '_'
		}
	}
	return dst[:start+n]
}

func isOdd(c byte) bool { return c <= 0x20 || c >= 0x7f }

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
