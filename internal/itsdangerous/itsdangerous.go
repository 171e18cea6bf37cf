// Package itsdangerous answers how Python signs: the itsdangerous wire format (URLSafeSerializer,
// URLSafeTimedSerializer) and Flask's session cookie on top of it, byte for byte, so that the
// module issues values a Python service reads with itsdangerous alone and verifies a Flask
// app's sessions at the edge.
package itsdangerous

// The itsdangerous wire format (itsdangerous 2.x: URLSafeSerializer, URLSafeTimedSerializer)
// and Flask's session cookie on top of it, so the edge can read Flask sessions and issue
// values that Python services read with itsdangerous alone:
//
//	URLSafeSerializer:       payload "." sig
//	URLSafeTimedSerializer:  payload "." base64url(timestamp) "." sig
//
// payload is base64url (no padding) of compact JSON, or "." followed by base64url of its zlib
// compression; timestamp is the signing time in Unix seconds, big-endian with no leading zero
// bytes; sig is base64url of HMAC-SHA1 over everything before the last ".", keyed with a key
// derived from a secret and a salt. The code mirrors itsdangerous's signer.py, timed.py,
// url_safe.py and serializer.py and Flask's sessions.py and json/tag.py; the differential
// tests run those against it.
//
// Decoding accepts a subset of what Python accepts, and returns the same value for it (for a
// Flask session: the rendering flaskDecodeSession describes). itsdangerous decodes base64
// leniently (it drops characters outside the alphabet and ignores non-zero trailing bits, so
// one signature has many spellings); this accepts only the canonical text itsdangerous itself
// writes. Values with no UTF-8 form (JSON escapes of lone surrogates, which Python keeps in a
// str) are refused, as are the looser inputs of Flask's tag decoders (see flaskUntag). Two
// limits Python does not have: the inflated payload is capped (dangerousMaxInflate) and Flask
// JSON nesting is capped (flaskMaxDepth), so decoding is linear in the cookie's length. All of
// it runs only after the signature has verified: crafting a payload takes the secret.
//
// Encoding writes what Python writes, byte for byte, except that a compressed payload comes
// from Go's deflate rather than zlib (see dangerousAppendPayload).

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// The reasons a value fails and the decoded shape are the cookie package's, so that the
// module reports every format alike.
var (
	ErrTooLong        = cookie.ErrTooLong
	ErrMalformed      = cookie.ErrMalformed
	ErrBadMAC         = cookie.ErrBadMAC
	ErrExpired        = cookie.ErrExpired
	ErrEncodedTooLong = cookie.ErrEncodedTooLong
)

// Decoded is a verified value.
type Decoded = cookie.Decoded

// DefaultMaxLength is the longest value accepted or produced: what browsers keep of a cookie.
const DefaultMaxLength = cookie.DefaultMaxLength

// dangerousDerivation is itsdangerous's Signer key_derivation.
type dangerousDerivation int

const (
	dangerousDjangoConcat dangerousDerivation = iota // SHA1(salt + "signer" + secret): Signer's default
	dangerousHMAC                                    // HMAC-SHA1(secret, salt): Flask's sessions
	dangerousConcat                                  // SHA1(salt + secret)
	dangerousNoDerivation                            // the secret itself ("none")
)

const (
	// dangerousSalt is Serializer's default salt.
	dangerousSalt = "itsdangerous"
	// flaskSessionSalt is SecureCookieSessionInterface.salt.
	flaskSessionSalt = "cookie-session"
	// dangerousMaxInflate caps a compressed payload's inflated size: zlib compresses runs
	// about 1000:1, so a 4 KiB cookie could otherwise inflate to megabytes.
	dangerousMaxInflate = 64 << 10
	// dangerousMaxTimestamp is 9999-12-31T23:59:59Z: TimedSerializer.loads turns the
	// timestamp into a datetime, which fails past it.
	dangerousMaxTimestamp = 253402300799
	// dangerousSigChars is the length of a base64url HMAC-SHA1 without padding.
	dangerousSigChars = (sha1.Size*8 + 5) / 6
)

// dangerousB64 is itsdangerous's base64_encode (urlsafe_b64encode without "="); decoding is
// strict, see above.
var dangerousB64 = base64.RawURLEncoding.Strict()

