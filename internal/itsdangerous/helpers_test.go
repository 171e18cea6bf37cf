package itsdangerous

import "crypto/sha256"

// testSecret is a fixed 32-byte key named by label: reproducible, yet random-looking.
func testSecret(label string) []byte {
	s := sha256.Sum256([]byte(label))
	return s[:]
}

// t0 is a realistic signing time (10 digits, like every timestamp until 2286).
const t0 = 1764100000
