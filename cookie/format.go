// The wire formats other than securecookie's (the default, which Codec implements itself):
// a small closed set behind one shape, the Codec. Adding one (Django signing, Rails, Express
// cookie-signature) is a type implementing format and a constructor.

package cookie

import (
	"errors"
	"strings"
)

// format is a wire format a Codec can speak besides securecookie's.
type format interface {
	appendEncode(dst, value []byte, ts int64) ([]byte, error)
	appendDecode(dst []byte, value string, now int64) (Decoded, error)
	isEncoded(value string) bool
	keys() int
}

// NewItsDangerousCodec returns a codec in the format of Python's itsdangerous:
// URLSafeSerializer(secret_key, salt).dumps(value) (a JSON string, signed with HMAC-SHA1 and
// the Signer's default key derivation), so that a Python service verifies the cookies with
// itsdangerous alone. With Options.MaxAge it is URLSafeTimedSerializer, whose loads takes
// max_age. secretKeys are itsdangerous' secret_key list: the first signs, all verify. The
// cookie's name is not signed (itsdangerous has no name): the salt is what tells two cookies'
// values apart. Values must be valid UTF-8 (JSON text). Encrypt is not supported.
func NewItsDangerousCodec(secretKeys [][]byte, salt string, o Options) (*Codec, error) {
	if o.Encrypt {
		return nil, errors.New("itsdangerous values are signed, not encrypted")
	}
	z, err := newDangerousSerializer(secretKeys, salt, dangerousDjangoConcat, o.MaxAge > 0)
	if err != nil {
		return nil, err
	}
	return newFormatCodec(&itsDangerous{z: z}, o, z), nil
}

// NewFlaskSessionCodec returns a codec that verifies Flask's session cookie, as Flask 2.x and
// 3.x write it (itsdangerous URLSafeTimedSerializer, the "hmac" key derivation, tagged JSON,
// the "."-prefixed zlib form): secretKeys are SECRET_KEY then SECRET_KEY_FALLBACKS, salt
// Flask's "cookie-session" unless the app changed it, Options.MaxAge its
// PERMANENT_SESSION_LIFETIME. Decode returns the session's JSON (see FlaskSessionFields);
// the codec issues no Flask sessions, so encoding fails.
func NewFlaskSessionCodec(secretKeys [][]byte, salt string, o Options) (*Codec, error) {
	if salt == "" {
		salt = flaskSessionSalt
	}
	z, err := newDangerousSerializer(secretKeys, salt, dangerousHMAC, true)
	if err != nil {
		return nil, err
	}
	return newFormatCodec(&flaskSession{z: z}, o, z), nil
}

// FlaskSessionFields reads the top-level keys of a Flask session's JSON (as a Flask session
// codec decodes it), untagging Flask's types: strings as they are, other scalars as JSON
// text, UUIDs and dates as text, containers as compact JSON.
func FlaskSessionFields(payload []byte) (map[string]string, error) {
	return flaskDecodeSession(payload)
}

func newFormatCodec(f format, o Options, z *dangerousSerializer) *Codec {
	c := NewCodec(nil, o)
	if o.MaxLength > 0 {
		z.maxLength = o.MaxLength
	}
	c.alt = f
	if o.MaxAge > 0 {
		f.(interface{ setMaxAge(int64) }).setMaxAge(c.maxAge)
	}
	return c
}

type itsDangerous struct {
	z      *dangerousSerializer
	maxAge int64
}

func (f *itsDangerous) setMaxAge(s int64) { f.maxAge = s }

func (f *itsDangerous) appendEncode(dst, value []byte, ts int64) ([]byte, error) {
	return f.z.appendDumps(dst, value, ts)
}

func (f *itsDangerous) appendDecode(dst []byte, value string, now int64) (Decoded, error) {
	maxAge := f.maxAge
	if !f.z.timed {
		maxAge = -1
	}
	return f.z.appendLoads(dst, value, now, maxAge)
}

func (f *itsDangerous) isEncoded(value string) bool { return dangerousShape(value, f.z.timed) }
func (f *itsDangerous) keys() int                   { return len(f.z.signer.keys) }

type flaskSession struct {
	z      *dangerousSerializer
	maxAge int64
}

func (f *flaskSession) setMaxAge(s int64) { f.maxAge = s }

func (f *flaskSession) appendEncode(dst, _ []byte, _ int64) ([]byte, error) {
	return dst, errors.New("a Flask session codec reads sessions and issues none")
}

func (f *flaskSession) appendDecode(dst []byte, value string, now int64) (Decoded, error) {
	maxAge := f.maxAge
	if maxAge == 0 {
		maxAge = -1
	}
	js, ts, key, err := f.z.verify(value, now, maxAge)
	if err == ErrExpired {
		return Decoded{Value: dst, Signed: ts, Key: key}, err
	}
	if err != nil {
		return Decoded{Value: dst}, err
	}
	return Decoded{Value: append(dst, js...), Signed: ts, Key: key}, nil
}

func (f *flaskSession) isEncoded(value string) bool { return dangerousShape(value, true) }
func (f *flaskSession) keys() int                   { return len(f.z.signer.keys) }

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