// errDangerousNotUTF8 is returned by appendDumps for a value that is not valid UTF-8:
// itsdangerous carries a JSON string, a Python str, and there is no faithful way to put other
// bytes in one (replacing them would change the value the Python side reads).
var errDangerousNotUTF8 = errors.New("value is not valid UTF-8, which an itsdangerous JSON string needs")

// dangerousDeriveKey is Signer.derive_key with digest_method SHA1.
func dangerousDeriveKey(secret, salt []byte, d dangerousDerivation) ([]byte, error) {
	switch d {
	case dangerousDjangoConcat:
		h := sha1.New()
		h.Write(salt)
		h.Write([]byte("signer"))
		h.Write(secret)
		return h.Sum(nil), nil
	case dangerousHMAC:
		m := hmac.New(sha1.New, secret)
		m.Write(salt)
		return m.Sum(nil), nil
	case dangerousConcat:
		h := sha1.New()
		h.Write(salt)
		h.Write(secret)
		return h.Sum(nil), nil
	case dangerousNoDerivation:
		return bytes.Clone(secret), nil
	}
	return nil, errors.New("unknown key derivation")
}

// dangerousSigner is itsdangerous's Signer with HMAC-SHA1 and separator ".".
type dangerousSigner struct {
	keys [][]byte    // derived keys, newest (signing) first
	macs []sync.Pool // per key, *dangerousMAC: a state made per value costs five allocations
}

// dangerousMAC is an HMAC-SHA1 state of one key, with room for the text it signs (a value is
// a string: writing it as bytes would copy it to the heap).
type dangerousMAC struct {
	h   hash.Hash
	buf []byte
}

// dangerousSum writes the HMAC of text under the signer's key k to out.
func dangerousSum[T string | []byte](s *dangerousSigner, k int, text T, out *[sha1.Size]byte) {
	m, _ := s.macs[k].Get().(*dangerousMAC)
	if m == nil {
		m = &dangerousMAC{h: hmac.New(sha1.New, s.keys[k])}
	}
	m.h.Reset()
	m.buf = append(m.buf[:0], text...)
	m.h.Write(m.buf)
	m.h.Sum(out[:0])
	if cap(m.buf) > 4096 {
		m.buf = nil // a long value's buffer is not kept
	}
	s.macs[k].Put(m)
}

// newDangerousSigner derives the keys of secrets, newest first as in a KeyRing (itsdangerous
// and Flask's SECRET_KEY_FALLBACKS list them the other way round: oldest first, the last
// signs). itsdangerous accepts an empty secret; this does not, since it makes values anyone
// can sign.
func newDangerousSigner(secrets [][]byte, salt string, d dangerousDerivation) (*dangerousSigner, error) {
	if len(secrets) == 0 {
		return nil, errors.New("no secrets")
	}
	s := &dangerousSigner{}
	for _, secret := range secrets {
		if len(secret) == 0 {
			return nil, errors.New("an empty secret signs nothing")
		}
		k, err := dangerousDeriveKey(secret, []byte(salt), d)
		if err != nil {
			return nil, err
		}
		s.keys = append(s.keys, k)
	}
	s.macs = make([]sync.Pool, len(s.keys))
	return s, nil
}

// appendSign appends "." and the signature of dst[start:] to dst (Signer.sign).
func (s *dangerousSigner) appendSign(dst []byte, start int) []byte {
	var sum [sha1.Size]byte
	dangerousSum(s, 0, dst[start:], &sum)
	return dangerousB64.AppendEncode(append(dst, '.'), sum[:])
}

// unsign verifies value and returns the signed text before the last "." and the index of the
// key that verified it. Like Signer.unsign it tries the newest key first and stops at the
// first match; each comparison is constant-time (hmac.compare_digest there, hmac.Equal here).
func (s *dangerousSigner) unsign(value string) (string, int, error) {
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", -1, ErrMalformed // "No b'.' found in value"
	}
	var sig, sum [sha1.Size]byte
	if len(value)-i-1 != dangerousSigChars {
		return "", -1, ErrBadMAC
	}
	if _, err := dangerousB64.Decode(sig[:], []byte(value[i+1:])); err != nil {
		return "", -1, ErrBadMAC
	}
	for k := range s.keys {
		dangerousSum(s, k, value[:i], &sum)
		if hmac.Equal(sum[:], sig[:]) {
			return value[:i], k, nil
		}
	}
	return "", -1, ErrBadMAC
}

