// Whether two path.Match patterns can match one name: how the policies on one request path
// are checked against each other (a name two handlers both manage, or one that reads as the
// other's, must be managed the same way by both).

package engine

import (
	"slices"
	"strings"
	"unicode/utf8"
)

// runeRange is an inclusive range of runes.
type runeRange struct{ lo, hi rune }

// atom is one step of a pattern: a star, or one rune from a set.
type atom struct {
	star bool
	any  bool        // the star matches '/' too
	set  []runeRange // sorted, disjoint; for a non-star
}

var (
	allButSlash = []runeRange{{0, '/' - 1}, {'/' + 1, utf8.MaxRune}}
	allRunes    = []runeRange{{0, utf8.MaxRune}}
)

// atoms splits a valid path.Match pattern into its steps. '*' and '?' do not match '/', as
// in path.Match, unless anyRune (Caddy's path matcher, whose '*' spans segments).
func atoms(pattern string, anyRune bool) []atom {
	var out []atom
	for i := 0; i < len(pattern); {
		switch c := pattern[i]; c {
		case '*':
			if len(out) == 0 || !out[len(out)-1].star {
				out = append(out, atom{star: true, any: anyRune})
			}
			i++
		case '?':
			set := allButSlash
			if anyRune {
				set = allRunes
			}
			out = append(out, atom{set: set})
			_, n := utf8.DecodeRuneInString(pattern[i:])
			i += n
		case '[':
			n := classLen(pattern[i:])
			out = append(out, atom{set: classSet(pattern[i : i+n])})
			i += n
		default:
			if c == '\\' && i+1 < len(pattern) {
				i++
			}
			r, n := utf8.DecodeRuneInString(pattern[i:])
			out = append(out, atom{set: []runeRange{{r, r}}})
			i += n
		}
	}
	return out
}

// classRanges reads a character class as path.Match does: its ranges as written, and whether
// it is negated.
func classRanges(class string) (rs []runeRange, negated bool) {
	body := class[1 : len(class)-1]
	negated = len(body) > 0 && body[0] == '^'
	if negated {
		body = body[1:]
	}
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
		rs = append(rs, runeRange{lo, hi})
	}
	return rs, negated
}

// classSet is the set of runes a character class matches ('/' included: path.Match("[/]",
// "/") is true).
func classSet(class string) []runeRange {
	written, negated := classRanges(class)
	rs := normalizeRanges(slices.DeleteFunc(written, func(r runeRange) bool { return r.lo > r.hi }))
	if negated {
		var comp []runeRange
		lo := rune(0)
		for _, r := range rs {
			if r.lo > lo {
				comp = append(comp, runeRange{lo, r.lo - 1})
			}
			lo = r.hi + 1
		}
		if lo <= utf8.MaxRune {
			comp = append(comp, runeRange{lo, utf8.MaxRune})
		}
		rs = comp
	}
	return rs
}

func normalizeRanges(rs []runeRange) []runeRange {
	slices.SortFunc(rs, func(a, b runeRange) int { return int(a.lo - b.lo) })
	var out []runeRange
	for _, r := range rs {
		if n := len(out); n > 0 && r.lo <= out[n-1].hi+1 {
			out[n-1].hi = max(out[n-1].hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

func intersectRanges(a, b []runeRange) []runeRange {
	var out []runeRange
	for i, j := 0, 0; i < len(a) && j < len(b); {
		lo, hi := max(a[i].lo, b[j].lo), min(a[i].hi, b[j].hi)
		if lo <= hi {
			out = append(out, runeRange{lo, hi})
		}
		if a[i].hi < b[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

// PatternsOverlap reports whether some name matches both patterns (valid path.Match
// patterns).
func PatternsOverlap(p, q string) bool {
	_, ok := walkOverlap(atoms(p, false), atoms(q, false))
	return ok
}

// PathPatternsOverlap is PatternsOverlap for Caddy's path matcher patterns, whose '*' may span
// '/' (a prefix "/app*", a suffix "*.php"); it errs on the side of overlap.
func PathPatternsOverlap(p, q string) bool {
	_, ok := walkOverlap(atoms(p, true), atoms(q, true))
	return ok
}

// witness returns a name both patterns match, if there is one.
func witness(p, q string) (string, bool) {
	rs, ok := walkOverlap(atoms(p, false), atoms(q, false))
	return string(rs), ok
}

// walkOverlap walks pairs of positions, where a step consumes one rune both allow or lets a
// star match nothing more; it returns the runes of a name both match (reversed on the way
// back, so built from the end).
func walkOverlap(a, b []atom) ([]rune, bool) {
	seen := make([]bool, (len(a)+1)*(len(b)+1))
	var walk func(i, j int) ([]rune, bool)
	walk = func(i, j int) ([]rune, bool) {
		if seen[i*(len(b)+1)+j] {
			return nil, false
		}
		seen[i*(len(b)+1)+j] = true
		if i == len(a) && j == len(b) {
			return []rune{}, true
		}
		if i < len(a) && a[i].star {
			if w, ok := walk(i+1, j); ok {
				return w, true
			}
		}
		if j < len(b) && b[j].star {
			if w, ok := walk(i, j+1); ok {
				return w, true
			}
		}
		if i == len(a) || j == len(b) {
			return nil, false
		}
		var set []runeRange
		ni, nj := i+1, j+1
		switch {
		case a[i].star && b[j].star:
			return nil, false // covered by the two moves above
		case a[i].star:
			set, ni = intersectRanges(b[j].set, a[i].runes()), i // the star takes b's rune
		case b[j].star:
			set, nj = intersectRanges(a[i].set, b[j].runes()), j
		default:
			set = intersectRanges(a[i].set, b[j].set)
		}
		if len(set) == 0 {
			return nil, false
		}
		w, ok := walk(ni, nj)
		if !ok {
			return nil, false
		}
		return append([]rune{pickRune(set)}, w...), true
	}
	return walk(0, 0)
}

// pickRune picks a rune of a set, a cookie name's character where there is one.
func pickRune(set []runeRange) rune {
	for _, r := range set {
		if lo := max(r.lo, 'a'); lo <= min(r.hi, 'z') {
			return lo
		}
	}
	for _, r := range set {
		for c := max(r.lo, '!'); c <= min(r.hi, '~'); c++ {
			if isTokenByte(byte(c)) {
				return c
			}
		}
	}
	return set[0].lo
}

func isTokenByte(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

// runes is what a star matches one rune of.
func (a atom) runes() []runeRange {
	if a.any {
		return allRunes
	}
	return allButSlash
}
