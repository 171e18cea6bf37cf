// The two shapes the module uses: a Codec for values a Python service reads with
// itsdangerous alone, and a Session verifier for Flask's own session cookie.

package itsdangerous

import (
	"strings"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// Codec signs and verifies values as Python's itsdangerous does:
// URLSafeSerializer(secret_key, salt).dumps(value) (a JSON string, signed with HMAC-SHA1 and
// the Signer's default key derivation), or URLSafeTimedSerializer when it has a max age,
// whose loads takes max_age. The cookie's name is not signed (itsdangerous has no name): the
// salt is what tells two cookies' values apart. Values are valid UTF-8 (JSON text).
type Codec struct {
	z      *dangerousSerializer
	maxAge int64 // seconds; -1 for none (untimed)
}

// New returns a codec over secretKeys, itsdangerous' secret_key list: the first signs, all
// verify. maxAge > 0 makes it URLSafeTimedSerializer.
func New(secretKeys [][]byte, salt string, maxAge time.Duration) (*Codec, error) {
	z, err := newDangerousSerializer(secretKeys, salt, dangerousDjangoConcat, maxAge > 0)
	if err != nil {
		return nil, err
	}
	c := &Codec{z: z, maxAge: -1}
	if maxAge > 0 {
		c.maxAge = int64(maxAge / time.Second)
	}
	return c, nil
}

// AppendEncodeAt appends the signed form of value, signed at ts (Unix seconds; used only when
// timed), to dst. The name is not signed.
func (c *Codec) AppendEncodeAt(dst []byte, _ string, value []byte, ts int64) ([]byte, error) {
	return c.z.appendDumps(dst, value, ts)
}

// AppendDecodeAt verifies value at now (Unix seconds) and appends the string it holds to dst.
// Errors are the cookie package's reasons.
func (c *Codec) AppendDecodeAt(dst []byte, _, value string, now int64) (cookie.Decoded, error) {
	return c.z.appendLoads(dst, value, now, c.maxAge)
}

// IsEncoded reports whether value has the shape of a signed value, whatever its signature.
func (c *Codec) IsEncoded(value string) bool { return dangerousShape(value, c.z.timed) }

// KeyCount is how many keys verify: a forged value costs one HMAC each.
func (c *Codec) KeyCount() int { return len(c.z.signer.keys) }

// MaxLength is the longest value accepted.
func (c *Codec) MaxLength() int { return c.z.maxLength }

// EncodedLen is an upper bound of the signed length of an n-byte value (JSON escapes at
// worst 6:1).
func (c *Codec) EncodedLen(n int) int {
	return dangerousB64.EncodedLen(6*n+2) + 1 + 12 + 1 + dangerousSigChars
}

// Encrypted is false: itsdangerous signs, it does not encrypt.
func (c *Codec) Encrypted() bool { return false }

// Session verifies Flask's session cookie as Flask 2.x and 3.x write it (itsdangerous
// URLSafeTimedSerializer, the "hmac" key derivation, tagged JSON, the "."-prefixed zlib
// form). It issues none: the app does.
type Session struct {
	z      *dangerousSerializer
	maxAge int64 // seconds; -1 for none
}

// NewSession returns a verifier of Flask sessions: secretKeys are SECRET_KEY then
// SECRET_KEY_FALLBACKS, salt Flask's "cookie-session" unless the app changed it ("" for
// that), maxAge its PERMANENT_SESSION_LIFETIME (0 for none).
func NewSession(secretKeys [][]byte, salt string, maxAge time.Duration) (*Session, error) {
	if salt == "" {
		salt = flaskSessionSalt
	}
	z, err := newDangerousSerializer(secretKeys, salt, dangerousHMAC, true)
	if err != nil {
		return nil, err
	}
	s := &Session{z: z, maxAge: -1}
	if maxAge > 0 {
		s.maxAge = int64(maxAge / time.Second)
	}
	return s, nil
}

// AppendDecodeAt verifies a session at now (Unix seconds) and appends its JSON (see
// SessionFields) to dst. Errors are the cookie package's reasons; on ErrExpired, Signed and
// Key say when and with which key it was signed.
func (s *Session) AppendDecodeAt(dst []byte, _, value string, now int64) (cookie.Decoded, error) {
	js, ts, key, err := s.z.verify(value, now, s.maxAge)
	if err == cookie.ErrExpired {
		return cookie.Decoded{Value: dst, Signed: ts, Key: key}, err
	}
	if err != nil {
		return cookie.Decoded{Value: dst}, err
	}
	return cookie.Decoded{Value: append(dst, js...), Signed: ts, Key: key}, nil
}

// IsEncoded reports whether value has the shape of a signed session, whatever its signature.
func (s *Session) IsEncoded(value string) bool { return dangerousShape(value, true) }

// KeyCount is how many keys verify.
func (s *Session) KeyCount() int { return len(s.z.signer.keys) }

// MaxLength is the longest value accepted.
func (s *Session) MaxLength() int { return s.z.maxLength }

// SessionFields reads the top-level keys of a Flask session's JSON (as Session decodes it),
// untagged; a field becomes text when it is read.
func SessionFields(js []byte) (Fields, error) {
	m, err := flaskParseSession(js)
	return Fields(m), err
}

// Fields are a Flask session's top-level keys.
type Fields map[string]any

// Get returns a field as text: a string as it is, other scalars as JSON text, UUIDs and dates
// as text, containers as compact JSON.
func (f Fields) Get(key string) (string, bool) {
	v, ok := f[key]
	if !ok {
		return "", false
	}
	return flaskText(v), true
}

// dangerousShape reports whether value looks like an itsdangerous value, whatever its
// signature says: payload, (timestamp,) and a signature of the right length.
func dangerousShape(value string, timed bool) bool {
	i := strings.LastIndexByte(value, '.')
	if i <= 0 || len(value)-i-1 != dangerousSigChars {
		return false
	}
	if _, err := dangerousB64.DecodeString(value[i+1:]); err != nil {
		return false
	}
	return !timed || strings.LastIndexByte(value[:i], '.') > 0
}