// dangerousSerializer is URLSafeSerializer, or URLSafeTimedSerializer when timed, carrying one
// JSON string; with flaskSessionLoads it reads Flask sessions.
type dangerousSerializer struct {
	signer *dangerousSigner
	timed  bool
	// asciiJSON writes JSON as json.dumps(ensure_ascii=True) does, escaping non-ASCII. The
	// default is itsdangerous's _CompactJSON, which passes ensure_ascii=False. Both read back
	// to the same str in Python; the setting only changes the bytes (and so, length).
	asciiJSON bool
	maxLength int // longest value produced or accepted
}

// newDangerousSerializer is URLSafeSerializer(secrets, salt=salt) (timed:
// URLSafeTimedSerializer) with signer_kwargs={"key_derivation": ...}; secrets newest first.
func newDangerousSerializer(secrets [][]byte, salt string, d dangerousDerivation, timed bool) (*dangerousSerializer, error) {
	s, err := newDangerousSigner(secrets, salt, d)
	if err != nil {
		return nil, err
	}
	return &dangerousSerializer{signer: s, timed: timed, maxLength: DefaultMaxLength}, nil
}

// newFlaskSessionSerializer is what SecureCookieSessionInterface.get_signing_serializer
// builds: URLSafeTimedSerializer(secret_key, salt="cookie-session") with key_derivation "hmac"
// and SHA1. secrets are the SECRET_KEY then its fallbacks (newest first).
func newFlaskSessionSerializer(secrets [][]byte) (*dangerousSerializer, error) {
	return newDangerousSerializer(secrets, flaskSessionSalt, dangerousHMAC, true)
}

// appendDumps appends dumps(value) to dst, value being the text of a Python str; now is the
// signing time in Unix seconds (used when timed). value must be valid UTF-8
// (errDangerousNotUTF8); a result longer than maxLength is ErrEncodedTooLong.
func (z *dangerousSerializer) appendDumps(dst, value []byte, now int64) ([]byte, error) {
	if !utf8.Valid(value) {
		return dst, errDangerousNotUTF8
	}
	if z.timed && now < 0 {
		return dst, errors.New("negative signing time") // int_to_bytes packs an unsigned int
	}
	start := len(dst)
	dst = dangerousAppendPayload(dst, dangerousAppendJSONString(nil, string(value), z.asciiJSON))
	if z.timed {
		dst = dangerousAppendTimestamp(dst, now)
	}
	dst = z.signer.appendSign(dst, start)
	if len(dst)-start > z.maxLength {
		return dst[:start], ErrEncodedTooLong
	}
	return dst, nil
}

// dangerousAppendTimestamp is TimestampSigner.sign's part between value and signature:
// "." + base64(int_to_bytes(ts)), int_to_bytes being big-endian without leading zero bytes.
func dangerousAppendTimestamp(dst []byte, ts int64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(ts))
	n := 0
	for n < len(b) && b[n] == 0 {
		n++
	}
	return dangerousB64.AppendEncode(append(dst, '.'), b[n:])
}

// dangerousAppendPayload is URLSafeSerializerMixin.dump_payload: the JSON is replaced by its
// zlib compression (level 6, Python's default) when that is shorter by 2 bytes or more
// (len(compressed) < len(json) - 1), and then marked with a leading ".". The rule is
// itsdangerous's, the compressor is not: Go's deflate chooses matches and codes differently
// and ends every stream with an empty stored block (5 bytes) where zlib marks its last block
// final, so its streams run a few bytes longer, and near the threshold Go leaves some values
// uncompressed that zlib would compress. Either payload reads the same on both sides.
func dangerousAppendPayload(dst, js []byte) []byte {
	if c := dangerousDeflate(js); len(c) < len(js)-1 {
		dst = append(dst, '.')
		js = c
	}
	return dangerousB64.AppendEncode(dst, js)
}

// dangerousDeflaters pools zlib writers: a new one allocates the deflate tables (~1 MB).
var dangerousDeflaters = sync.Pool{New: func() any {
	w, _ := zlib.NewWriterLevel(nil, zlib.DefaultCompression)
	return w
}}

func dangerousDeflate(p []byte) []byte {
	var buf bytes.Buffer
	w := dangerousDeflaters.Get().(*zlib.Writer)
	w.Reset(&buf)
	w.Write(p)
	w.Close()
	dangerousDeflaters.Put(w)
	return buf.Bytes()
}

