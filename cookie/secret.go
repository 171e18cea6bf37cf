package cookie

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// MaxSecretBytes is the most decoded bytes a secret may have: more adds no strength, and it
// bounds the work of the checks below.
const MaxSecretBytes = 1024

// makeSecret ends every weak-secret error: it says how to make a good one.
const makeSecret = "make one with `caddy signed-cookies secret` or `head -c32 /dev/urandom | base64`"

// NewSecret returns a new secret, 32 bytes from crypto/rand in standard base64: what
// `caddy signed-cookies secret` prints.
func NewSecret() string {
	b := make([]byte, MinSecretBytes)
	rand.Read(b) // never fails: the program crashes if the system has no randomness
	return base64.StdEncoding.EncodeToString(b)
}

// exampleSecrets are the SHA-256 sums of the decoded secrets that documentation shows: a
// secret copied from the docs signs cookies that every reader of the docs can forge. The docs
// show only placeholders and `head -c32 /dev/urandom | base64` today, so the list is empty; add
// the sum of any secret a doc, example or blog post ever shows.
var exampleSecrets [][sha256.Size]byte

// weakness says, in a few words that follow "secret N ", why decoded secret bytes are evidently
// not random, or returns "". A secret from crypto/rand is refused with probability under 5e-14
// (32 bytes; less when longer), almost all of it the text check; the other checks add under
// 1e-15. The words never include any part of the secret.
func weakness(b []byte) string {
	sum := sha256.Sum256(b)
	for _, e := range exampleSecrets {
		if sum == e {
			return "is an example from the documentation"
		}
	}
	// Random bytes have a period p <= n/2 with probability about 256^-(n/2): 3e-39 at 32 bytes.
	if p := period(b); p == 1 {
		return "is one byte repeated"
	} else if p <= len(b)/2 {
		return "repeats a short pattern"
	}
	// A base64-encoded passphrase, or any text: even base64 of a random hex string is refused,
	// which costs its owner one new secret. Random bytes are all tab, LF, CR or 0x20-0x7e with
	// probability (98/256)^n: 4.5e-14 at 32 bytes.
	text := true
	for _, c := range b {
		text = text && (c >= 0x20 && c <= 0x7e || c == '\t' || c == '\n' || c == '\r')
	}
	if text {
		return "is text, not random bytes"
	}
	if distinct(b, false) < minDistinct(len(b)) {
		return "has too few distinct bytes"
	}
	// 0, 1, 2, ... has 32 distinct bytes but one step. The n-1 steps b[i+1]-b[i] (mod 256) of
	// random bytes are themselves independent and uniform, so the same threshold holds.
	if distinct(b, true) < minDistinct(len(b)-1) {
		return "is a sequence: too few distinct steps from byte to byte"
	}
	return ""
}

// minDistinct is the fewest distinct values that n random bytes may show: 16 up to 64 bytes,
// then n/4, at most 32. By exact occupancy sums over every n up to MaxSecretBytes, random
// bytes show fewer with probability at most 3.2e-17, at n = 32 (31 random steps: 4.6e-16).
// It is this low so that a hex string taken as base64 (`openssl rand -hex 32`: 48 bytes of
// 121 possible values, 192 random bits) passes: it shows 38 ± 2.4 distinct bytes and
// 43 ± 1.8 distinct steps, and at 96 bytes (-hex 64) 61 ± 3.3 against a threshold of 24.
func minDistinct(n int) int { return max(16, min(n/4, 32)) }

// distinct counts the distinct values of b, or with steps of its steps b[i+1]-b[i] (mod 256).
func distinct(b []byte, steps bool) int {
	var seen [256]bool
	d := 0
	for i, c := range b {
		if steps {
			if i == 0 {
				continue
			}
			c -= b[i-1]
		}
		if !seen[c] {
			seen[c] = true
			d++
		}
	}
	return d
}

// period is the least p > 0 with b[i] == b[i+p] for every i (len(b) if none), in O(len(b))
// with the KMP failure function: f[i] is the longest proper prefix of b[:i+1] that is also its
// suffix, and the least period of b is len(b) minus the longest such border.
func period(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	f := make([]int, len(b))
	for i := 1; i < len(b); i++ {
		k := f[i-1]
		for k > 0 && b[i] != b[k] {
			k = f[k-1]
		}
		if b[i] == b[k] {
			k++
		}
		f[i] = k
	}
	return len(b) - f[len(b)-1]
}
