package cookie

import (
	"crypto/rand"
	"encoding/hex"
)

// VisitorIDLen is the size of a visitor ID in bytes.
const VisitorIDLen = 16

// NewVisitorID returns 16 random bytes laid out as a version 4 UUID.
func NewVisitorID() [VisitorIDLen]byte {
	var id [VisitorIDLen]byte
	rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// AppendUUID appends the canonical UUID text of a 16-byte ID (8-4-4-4-12 lower-case hex).
// Other lengths are appended as plain hex, which never happens for a verified visitor cookie.
func AppendUUID(dst, id []byte) []byte {
	if len(id) != VisitorIDLen {
		return hex.AppendEncode(dst, id)
	}
	dst = hex.AppendEncode(dst, id[0:4])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, id[4:6])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, id[6:8])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, id[8:10])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, id[10:16])
}

// UUIDString is the canonical UUID text of a 16-byte ID.
func UUIDString(id []byte) string { return string(AppendUUID(nil, id)) }

// ParseUUID reads the canonical UUID text of an ID (8-4-4-4-12 hex digits, either case).
func ParseUUID(s string) (id [VisitorIDLen]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	var digits [32]byte
	n := 0
	for i := 0; i < len(s); i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		digits[n] = s[i]
		n++
	}
	if _, err := hex.Decode(id[:], digits[:]); err != nil {
		return id, false
	}
	return id, true
}