// dangerousInflate is zlib.decompress with the inflated size capped; like it, it needs the
// whole stream with a good checksum and ignores bytes after the stream's end.
func dangerousInflate(p []byte) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(p))
	if err != nil {
		return nil, ErrMalformed
	}
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(zr, dangerousMaxInflate+1))
	if err != nil {
		return nil, ErrMalformed
	}
	if n > dangerousMaxInflate {
		return nil, ErrTooLong
	}
	return buf.Bytes(), nil
}

// verify checks value as loads(value, max_age=maxAge) does before the JSON (maxAge < 0 means
// max_age=None) and returns the payload's JSON text, the signing time (0 untimed) and the
// index of the key that verified it. The checks run in itsdangerous's order: signature,
// timestamp, age, then the payload (so an expired value with a bad payload is expired).
func (z *dangerousSerializer) verify(value string, now, maxAge int64) (js []byte, ts int64, key int, err error) {
	if len(value) > z.maxLength {
		return nil, 0, -1, ErrTooLong
	}
	payload, key, err := z.signer.unsign(value)
	if err != nil {
		return nil, 0, -1, err
	}
	if z.timed {
		j := strings.LastIndexByte(payload, '.')
		if j < 0 {
			return nil, 0, -1, ErrMalformed // "timestamp missing"
		}
		u, ok := dangerousParseTimestamp(payload[j+1:])
		if !ok {
			return nil, 0, -1, ErrMalformed // "Malformed timestamp"
		}
		// Every path of TimedSerializer.loads turns the timestamp into a datetime (even to
		// report it expired), which fails past 9999.
		if u > dangerousMaxTimestamp {
			return nil, 0, -1, ErrMalformed
		}
		// TimestampSigner.unsign: age = now - ts; expired if age > max_age, and a signature
		// from the future (age < 0) is SignatureExpired too.
		if maxAge >= 0 && (now < 0 || u > uint64(now) || now-int64(u) > maxAge) {
			return nil, int64(u), key, ErrExpired
		}
		payload, ts = payload[:j], int64(u)
	}
	// URLSafeSerializerMixin.load_payload: a leading "." marks zlib.
	compressed := strings.HasPrefix(payload, ".")
	if compressed {
		payload = payload[1:]
	}
	js, err = dangerousB64.AppendDecode(nil, []byte(payload))
	if err != nil {
		return nil, 0, -1, ErrMalformed
	}
	if compressed {
		if js, err = dangerousInflate(js); err != nil {
			return nil, 0, -1, err
		}
	}
	if !utf8.Valid(js) { // Serializer.load_payload: payload.decode("utf-8")
		return nil, 0, -1, ErrMalformed
	}
	return js, ts, key, nil
}

// dangerousParseTimestamp is bytes_to_int(base64_decode(s)): at most 8 bytes, big-endian
// (leading zero bytes and the empty string, 0, are accepted as there).
func dangerousParseTimestamp(s string) (uint64, bool) {
	var b [8]byte
	if len(s) > dangerousB64.EncodedLen(len(b)) {
		return 0, false
	}
	n, err := dangerousB64.Decode(b[:], []byte(s))
	if err != nil {
		return 0, false
	}
	var u uint64
	for _, c := range b[:n] {
		u = u<<8 | uint64(c)
	}
	return u, true
}

// appendLoads verifies value, whose payload must be one JSON string, and appends that string's
// UTF-8 text to Decoded.Value (which starts as dst). On error dst is returned unchanged and the
// error is ErrTooLong, ErrMalformed, ErrBadMAC or ErrExpired. Python would also load payloads
// that are other JSON (numbers, lists...); here they are ErrMalformed, since the codec carries
// text.
func (z *dangerousSerializer) appendLoads(dst []byte, value string, now, maxAge int64) (Decoded, error) {
	js, ts, key, err := z.verify(value, now, maxAge)
	if err == ErrExpired {
		return Decoded{Value: dst, Signed: ts, Key: key}, err
	}
	if err != nil {
		return Decoded{Value: dst}, err
	}
	i := dangerousSkipSpace(js, 0)
	out, i, ok := dangerousScanString(dst, js, i)
	if !ok || dangerousSkipSpace(js, i) != len(js) {
		return Decoded{Value: dst}, ErrMalformed
	}
	return Decoded{Value: out, Signed: ts, Key: key}, nil
}

