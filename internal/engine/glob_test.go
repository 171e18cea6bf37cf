package engine

import (
	"path"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPatternsOverlap(t *testing.T) {
	for _, tc := range []struct {
		p, q    string
		overlap bool
	}{
		// literals
		{"session", "session", true},
		{"session", "Session", false},
		{"a", "ab", false},
		{"", "", true},
		{"", "a", false},
		// '*'
		{"*", "session", true},
		{"*", "", true},
		{"sess_*", "sess_a", true},
		{"sess_*", "sess", false},
		{"a*", "b*", false},
		{"a*", "*b", true},
		{"*a", "*b", false},
		{"a*b", "a*c", false},
		{"a*", "ab*cd", true},
		{"*_token", "sess_*", true},
		{"*x*y*", "*y*x*", true},
		{"**", "", true},
		// '?'
		{"?", "a", true},
		{"?", "", false},
		{"??", "a", false},
		{"a?c", "abc", true},
		{"?", "é", true}, // one rune, not one byte
		{"??", "é", false},
		{"*", "?", true},
		{"?*", "", false},
		// classes, negated ones and ranges
		{"[abc]", "[cde]", true},
		{"[ab]", "[cd]", false},
		{"[a-f]", "[e-z]", true},
		{"[a-c]", "[d-z]", false},
		{"[^a]", "a", false},
		{"[^a]", "b", true},
		{"[^a-z]", "[a-z]", false},
		{"[^a-z]", "[A-Z]", true},
		{"[^a-z]", "[^A-Z]", true},
		{"x[0-9]", "x5", true},
		{"x[0-9]", "x[a-f]", false},
		{"x[0-9]y", "x*y", true},
		{"[a-cx-z]", "[d-w]", false},
		{"[a-cx-z]", "[d-x]", true},
		{"[b-a]x", "?x", false}, // an empty range matches nothing
		{"[^\x00-\U0010FFFF]", "*", false},
		{"[^\x00-\U0010FFFF]", "?", false},
		// escapes
		{`a\*b`, "a*b", true},
		{`a\*b`, "axb", false},
		{`a\*b`, "a?b", true},
		{`a\*b`, `a[*]b`, true},
		{`\[x`, "[[]x", true},
		{`\\`, `[\\]`, true},
		{`[\]]`, "]", true},
		{`[\-]`, "-", true},
		{`[\^a]`, "^", true},
		{`\a`, "a", true},
		// non-ASCII
		{"é", "e", false},
		{"é*", "e*", false},
		{"[é-ü]", "ö", true},
		{"[é-ü]", "[a-z]", false},
		{"[^é]", "é", false},
		{"[^é]", "è", true},
		{"ü_*", "?_x", true},
		{"ü_*", "Ü_*", false},
		{"x_[é-ü]?", "x_ü*", true},
		{"€", "[\u2000-\u2100]", true},
		{"\U0001F36A*", "?", true},
	} {
		for _, pq := range [][2]string{{tc.p, tc.q}, {tc.q, tc.p}} {
			if got := PatternsOverlap(pq[0], pq[1]); got != tc.overlap {
				t.Errorf("PatternsOverlap(%q, %q) = %v, want %v", pq[0], pq[1], got, tc.overlap)
			}
		}
		// The table itself is checked against path.Match: a name both match is found when it
		// says they overlap, none when it says not.
		if w, ok := searchWitness(tc.p, tc.q); ok != tc.overlap {
			t.Errorf("%q, %q: witness %q, %v; the table says %v", tc.p, tc.q, w, ok, tc.overlap)
		}
	}
}

// searchWitness searches for a name both patterns match among names spelled out from either
// pattern: each star as nothing, one rune or a literal run of the other pattern, each other
// step as one of the runes of the patterns (and a few more) that it matches. path.Match
// judges every step and every candidate.
func searchWitness(p, q string) (string, bool) {
	var alphabet []rune
	for _, r := range p + q + "aZ0_é" {
		if !slices.Contains(alphabet, r) {
			alphabet = append(alphabet, r)
		}
	}
	for _, pq := range [][2]string{{p, q}, {q, p}} {
		steps := globSteps(pq[0])
		var runs [][]rune // the literal runs of the other pattern
		var run []rune
		for _, st := range append(globSteps(pq[1]), "*") {
			if r, n := utf8.DecodeRuneInString(strings.TrimPrefix(st, `\`)); !strings.ContainsAny(st, "*?[") || st[0] == '\\' && n > 0 {
				run = append(run, r)
			} else if len(run) > 0 {
				runs, run = append(runs, run), nil
			}
		}
		var try func(i int, name []rune) (string, bool)
		try = func(i int, name []rune) (string, bool) {
			if i == len(steps) {
				okP, _ := path.Match(p, string(name))
				okQ, _ := path.Match(q, string(name))
				return string(name), okP && okQ
			}
			name = name[:len(name):len(name)]
			if steps[i] == "*" {
				if w, ok := try(i+1, name); ok {
					return w, true
				}
				for _, run := range runs {
					if w, ok := try(i+1, append(name, run...)); ok {
						return w, true
					}
				}
			}
			for _, r := range alphabet {
				if ok, _ := path.Match(steps[i], string(r)); ok || steps[i] == "*" && r != '/' {
					if w, ok := try(i+1, append(name, r)); ok {
						return w, true
					}
				}
			}
			return "", false
		}
		if w, ok := try(0, nil); ok {
			return w, true
		}
	}
	return "", false
}

// globSteps splits a valid pattern into its steps: "*", "?", a class, an escape or a rune.
func globSteps(pattern string) []string {
	var steps []string
	for pattern != "" {
		n := 1
		switch pattern[0] {
		case '\\':
			_, w := utf8.DecodeRuneInString(pattern[1:])
			n = 1 + w
		case '[':
			for n < len(pattern) && pattern[n] != ']' { // a valid class holds no bare ']'
				if pattern[n] == '\\' {
					n++
				}
				n++
			}
			n++
		default:
			_, n = utf8.DecodeRuneInString(pattern)
		}
		steps = append(steps, pattern[:n])
		pattern = pattern[n:]
	}
	return steps
}

// PatternsOverlap never misses a name that both patterns match (a false positive only costs
// an unneeded conflict; a false negative lets two policies manage one cookie differently).
//
// Patterns are valid UTF-8, as the configuration's are: path.Match compares literal bytes
// and PatternsOverlap runes, which differ for broken encodings. Names holding '/' are left
// out: no cookie name (an RFC 6265 token) holds one, and classSet assumes a class never
// matches '/', although path.Match's do.
func FuzzPatternsOverlap(f *testing.F) {
	for _, s := range [][3]string{
		{"sess_*", "sess_a", "sess_a"}, {"*_token", "sess_*", "sess_token"}, {"a*", "*b", "ab"},
		{"[a-f]", "[e-z]", "e"}, {"[^a-z]", "[A-Z]", "Q"}, {`a\*b`, "a?b", "a*b"},
		{"x_[é-ü]?", "x_ü*", "x_üx"}, {"*x*y*", "*y*x*", "yxy"}, {"[^\x00-\U0010FFFF]", "*", ""},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, p, q, name string) {
		if !utf8.ValidString(p) || !utf8.ValidString(q) || len(p) > 64 || len(q) > 64 {
			return
		}
		if _, err := path.Match(p, ""); err != nil {
			return
		}
		if _, err := path.Match(q, ""); err != nil {
			return
		}
		got := PatternsOverlap(p, q)
		if got != PatternsOverlap(q, p) {
			t.Fatalf("PatternsOverlap(%q, %q) = %v, but not the other way round", p, q, got)
		}
		if strings.Contains(name, "/") {
			return
		}
		okP, _ := path.Match(p, name)
		okQ, _ := path.Match(q, name)
		if okP && okQ && !got {
			t.Fatalf("%q matches %q and %q, but PatternsOverlap says they do not overlap", name, p, q)
		}
		// A pattern that matches some name overlaps itself.
		if okP && !PatternsOverlap(p, p) {
			t.Fatalf("%q matches %q, but the pattern does not overlap itself", name, p)
		}
	})
}
