package cookie

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
)

// weakWords are the reasons weakness gives; a weak-secret error is one of them, "; ", and
// makeSecret.
var weakWords = []string{
	"is an example from the documentation",
	"is one byte repeated",
	"repeats a short pattern",
	"is text, not random bytes",
	"has too few distinct bytes",
	"is a sequence: too few distinct steps from byte to byte",
}

// wellFormed reports whether msg is one of ParseSecret's messages, which depend on the
// secret's length at most: so it cannot carry any of the secret.
func wellFormed(msg string) bool {
	if w, hint, ok := strings.Cut(msg, "; "); ok {
		for _, ww := range append(weakWords, "decodes to 0 bytes, at most 0 allowed") {
			if regexp.MustCompile(`[0-9]+`).ReplaceAllString(w, "0") == ww && hint == makeSecret {
				return true
			}
		}
		return false
	}
	// Numbers are lengths: compare with every run of digits read as 0.
	digits := regexp.MustCompile(`[0-9]+`)
	for _, m := range []string{"is empty", "is not valid base64", "decodes to 0 bytes, need at least 0", "decodes to 0 bytes, at most 0 allowed"} {
		if digits.ReplaceAllString(msg, "0") == digits.ReplaceAllString(m, "0") {
			return true
		}
	}
	return false
}

// spread is n <= 64 bytes that take exactly k <= 32 values, not text, in random-looking order.
func spread(n, k int) []byte {
	b := append(testSecret("spread 1"), testSecret("spread 2")...)[:n]
	for i := range b {
		b[i] = 0xa0 + byte(int(b[i])%k)
	}
	for i := 0; i < k; i++ {
		b[i*n/k] = 0xa0 + byte(i) // every value once
	}
	return b
}

func seq(n int, start, step byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)*step
	}
	return b
}

func TestParseSecretWeak(t *testing.T) {
	few := append(testSecret("few 1"), testSecret("few 2")...)
	for i := range few {
		few[i] &= 0x83 // 8 values, 4 of them control characters: not text
	}
	pattern := testSecret("pattern")[:11]
	example := testSecret("documented example")
	for _, tc := range []struct {
		name string
		raw  []byte
		want string
	}{
		{"zeros", make([]byte, 32), "is one byte repeated"},
		{"ASCII zeros", bytes.Repeat([]byte("0"), 64), "is one byte repeated"},
		{"0xff", bytes.Repeat([]byte{0xff}, 48), "is one byte repeated"},
		{"changeme", []byte("changemechangemechangemechangeme"), "repeats a short pattern"},
		{"hex digits twice", []byte("0123456789abcdef0123456789abcdef"), "repeats a short pattern"},
		{"random pattern, whole repeats", bytes.Repeat(pattern, 3), "repeats a short pattern"},
		{"random pattern, cut", append(bytes.Repeat(testSecret("half")[:20], 2), testSecret("half")[:3]...), "repeats a short pattern"},
		{"passphrase", []byte("correct horse battery staple plus a few words"), "is text, not random bytes"},
		{"passphrase line", []byte("Tr0ub4dor&3 is my favourite password\r\n"), "is text, not random bytes"},
		{"hex text", []byte(hex.EncodeToString(testSecret("hex text"))), "is text, not random bytes"},
		{"base64 text", []byte(base64.StdEncoding.EncodeToString(testSecret("b64 text"))), "is text, not random bytes"},
		{"few values", few, "has too few distinct bytes"},
		{"15 values", spread(64, 15), "has too few distinct bytes"},
		{"counting", seq(32, 0, 1), "is a sequence"},
		{"counting down", seq(40, 0xff, 0xff), "is a sequence"},
		{"step 7", seq(64, 3, 7), "is a sequence"},
		{"two steps", func() []byte {
			b := make([]byte, 48)
			for i := range b {
				b[i] = byte(i*3 + i/2) // steps 3 and 4
			}
			return b
		}(), "is a sequence"},
		{"too long", bytes.Repeat(testSecret("long"), MaxSecretBytes/32+1), "decodes to 1056 bytes, at most 1024 allowed"},
	} {
		in := base64.StdEncoding.EncodeToString(tc.raw)
		checkRefused(t, tc.name, in, tc.raw, tc.want)
	}

	// A secret a document shows is refused, however random it looks.
	in := base64.RawURLEncoding.EncodeToString(example)
	if _, err := ParseSecret(in); err != nil {
		t.Fatalf("example before listing: %v", err)
	}
	saved := exampleSecrets
	exampleSecrets = append(exampleSecrets[:len(exampleSecrets):len(exampleSecrets)], sha256.Sum256(example))
	defer func() { exampleSecrets = saved }()
	checkRefused(t, "documented example", in, example, "is an example from the documentation")
}