// flaskSessionLoads verifies a Flask session cookie (z from newFlaskSessionSerializer; Flask
// passes max_age = PERMANENT_SESSION_LIFETIME in seconds) and returns its top-level keys, as
// flaskDecodeSession renders them. Decoded.Value is unused.
func (z *dangerousSerializer) flaskSessionLoads(value string, now, maxAge int64) (map[string]string, Decoded, error) {
	js, ts, key, err := z.verify(value, now, maxAge)
	if err != nil {
		return nil, Decoded{}, err
	}
	m, err := flaskDecodeSession(js)
	if err != nil {
		return nil, Decoded{}, err
	}
	return m, Decoded{Signed: ts, Key: key}, nil
}

// dangerousAppendJSONString appends s, valid UTF-8, as a JSON string exactly as Python's
// json.dumps writes a str: \" \\ \n \r \t \b \f, other control characters as \u00XX in lower
// case; with ascii (ensure_ascii=True) also DEL and every non-ASCII character, as \uXXXX or a
// surrogate pair. "/" is not escaped.
func dangerousAppendJSONString(dst []byte, s string, ascii bool) []byte {
	const hex = "0123456789abcdef"
	u4 := func(dst []byte, r rune) []byte {
		return append(dst, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
	}
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\b':
				dst = append(dst, '\\', 'b')
			case c == '\f':
				dst = append(dst, '\\', 'f')
			case c < 0x20 || ascii && c == 0x7f:
				dst = u4(dst, rune(c))
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !ascii:
			dst = append(dst, s[i:i+size]...)
		case r < 0x10000:
			dst = u4(dst, r)
		default:
			r1, r2 := utf16.EncodeRune(r)
			dst = u4(u4(dst, r1), r2)
		}
		i += size
	}
	return append(dst, '"')
}

// dangerousSkipSpace skips JSON whitespace as Python's json module has it: " \t\n\r".
func dangerousSkipSpace(s []byte, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
		i++
	}
	return i
}

// dangerousScanString decodes the JSON string at s[i] (s valid UTF-8) as json.loads does
// (strict: raw control characters are errors), appending its text to dst, and returns the
// index after the closing quote. A \uXXXX high surrogate joins a following low-surrogate
// escape as in Python; any surrogate left alone is refused.
func dangerousScanString(dst, s []byte, i int) ([]byte, int, bool) {
	if i >= len(s) || s[i] != '"' {
		return dst, i, false
	}
	for i++; i < len(s); {
		switch c := s[i]; {
		case c == '"':
			return dst, i + 1, true
		case c < 0x20:
			return dst, i, false
		case c != '\\':
			j := i + 1
			for j < len(s) && s[j] != '"' && s[j] != '\\' && s[j] >= 0x20 {
				j++
			}
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(s) {
			return dst, i, false
		}
		e := s[i+1]
		i += 2
		switch e {
		case '"', '\\', '/':
			dst = append(dst, e)
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := dangerousHex4(s, i)
			if !ok {
				return dst, i, false
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || i+6 > len(s) || s[i] != '\\' || s[i+1] != 'u' {
					return dst, i, false
				}
				r2, ok := dangerousHex4(s, i+2)
				if !ok || r2 < 0xdc00 || r2 > 0xdfff {
					return dst, i, false
				}
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, i, false
		}
	}
	return dst, i, false
}

func dangerousHex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// Flask sessions: TaggedJSONSerializer marks the Python types JSON lacks with one-key objects,
// {" t": [...]} for a tuple and so on, undone by json.loads's object_hook on each object,
// innermost first. flaskDecodeSession mirrors that and renders each top-level key's value
// as text:
//
//   - str and Markup (" m"): the text;
//   - bytes (" b"): the bytes themselves (they need not be UTF-8);
//   - UUID (" u"): the canonical lower-case hyphenated form, str(uuid);
//   - datetime (" d"): RFC 3339 in UTC, "2006-01-02T15:04:05Z" (http_date has no fraction);
//   - anything else as compact JSON: numbers exactly as written in the cookie (json.dumps
//     writes a float as its repr, so a cookie from Python gives what Python prints; 1E2
//     written by someone else stays 1E2, not 100.0), true, false, null for None (not "": an
//     empty value would claim the key holds an empty string), and lists, tuples and dicts
//     with keys sorted, non-ASCII unescaped, nested bytes as standard base64 and nested
//     UUIDs and datetimes as above.
//
// Text loses the type: 1 and "1", None and "null" render alike; the app knows which it stores.

// flaskMaxDepth bounds nesting. Python's decoder stops at its recursion limit (1000 frames,
// less those of the app below it); real sessions nest a few levels.
const flaskMaxDepth = 128

// flaskIntDigits is Python's int max_str_digits default: json.loads refuses longer integers.
const flaskIntDigits = 4300

type (
	flaskNumber string // a JSON number's text (or NaN, Infinity, -Infinity, which Python reads)
	flaskBytes  []byte // an untagged " b"
	flaskTagged string // an untagged " u" or " d", rendered as a string but not a str in Python
)

// flaskDecodeSession decodes a Flask session's JSON (valid UTF-8) into its top-level keys.
// The JSON must be an object after untagging (Flask would also build its session dict from a
// list of pairs; that is refused). Errors are ErrMalformed.
func flaskDecodeSession(js []byte) (map[string]string, error) {
	m, err := flaskParseSession(js)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = flaskText(v)
	}
	return out, nil
}

// flaskParseSession parses a Flask session's JSON into its top-level keys, untagged.
func flaskParseSession(js []byte) (map[string]any, error) {
	p := flaskParser{s: js}
	v, ok := p.value()
	if !ok || dangerousSkipSpace(js, p.i) != len(js) {
		return nil, ErrMalformed
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, ErrMalformed
	}
	return m, nil
}

// flaskText renders a session value as text (see flaskDecodeSession).
func flaskText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case flaskTagged:
		return string(v)
	case flaskBytes:
		return string(v)
	}
	return string(flaskAppendJSON(nil, v))
}

