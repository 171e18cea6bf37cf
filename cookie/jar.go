package cookie

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
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
	ReasonEmpty     = "empty"      // a managed cookie with an empty value: read as absent, not an attack
)

// Rule makes cookies whose names match Pattern managed: verified and decoded by Codec.
type Rule struct {
	// Pattern is a cookie name or a path.Match glob ("sess_*").
	Pattern string
	Codec   *Codec
	// Strip verifies the cookie but does not forward it (the caller may forward its value in
	// another form with Result.AppendPair, as the module does with the visitor ID).
	Strip bool
}

// Jar holds the rules for the Cookie header rebuild. It is immutable and safe for concurrent use.
type Jar struct {
	rules     []Rule
	glob      []bool
	canonical []string // canonical form of each pattern, for look-alike detection
	// The literal text before the first metacharacter of each glob and canonical glob: a
	// name without it cannot match, which spares path.Match for most unmanaged cookies.
	prefix, canonicalPrefix []string
	// firstCanon holds the first byte of every canonical prefix: a name whose first canonical
	// byte is not in it reads as no managed name, without canonicalizing it. anyFirst: some
	// canonical pattern starts with a metacharacter, so every name needs the full check.
	firstCanon [256]bool
	anyFirst   bool
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
		glob := strings.ContainsAny(r.Pattern, `*?[\`)
		j.glob = append(j.glob, glob)
		if glob {
			j.canonical = append(j.canonical, canonicalGlob(r.Pattern))
		} else {
			j.canonical = append(j.canonical, string(appendCanonical(nil, r.Pattern, true)))
		}
		j.prefix = append(j.prefix, literalPrefix(r.Pattern))
		j.canonicalPrefix = append(j.canonicalPrefix, literalPrefix(j.canonical[i]))
		if cp := j.canonicalPrefix[i]; cp == "" {
			j.anyFirst = true
		} else {
			j.firstCanon[cp[0]] = true
		}
	}
	return j, nil
}

func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// Match returns the index of the rule managing name, or -1.
func (j *Jar) Match(name string) int {
	for i, r := range j.rules {
		if j.glob[i] {
			if !strings.HasPrefix(name, j.prefix[i]) {
				continue
			}
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
// to '_' (as PHP does), it matches a rule. PHP drops only leading spaces, so a name is also
// tried with its trailing bytes kept: to PHP, "session " is "session_".
func (j *Jar) IsLookalike(name string) bool {
	var buf []byte
	return j.Match(name) < 0 && j.lookalike(name, &buf)
}

// lookalike is IsLookalike for a name known not to be managed.
func (j *Jar) lookalike(name string, buf *[]byte) bool {
	return j.readsAsManaged(name, buf) || j.arrayOfManaged(name, buf)
}

// arrayOfManaged reports whether PHP reads name as an element of a managed cookie's array:
// "sess[x]" (or, where PHP decodes names, "sess%5Bx%5D") replaces $_COOKIE['sess'] whatever
// came first.
func (j *Jar) arrayOfManaged(name string, buf *[]byte) bool {
	open := strings.IndexByte(name, '[')
	if open < 0 || strings.IndexByte(name[open:], ']') < 0 {
		if strings.IndexByte(name, '%') < 0 {
			return false
		}
		lower := strings.ToLower(name) // rare: only names holding an escape get here
		if open = strings.Index(lower, "%5b"); open < 0 || !strings.Contains(lower[open:], "%5d") {
			return false
		}
	}
	base := name[:open]
	return base != "" && (j.Match(base) >= 0 || j.readsAsManaged(base, buf))
}

// hidesManaged reports whether a pair that is not managed carries, after a byte that cannot
// be part of a cookie (',', space, '"'…), text that some parser reads as a managed cookie:
// ASP.NET Core splits on ',' and retries after a bad byte, Python's SimpleCookie splits on
// spaces, old Rack on ','. "x=1,sess=forged" must not reach them as "sess=forged".
func (j *Jar) hidesManaged(part string, buf *[]byte) bool {
	for k := 0; k < len(part); k++ {
		if part[k] != '=' {
			continue
		}
		s := k
		for s > 0 && isCookieOctet(part[s-1]) {
			s--
		}
		if s == 0 || s == k {
			continue // the pair's own name, or nothing before '='
		}
		cand := part[s:k]
		if strings.IndexByte(cand, '=') >= 0 {
			continue // read as a value; its own '=' was judged already
		}
		if j.Match(cand) >= 0 || j.lookalike(cand, buf) {
			return true
		}
	}
	return false
}

func allCookieOctets(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isCookieOctet(s[i]) {
			return false
		}
	}
	return true
}

// isCookieOctet is RFC 6265's cookie-octet: what may stand in a cookie value unquoted.
func isCookieOctet(c byte) bool {
	return c == 0x21 || c >= 0x23 && c <= 0x2b || c >= 0x2d && c <= 0x3a || c >= 0x3c && c <= 0x5b || c >= 0x5d && c <= 0x7e
}

// readsAsManaged reports whether the canonical form of name matches a rule.
func (j *Jar) readsAsManaged(name string, buf *[]byte) bool {
	if !j.anyFirst {
		// Canonicalization trims odd bytes at the start and maps the next byte on its own,
		// unless it starts a %XX escape.
		i := 0
		for i < len(name) && isOdd(name[i]) {
			i++
		}
		if i < len(name) && name[i] != '%' && !j.firstCanon[canonicalByte(name[i])] {
			return false
		}
	}
	*buf = appendCanonical((*buf)[:0], name, true)
	if j.matchCanonical(unsafeString(*buf)) {
		return true
	}
	if name == "" || !isOdd(name[len(name)-1]) && strings.IndexByte(name, '%') < 0 {
		return false // nothing trailing to keep
	}
	*buf = appendCanonical((*buf)[:0], name, false)
	return j.matchCanonical(unsafeString(*buf))
}

func (j *Jar) matchCanonical(c string) bool {
	for i, p := range j.canonical {
		if j.glob[i] {
			if !strings.HasPrefix(c, j.canonicalPrefix[i]) {
				continue
			}
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

// HasFound reports whether a valid copy of the cookie called name was found.
func (r *Result) HasFound(name string) bool {
	for _, f := range r.Found {
		if f.Name == name {
			return true
		}
	}
	return false
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
	return j.RebuildAt(res, lines, 0)
}

// RebuildAt is Rebuild with the current time (Unix seconds) given by the caller.
func (j *Jar) RebuildAt(res *Result, lines []string, now int64) error {
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
			j.pair(res, part, now)
		}
	}
	res.Changed = len(lines) != 1 || string(res.Header) != lines[0]
	return nil
}

func (j *Jar) pair(res *Result, part string, now int64) {
	eq := strings.IndexByte(part, '=')
	if eq <= 0 || hasCTL(part) {
		name := "" // a pair without '=' is a nameless cookie's value: never reported
		if eq > 0 {
			name = part[:eq]
		}
		res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: -1, Reason: ReasonUnparsed})
		return
	}
	name, value := part[:eq], part[eq+1:]
	ri := j.Match(name)
	if ri < 0 {
		if j.lookalike(name, &res.canon) ||
			(strings.IndexByte(value, '=') >= 0 || !allCookieOctets(name)) && j.hidesManaged(part, &res.canon) {
			res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: -1, Reason: ReasonLookalike})
			return
		}
		res.appendPair(part)
		return
	}
	if res.HasFound(name) {
		res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: ri, Reason: ReasonDuplicate})
		return
	}
	if value == "" || value == `""` {
		// what a browser keeps of an upstream's empty (deleting) Set-Cookie: absent, not forged
		res.Dropped = append(res.Dropped, Dropped{Name: name, Rule: ri, Reason: ReasonEmpty})
		return
	}
	r := &j.rules[ri]
	start := len(res.values)
	d, err := r.Codec.AppendDecodeAt(res.values, name, value, now)
	if err != nil {
		reason := ReasonUnparsed
		if de, ok := err.(*DecodeError); ok { // not errors.As: its target escapes, an allocation per bad cookie
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
	res.Header = append(res.Header, d.Value...)
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
	// Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7f has no
	// control byte; otherwise (a tab, usually) the bytes are checked one by one.
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		y := x ^ (0x7f * ones)
		if (x-0x20*ones)&^x&highs != 0 || (y-ones)&^y&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// appendCanonical appends the form of name an upstream may read it as: %XX decoded, trimmed
// of ASCII whitespace, control bytes and non-ASCII bytes (Unicode spaces such as NBSP) at the
// start and, if trimTail, at the end, cut at a decoded NUL, ASCII folded to lower case, and
// ' ', '.', '[', '+' mapped to '_'.
func appendCanonical(dst []byte, name string, trimTail bool) []byte {
	start := len(dst)
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
			if c == 0 {
				break // PHP's C strings end the name at a decoded NUL
			}
		}
		dst = append(dst, c)
	}
	b := dst[start:]
	lo, hi := 0, len(b)
	for lo < hi && isOdd(b[lo]) {
		lo++
	}
	for trimTail && hi > lo && isOdd(b[hi-1]) {
		hi--
	}
	n := copy(b, b[lo:hi])
	b = b[:n]
	for i, c := range b {
		b[i] = canonicalByte(c)
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

// canonicalByte is the byte-wise part of appendCanonical: ASCII folded to lower case and
// ' ', '.', '[', '+' mapped to '_' ('+' is a space where PHP decodes names).
func canonicalByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == ' ' || c == '.' || c == '[' || c == '+':
		return '_'
	}
	return c
}

// canonicalGlob is the pattern that the canonical forms of the names matched by pattern (a
// valid path.Match pattern) match: literal bytes are canonicalized as in a name (%XX decoded,
// odd bytes trimmed at either end, case folded, PHP's mapping), '*' and '?' are kept, and each
// character class becomes the class of the canonical forms of its members. Folding the
// pattern's text instead would turn "[0-9]" into "_0-9]" and miss every look-alike.
func canonicalGlob(pattern string) string {
	type term struct {
		lit  bool
		c    byte   // a literal byte
		meta string // '*', '?' or a class
	}
	var terms []term
	for i := 0; i < len(pattern); {
		c := pattern[i]
		switch {
		case c == '*' || c == '?':
			terms = append(terms, term{meta: pattern[i : i+1]})
			i++
			continue
		case c == '[':
			n := classLen(pattern[i:])
			terms = append(terms, term{meta: pattern[i : i+n]})
			i += n
			continue
		case c == '\\' && i+1 < len(pattern):
			c = pattern[i+1]
			i += 2
		case c == '%' && i+2 < len(pattern) && isHex(pattern[i+1]) && isHex(pattern[i+2]):
			c = unhex(pattern[i+1])<<4 | unhex(pattern[i+2])
			i += 3
		default:
			i++
		}
		terms = append(terms, term{lit: true, c: c})
	}
	for len(terms) > 0 && terms[0].lit && isOdd(terms[0].c) {
		terms = terms[1:]
	}
	for len(terms) > 0 && terms[len(terms)-1].lit && isOdd(terms[len(terms)-1].c) {
		terms = terms[:len(terms)-1]
	}
	var b []byte
	for _, t := range terms {
		switch {
		case !t.lit && t.meta[0] == '[':
			b = appendCanonicalClass(b, t.meta)
		case !t.lit:
			b = append(b, t.meta...)
		default:
			c := canonicalByte(t.c)
			if c == '*' || c == '?' || c == '\\' {
				b = append(b, '\\')
			}
			b = append(b, c)
		}
	}
	return string(b)
}

// classLen is the length of the character class at the start of pattern, '[' to ']'.
func classLen(pattern string) int {
	i := 1
	if i < len(pattern) && pattern[i] == '^' {
		i++
	}
	for first := true; i < len(pattern); first = false {
		switch pattern[i] {
		case ']':
			if !first {
				return i + 1
			}
		case '\\':
			i++
		}
		i++
	}
	return len(pattern) // unreachable for a valid pattern
}

// appendCanonicalClass appends the class matching the canonical forms of the members of
// class. ASCII members are listed one by one after canonicalization; non-ASCII runes are
// untouched by canonicalization, so their ranges are kept (complemented for a negated class,
// since the result is never negated).
func appendCanonicalClass(dst []byte, class string) []byte {
	body := class[1 : len(class)-1]
	negated := strings.HasPrefix(body, "^")
	if negated {
		body = body[1:]
	}
	type runeRange struct{ lo, hi rune }
	var ranges []runeRange
	next := func() rune {
		if body[0] == '\\' {
			body = body[1:]
		}
		r, n := utf8.DecodeRuneInString(body)
		body = body[n:]
		return r
	}
	for body != "" {
		lo := next()
		hi := lo
		if body != "" && body[0] == '-' {
			body = body[1:]
			hi = next()
		}
		ranges = append(ranges, runeRange{lo, hi})
	}
	in := func(r rune) bool {
		for _, rr := range ranges {
			if rr.lo <= r && r <= rr.hi {
				return !negated
			}
		}
		return negated
	}
	var ascii [utf8.RuneSelf]bool
	for c := 0; c < utf8.RuneSelf; c++ {
		if in(rune(c)) {
			ascii[canonicalByte(byte(c))] = true
		}
	}
	// Non-ASCII members, as ranges.
	var wide []runeRange
	for _, rr := range ranges {
		if rr.hi >= utf8.RuneSelf && rr.lo <= rr.hi {
			wide = append(wide, runeRange{max(rr.lo, utf8.RuneSelf), rr.hi})
		}
	}
	if negated {
		slices.SortFunc(wide, func(a, b runeRange) int { return int(a.lo - b.lo) })
		var comp []runeRange
		lo := rune(utf8.RuneSelf)
		for _, rr := range wide {
			if rr.lo > lo {
				comp = append(comp, runeRange{lo, rr.lo - 1})
			}
			lo = max(lo, rr.hi+1)
		}
		if lo <= utf8.MaxRune {
			comp = append(comp, runeRange{lo, utf8.MaxRune})
		}
		wide = comp
	}
	// Surrogates are no runes in UTF-8 (they decode as U+FFFD): keep bounds off them.
	for i := range wide {
		if wide[i].lo >= 0xd800 && wide[i].lo <= 0xdfff {
			wide[i].lo = 0xe000
		}
		if wide[i].hi >= 0xd800 && wide[i].hi <= 0xdfff {
			wide[i].hi = 0xd7ff
		}
	}
	wide = slices.DeleteFunc(wide, func(rr runeRange) bool { return rr.lo > rr.hi })
	start := len(dst)
	dst = append(dst, '[')
	for c, ok := range ascii {
		if ok {
			dst = append(dst, '\\', byte(c))
		}
	}
	for _, rr := range wide {
		dst = append(dst, '\\')
		dst = utf8.AppendRune(dst, rr.lo)
		dst = append(dst, '-', '\\')
		dst = utf8.AppendRune(dst, rr.hi)
	}
	if len(dst) == start+1 {
		// Nothing matches, and path.Match rejects "[]": the negation of everything.
		dst = append(dst, '^', '\\', 0, '-', '\\')
		dst = utf8.AppendRune(dst, utf8.MaxRune)
	}
	return append(dst, ']')
}
