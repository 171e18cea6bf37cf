// Which names are managed, and which an upstream could read as managed ones: the rules of one
// policy, their canonical forms (case, %-escapes, PHP's name mangling) and the scans that find
// a managed name hidden where Go would not see one.

package engine

import (
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// ruleKind is what a rule does with the cookies it manages.
type ruleKind uint8

const (
	kindSign      ruleKind = iota // upstream cookie, signed
	kindEncrypt                   // upstream cookie, signed and encrypted
	kindFormatted                 // upstream cookie, signed in another format (itsdangerous)
	kindVisitor                   // the visitor cookie: verified, never forwarded as it is
	kindFlask                     // Flask's session: verified, forwarded untouched, fields exposed
	kindPlain                     // an unsigned cookie held with a prefix: guarded against look-alikes
)

// rule makes the cookies whose names match pattern managed: verified and decoded by codec.
type rule struct {
	pattern string
	kind    ruleKind
	codec   Verifier
	signer  Codec // codec, for the rules whose values the module signs (not Flask's)
	long    Codec // the codec for split values, when a cookie rule splits
	maxAge  int64 // seconds: the codec's, for upstream cookies
	// field names the rule as configured ("sign sess_*"), for errors.
	field string
	// base is equal for rules that read and write a cookie alike (kind, keys, format, max
	// age…); identity adds what the policy around the rule changes (on_invalid, unwrap, the
	// cookie rules and adoption windows that can apply): rules of two policies with equal
	// identities may share a request path (see Compose).
	base, identity string

	glob bool
	// canonical is the form that the canonical forms of the managed names match.
	canonical string
	// The literal text before the first metacharacter of the pattern and of its canonical
	// form: a name without it cannot match, which spares path.Match for most cookies.
	prefix, canonicalPrefix string
}

// refreshable reports whether the rule's keys are the handler's key ring, which a re-read of
// storage may extend.
func (r *rule) refreshable() bool {
	_, ok := r.codec.(*cookie.Codec)
	return ok
}

// jar holds a policy's rules. It is immutable and safe for concurrent use.
type jar struct {
	rules []rule
	// firstCanon holds the first byte of every canonical prefix: a name whose first canonical
	// byte is not in it reads as no managed name, without canonicalizing it. anyFirst: some
	// canonical pattern starts with a metacharacter, so every name needs the full check.
	firstCanon [256]bool
	anyFirst   bool
	// first holds the first byte of every rule's literal prefix: a name starting with another
	// byte matches no rule (anyRule: some pattern starts with a metacharacter).
	first   [256]bool
	anyRule bool
	// canonicalSelf: every rule's canonical pattern is its pattern, so a name that is its own
	// canonical form (see selfCanonical) reads as managed exactly when it is managed.
	canonicalSelf bool
}

// newJar prepares rules whose patterns are valid path.Match patterns. The first matching rule
// wins.
func newJar(rules []rule) *jar {
	j := &jar{rules: rules, canonicalSelf: true}
	for i := range j.rules {
		r := &j.rules[i]
		r.glob = strings.ContainsAny(r.pattern, `*?[\`)
		if r.glob {
			r.canonical = canonicalGlob(r.pattern)
		} else {
			r.canonical = string(appendCanonical(nil, r.pattern))
		}
		j.canonicalSelf = j.canonicalSelf && r.canonical == r.pattern
		r.prefix = literalPrefix(r.pattern)
		r.canonicalPrefix = literalPrefix(r.canonical)
		if r.canonicalPrefix == "" {
			j.anyFirst = true
		} else {
			j.firstCanon[r.canonicalPrefix[0]] = true
		}
		if r.prefix == "" {
			j.anyRule = true
		} else {
			j.first[r.prefix[0]] = true
		}
	}
	return j
}

func literalPrefix(pattern string) string {
	if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
		return pattern[:i]
	}
	return pattern
}

// match returns the index of the rule managing name, or -1.
func (j *jar) match(name string) int {
	if !j.anyRule && (name == "" || !j.first[name[0]]) {
		return -1
	}
	for i := range j.rules {
		r := &j.rules[i]
		if r.glob {
			if !strings.HasPrefix(name, r.prefix) {
				continue
			}
			if ok, _ := path.Match(r.pattern, name); ok {
				return i
			}
		} else if r.pattern == name {
			return i
		}
	}
	return -1
}

// matchName reports whether name matches the valid pattern.
func matchName(pattern, name string) bool {
	ok, _ := path.Match(pattern, name)
	return ok
}

// covers reports whether a rule manages every name pattern does (the same pattern, or a name
// a rule matches).
func (j *jar) covers(pattern string) bool {
	for i := range j.rules {
		if j.rules[i].pattern == pattern {
			return true
		}
	}
	return !strings.ContainsAny(pattern, `*?[\`) && j.match(pattern) >= 0
}

// isLookalike reports whether name is not managed but an upstream could read it as a managed
// name: after trimming odd whitespace, %-decoding, folding case and mapping ' ', '.' and '['
// to '_' (as PHP does), it matches a rule. PHP drops only leading spaces, so a name is also
// tried with its trailing bytes kept: to PHP, "session " is "session_".
func (j *jar) isLookalike(name string) bool {
	var buf []byte
	return j.match(name) < 0 && j.lookalike(name, &buf)
}

// lookalike is isLookalike for a name known not to be managed.
func (j *jar) lookalike(name string, buf *[]byte) bool {
	return j.readsAsManaged(name, buf) || hasArrayByte(name) && j.arrayOfManaged(name, buf)
}

// hasArrayByte reports whether a name has a '[' or a '%': only then can PHP read it as an
// element of an array.
func hasArrayByte(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '[' || c == '%' {
			return true
		}
	}
	return false
}

// arrayOfManaged reports whether PHP reads name as an element of a managed cookie's array:
// "sess[x]" (or, where PHP decodes names, "sess%5Bx%5D") replaces $_COOKIE['sess'] whatever
// came first.
func (j *jar) arrayOfManaged(name string, buf *[]byte) bool {
	open := strings.IndexByte(name, '[')
	if open < 0 || strings.IndexByte(name[open:], ']') < 0 {
		if strings.IndexByte(name, '%') < 0 {
			return false
		}
		if open = indexEscape(name, 'b'); open < 0 || indexEscape(name[open:], 'd') < 0 {
			return false
		}
	}
	base := name[:open]
	return base != "" && (j.match(base) >= 0 || j.readsAsManaged(base, buf))
}

// indexEscape is the index of the first "%5" followed by lower (a lower-case hex digit) in
// either case, or -1: "%5b" and "%5B" are both '['.
func indexEscape(s string, lower byte) int {
	for i := 0; i+2 < len(s); i++ {
		if s[i] == '%' && s[i+1] == '5' && s[i+2]|0x20 == lower {
			return i
		}
	}
	return -1
}

// hidesManaged reports whether a pair that is not managed carries, after a byte that cannot
// be part of a cookie (',', space, '"'…), text that some parser reads as a managed cookie:
// ASP.NET Core splits on ',' and retries after a bad byte, Python's SimpleCookie splits on
// spaces, old Rack on ','. "x=1,sess=forged" must not reach them as "sess=forged".
//
// One pass: each candidate name is the run of cookie octets before an '=' that starts after
// the last other byte, and a run that already holds an '=' is a value, not a name. The
// candidates do not overlap, so the work is linear in the pair, whatever it holds.
func (j *jar) hidesManaged(part string, buf *[]byte) bool {
	start, lastEq := 0, -1 // start of the current run of cookie octets; last '=' in it
	self := true           // the run so far is its own canonical form
	for k := 0; k < len(part); k++ {
		c := part[k]
		if !isCookieOctet(c) {
			start, lastEq, self = k+1, -1, true
			continue
		}
		if c != '=' {
			self = self && selfCanonical[c]
			continue
		}
		if start > 0 && lastEq < 0 && k > start { // not the pair's own name, not empty
			cand := part[start:k]
			if j.match(cand) >= 0 || !(self && j.canonicalSelf) && j.lookalike(cand, buf) {
				return true
			}
		}
		lastEq = k
	}
	return false
}

// selfCanonical holds the bytes that appendCanonical keeps as they are wherever they stand,
// and that make no PHP array: a name of them alone is its own canonical form, the one name
// it reads as.
var selfCanonical = func() (t [256]bool) {
	for c := range t {
		b := byte(c)
		t[c] = !isOdd(b) && b != '%' && b != '[' && canonicalByte(b) == b
	}
	return t
}()

func allCookieOctets(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isCookieOctet(s[i]) {
			return false
		}
	}
	return true
}

// isCookieOctet is RFC 6265's cookie-octet: what may stand in a cookie value unquoted.
func isCookieOctet(c byte) bool { return cookieOctets[c] }

// cookieOctets is isCookieOctet as a table: the scans for hidden pairs look up every byte.
var cookieOctets = func() (t [256]bool) {
	for c := range t {
		t[c] = c == 0x21 || c >= 0x23 && c <= 0x2b || c >= 0x2d && c <= 0x3a || c >= 0x3c && c <= 0x5b || c >= 0x5d && c <= 0x7e
	}
	return t
}()

// readsAsManaged reports whether the canonical form of name matches a rule.
func (j *jar) readsAsManaged(name string, buf *[]byte) bool {
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
	b, end := appendCanonicalForms((*buf)[:0], name)
	*buf = b
	// Trimmed at the end, then (if that trimmed anything) with the trailing bytes kept.
	return j.matchCanonical(b[:end]) || end < len(b) && j.matchCanonical(b)
}

func (j *jar) matchCanonical(c []byte) bool {
	for i := range j.rules {
		r := &j.rules[i]
		if r.glob {
			if len(c) < len(r.canonicalPrefix) || string(c[:len(r.canonicalPrefix)]) != r.canonicalPrefix {
				continue
			}
			if ok, _ := path.Match(r.canonical, string(c)); ok {
				return true
			}
		} else if r.canonical == string(c) {
			return true
		}
	}
	return false
}

// appendCanonical appends the form of name an upstream may read it as: %XX decoded, trimmed
// of ASCII whitespace, control bytes and non-ASCII bytes (Unicode spaces such as NBSP) at
// either end, cut at a decoded NUL, ASCII folded to lower case, and ' ', '.', '[', '+' mapped
// to '_'.
func appendCanonical(dst []byte, name string) []byte {
	dst, end := appendCanonicalForms(dst, name)
	return dst[:end]
}

// appendCanonicalForms is appendCanonical with the trailing bytes kept (PHP trims only the
// start of a name: to it, "session " is "session_"), and where appendCanonical's form ends.
func appendCanonicalForms(dst []byte, name string) (_ []byte, end int) {
	start := len(dst)
	end = start // after the last byte that is not odd
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '%' && i+2 < len(name) && isHex(name[i+1]) && isHex(name[i+2]) {
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
			if c == 0 {
				break // PHP's C strings end the name at a decoded NUL
			}
		}
		if isOdd(c) {
			if len(dst) == start {
				continue // trimmed at the start
			}
		} else {
			end = len(dst) + 1
		}
		dst = append(dst, canonicalByte(c))
	}
	return dst, end
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
func canonicalByte(c byte) byte { return canonicalBytes[c] }

var canonicalBytes = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c == ' ' || c == '.' || c == '[' || c == '+':
			c = '_'
		}
		t[i] = c
	}
	return t
}()

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
	ranges, negated := classRanges(class)
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