// flaskParser is json.loads's grammar (Python's scanner, NaN and Infinity included) over
// valid UTF-8, building string, flaskNumber, bool, nil, []any and map[string]any (the last
// key of a repeated one wins, as in a dict), untagging each object as it closes.
type flaskParser struct {
	s     []byte
	i     int
	depth int
	buf   []byte // scratch for the strings scanned: each is copied out once, as a string
}

func (p *flaskParser) value() (any, bool) {
	s := p.s
	p.i = dangerousSkipSpace(s, p.i)
	if p.i >= len(s) {
		return nil, false
	}
	lit := func(word string) bool {
		if !bytes.HasPrefix(s[p.i:], []byte(word)) {
			return false
		}
		p.i += len(word)
		return true
	}
	switch s[p.i] {
	case '"':
		b, i, ok := dangerousScanString(p.buf[:0], s, p.i)
		p.i, p.buf = i, b
		return string(b), ok
	case '{', '[':
		if p.depth++; p.depth > flaskMaxDepth {
			return nil, false
		}
		defer func() { p.depth-- }()
		if s[p.i] == '{' {
			return p.object()
		}
		return p.array()
	case 'n':
		return nil, lit("null")
	case 't':
		return true, lit("true")
	case 'f':
		return false, lit("false")
	case 'N':
		return flaskNumber("NaN"), lit("NaN")
	case 'I':
		return flaskNumber("Infinity"), lit("Infinity")
	case '-':
		if lit("-Infinity") {
			return flaskNumber("-Infinity"), true
		}
	}
	return p.number()
}

// number is the scanner's _match_number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?, an
// incomplete fraction or exponent ending the number before it.
func (p *flaskParser) number() (any, bool) {
	s, i := p.s, p.i
	digits := func(i int) int {
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		i = digits(i)
	default:
		return nil, false
	}
	isInt := true
	if i+1 < len(s) && s[i] == '.' && '0' <= s[i+1] && s[i+1] <= '9' {
		i, isInt = digits(i+1), false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '-' || s[j] == '+') {
			j++
		}
		if k := digits(j); k > j {
			i, isInt = k, false
		}
	}
	text := s[p.i:i]
	if isInt && len(bytes.TrimPrefix(text, []byte("-"))) > flaskIntDigits {
		return nil, false
	}
	p.i = i
	return flaskNumber(text), true
}

func (p *flaskParser) object() (any, bool) {
	s := p.s
	m := map[string]any{}
	p.i = dangerousSkipSpace(s, p.i+1)
	if p.i < len(s) && s[p.i] == '}' {
		p.i++
		return flaskUntag(m)
	}
	for {
		k, i, ok := dangerousScanString(p.buf[:0], s, dangerousSkipSpace(s, p.i))
		p.buf = k
		if !ok {
			return nil, false
		}
		key := string(k) // before the value is scanned into the same buffer
		if p.i = dangerousSkipSpace(s, i); p.i >= len(s) || s[p.i] != ':' {
			return nil, false
		}
		p.i++
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		m[key] = v
		if p.i = dangerousSkipSpace(s, p.i); p.i >= len(s) {
			return nil, false
		}
		switch s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return flaskUntag(m)
		default:
			return nil, false
		}
	}
}