func checkRefused(t *testing.T, name, in string, raw []byte, want string) {
	t.Helper()
	b, err := ParseSecret(in)
	if err == nil || b != nil {
		t.Errorf("%s: accepted", name)
		return
	}
	msg := err.Error()
	if !strings.Contains(msg, want) {
		t.Errorf("%s: %q, want it to say %q", name, msg, want)
	}
	if !strings.HasPrefix(want, "decodes to") &&
		(!strings.Contains(msg, "caddy signed-cookies secret") || !strings.Contains(msg, "head -c32 /dev/urandom | base64")) {
		t.Errorf("%s: %q does not say how to make a secret", name, msg)
	}
	if !wellFormed(msg) || echoes(msg, in) || echoes(msg, string(raw)) {
		t.Errorf("%s: %q echoes the secret", name, msg)
	}
}

// Strong secrets pass, including hex strings (`openssl rand -hex 32`) taken as base64: 48 bytes
// of 4 random bits each, 192 bits.
func TestParseSecretStrong(t *testing.T) {
	var ins []string
	for _, n := range []int{32, 33, 47, 64, 100, MaxSecretBytes} {
		b := make([]byte, n)
		rand.Read(b)
		ins = append(ins, base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	for i := 0; i < 2000; i++ {
		b := make([]byte, 32+32*(i%2)) // openssl rand -hex 32 and -hex 64
		rand.Read(b)
		ins = append(ins, hex.EncodeToString(b))
	}
	// 64 bytes of 16 values: the fewest minDistinct allows at that length.
	ins = append(ins, base64.StdEncoding.EncodeToString(spread(64, 16)))
	for _, l := range []string{"a", "b", "c", "k1", "k2", "golden", "parse"} {
		ins = append(ins, base64.StdEncoding.EncodeToString(testSecret(l)))
	}
	for _, in := range ins {
		if _, err := ParseSecret(in); err != nil {
			t.Errorf("ParseSecret(%q): %v", in, err)
		}
	}
}

// NewSecret's secrets pass ParseSecret and differ. 10,000 of them pin the false-positive rate
// of the checks empirically (computed: under 5e-14 per secret).
func TestNewSecret(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 10000; i++ {
		s := NewSecret()
		b, err := ParseSecret(s)
		if err != nil || len(b) != 32 || s != base64.StdEncoding.EncodeToString(b) {
			t.Fatalf("NewSecret() = %q: %d bytes, %v", s, len(b), err)
		}
		if seen[s] {
			t.Fatalf("NewSecret() returned %q twice", s)
		}
		seen[s] = true
	}
}

func TestPeriod(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"a", 1}, {"aaaa", 1}, {"ab", 2}, {"abab", 2}, {"ababa", 2}, {"abcab", 3},
		{"aabaab", 3}, {"aabaaab", 4}, {"abcd", 4}, {"abacaba", 4},
	} {
		if got := period([]byte(tc.in)); got != tc.want {
			t.Errorf("period(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// FuzzParseSecret: no input panics, an error is one of the fixed messages (so it cannot echo
// the input), and an accepted secret has an allowed length and no weakness.
func FuzzParseSecret(f *testing.F) {
	for _, s := range []string{"", "not base64", "c2VjcmV0", NewSecret(), hex.EncodeToString(testSecret("fuzz")),
		base64.StdEncoding.EncodeToString(make([]byte, 32)),
		base64.StdEncoding.EncodeToString([]byte("changemechangemechangemechangeme")),
		base64.StdEncoding.EncodeToString(seq(32, 0, 1))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseSecret(s)
		if err != nil {
			if b != nil || !wellFormed(err.Error()) {
				t.Fatalf("ParseSecret(%q) = %x, %q", s, b, err)
			}
			return
		}
		if len(b) < MinSecretBytes || len(b) > MaxSecretBytes || weakness(b) != "" {
			t.Fatalf("ParseSecret(%q) accepted %x", s, b)
		}
	})
}
