package engine

import (
	"strings"
	"testing"
)

// hasCTL reads eight bytes at a time; it must agree with the byte loop for every byte value
// at every position of a word and of the tail.
func TestHasCTLMatchesByteLoop(t *testing.T) {
	naive := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
				return true
			}
		}
		return false
	}
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				if got, want := hasCTL(string(b)), naive(string(b)); got != want {
					t.Fatalf("hasCTL(%q) = %v, want %v", b, got, want)
				}
				b[(pos+3)%n] = '\t' // a tab elsewhere in the word must not hide it
				if got, want := hasCTL(string(b)), naive(string(b)); got != want {
					t.Fatalf("hasCTL(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}