func (p *flaskParser) array() (any, bool) {
	s := p.s
	a := []any{}
	p.i = dangerousSkipSpace(s, p.i+1)
	if p.i < len(s) && s[p.i] == ']' {
		p.i++
		return a, true
	}
	for {
		v, ok := p.value()
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if p.i = dangerousSkipSpace(s, p.i); p.i >= len(s) {
			return nil, false
		}
		switch s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return a, true
		default:
			return nil, false
		}
	}
}

// flaskUntag is TaggedJSONSerializer.untag: a one-key object whose key is a tag becomes the
// tagged type. Where Python's to_python would take more than what Flask writes (tuple() of a
// string, b64decode dropping stray characters, UUID() of int() syntax, parse_date of any
// RFC 2822 date), only what Flask writes is accepted.
func flaskUntag(m map[string]any) (any, bool) {
	if len(m) != 1 {
		return m, true
	}
	for k, v := range m {
		s, isStr := v.(string) // str or Markup; not a UUID or datetime
		switch k {
		case " t": // TagTuple: tuple(value)
			a, ok := v.([]any)
			return a, ok
		case " b": // TagBytes: b64decode(value)
			b, err := base64.StdEncoding.DecodeString(s)
			return flaskBytes(b), isStr && err == nil
		case " m": // TagMarkup: Markup(value)
			return s, isStr
		case " u": // TagUUID: UUID(value)
			u, ok := flaskParseUUID(s)
			return flaskTagged(u), isStr && ok
		case " d": // TagDateTime: parse_date(value), the http_date format
			t, err := time.Parse("Mon, 02 Jan 2006 15:04:05 GMT", s)
			// parsedate reads years below 100 as 19xx/20xx.
			ok := isStr && err == nil && t.Year() >= 100
			return flaskTagged(t.Format("2006-01-02T15:04:05Z")), ok
		case " di": // TagDict: {key[:-2]: value} of its first (here: only) key
			inner, ok := v.(map[string]any)
			if !ok || len(inner) != 1 {
				return nil, false
			}
			for ik, iv := range inner {
				return map[string]any{flaskTrimRunes(ik, 2): iv}, true
			}
		}
	}
	return m, true
}

// flaskTrimRunes is Python's s[:-n] on a str: it counts characters, not bytes.
func flaskTrimRunes(s string, n int) string {
	for ; n > 0 && s != ""; n-- {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// flaskParseUUID is uuid.UUID(hex) limited to hex digits: it removes "urn:" and "uuid:",
// strips braces at the ends and removes hyphens, then needs 32 hex digits.
func flaskParseUUID(s string) (string, bool) {
	s = strings.ReplaceAll(s, "urn:", "")
	s = strings.ReplaceAll(s, "uuid:", "")
	s = strings.ReplaceAll(strings.Trim(s, "{}"), "-", "")
	if len(s) != 32 {
		return "", false
	}
	b := make([]byte, 0, 36)
	for i := 0; i < 32; i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'F':
			c += 'a' - 'A'
		case '0' <= c && c <= '9' || 'a' <= c && c <= 'f':
		default:
			return "", false
		}
		if i == 8 || i == 12 || i == 16 || i == 20 {
			b = append(b, '-')
		}
		b = append(b, c)
	}
	return string(b), true
}

// flaskAppendJSON renders an untagged value as compact JSON (see flaskDecodeSession).
func flaskAppendJSON(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case flaskNumber:
		return append(dst, v...)
	case string:
		return dangerousAppendJSONString(dst, v, false)
	case flaskTagged:
		return dangerousAppendJSONString(dst, string(v), false)
	case flaskBytes:
		return append(base64.StdEncoding.AppendEncode(append(dst, '"'), v), '"')
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = flaskAppendJSON(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys) // byte order of UTF-8 is Python's code point order
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = dangerousAppendJSONString(dst, k, false)
			dst = flaskAppendJSON(append(dst, ':'), v[k])
		}
		return append(dst, '}')
	}
	panic("flaskAppendJSON: unexpected type")
}
