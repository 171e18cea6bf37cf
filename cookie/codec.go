package cookie

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The wire format is gorilla/securecookie's with securecookie.NopEncoder:
//
//	base64url( timestamp "|" base64url(payload) "|" HMAC-SHA256(name "|" timestamp "|" base64url(payload)) )
//
// where payload is the raw value, or IV||AES-256-CTR(value) when encrypting. This file is a
// wire-compatible fast path: securecookie allocates a fresh HMAC, formats with fmt.Sprintf and
// copies through several buffers on every call, which cost more than the crypto itself. The
// differential tests and fuzz targets hold it to accepting and rejecting exactly what
// securecookie does.

// DefaultMaxLength is the longest encoded value accepted or produced (securecookie's default,
// and what browsers keep of a cookie).
const DefaultMaxLength = 4096

// DecodeError says why a value did not decode. Reason is a short stable word for logs and metrics.
type DecodeError struct{ Reason string }

func (e *DecodeError) Error() string { return "cookie value rejected: " + e.Reason }

// The reasons a value fails to decode.
var (
	ErrTooLong   = &DecodeError{"too_long"}
	ErrMalformed = &DecodeError{"malformed"}
	ErrBadMAC    = &DecodeError{"bad_mac"}
	ErrExpired   = &DecodeError{"expired"}
)

// ErrEncodedTooLong is returned by Encode when the result would exceed the maximum length.
var ErrEncodedTooLong = errors.New("encoded value exceeds the maximum cookie length")

// Options configure a Codec.
type Options struct {
	// Encrypt the value (AES-256-CTR) before signing. Default: sign only.
	Encrypt bool
	// MaxAge is the oldest signature accepted; 0 accepts any age.
	MaxAge time.Duration
	// MaxLength bounds encoded values; 0 means DefaultMaxLength.
	MaxLength int
	// Now replaces time.Now, for tests.
	Now func() time.Time
}

// Codec encodes and decodes values with a key ring. It is safe for concurrent use, and the
// key ring can be swapped (SetKeyRing) while it is in use.
type Codec struct {
	ring      atomic.Pointer[KeyRing]
	encrypt   bool
	maxAge    int64
	maxLength int
	now       func() time.Time
}

// NewCodec returns a codec over ring.
func NewCodec(ring *KeyRing, o Options) *Codec {
	c := &Codec{encrypt: o.Encrypt, maxAge: int64(o.MaxAge / time.Second), maxLength: o.MaxLength, now: o.Now}
	if c.maxLength <= 0 {
		c.maxLength = DefaultMaxLength
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.ring.Store(ring)
	return c
}

// SetKeyRing replaces the key ring; calls in progress finish with the old one.
func (c *Codec) SetKeyRing(r *KeyRing) { c.ring.Store(r) }

// KeyRing returns the key ring in use.
func (c *Codec) KeyRing() *KeyRing { return c.ring.Load() }

// KeyCount is how many keys verify: a forged value costs one MAC each.
func (c *Codec) KeyCount() int { return c.ring.Load().Len() }

// Encrypted reports whether the codec encrypts values.
func (c *Codec) Encrypted() bool { return c.encrypt }

// MaxLength is the longest encoded value the codec produces or accepts.
func (c *Codec) MaxLength() int { return c.maxLength }

// scratch is per-call working memory, pooled: with the IV and the CTR counter and key
// stream here rather than on the stack (where passing them to cipher.Block would move them to
// the heap), encoding and decoding allocate nothing.
type scratch struct {
	a, b    []byte
	iv      [aesBlock]byte
	ctr, ks [aesBlock]byte
}

// xorCTR applies AES-CTR with iv to p in place, exactly as cipher.NewCTR (which securecookie
// uses) does: the IV is a 128-bit big-endian counter. cipher.NewCTR allocates on every call.
func (s *scratch) xorCTR(block cipher.Block, iv, p []byte) {
	copy(s.ctr[:], iv)
	for len(p) > 0 {
		block.Encrypt(s.ks[:], s.ctr[:])
		p = p[subtle.XORBytes(p, p, s.ks[:]):]
		for i := len(s.ctr) - 1; i >= 0; i-- {
			s.ctr[i]++
			if s.ctr[i] != 0 {
				break
			}
		}
	}
}

var scratchPool = sync.Pool{New: func() any { return &scratch{a: make([]byte, 0, 512), b: make([]byte, 0, 512)} }}

var b64 = base64.URLEncoding

// AppendEncode appends the encoded form of value, for a cookie called name, to dst.
func (c *Codec) AppendEncode(dst []byte, name string, value []byte) ([]byte, error) {
	return c.AppendEncodeAt(dst, name, value, c.now().Unix())
}

// Encode returns the encoded form of value for a cookie called name.
func (c *Codec) Encode(name string, value []byte) (string, error) {
	b, err := c.AppendEncode(nil, name, value)
	return string(b), err
}

// EncodedLen is the length of the encoded form of an n-byte value signed with a 10-digit
// timestamp (every one from 2001 to 2286).
func (c *Codec) EncodedLen(n int) int { return c.encodedLen(n, 10) }

func (c *Codec) encodedLen(n, tsDigits int) int {
	if c.encrypt {
		n += aesBlock
	}
	return b64.EncodedLen(tsDigits + 1 + b64.EncodedLen(n) + 1 + 32)
}

const aesBlock = 16

// AppendEncodeAt is AppendEncode with the signing time (Unix seconds) given by the caller,
// who reads the clock once per request.
func (c *Codec) AppendEncodeAt(dst []byte, name string, value []byte, ts int64) ([]byte, error) {
	// The limit applies to the real length, as in securecookie: a clock with fewer digits
	// makes shorter values.
	var digits [20]byte
	if c.encodedLen(len(value), len(strconv.AppendInt(digits[:0], ts, 10))) > c.maxLength {
		return dst, ErrEncodedTooLong
	}
	key := c.ring.Load().keys[0]
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	// s.a = name|ts|base64(payload)
	a := append(s.a[:0], name...)
	a = append(a, '|')
	a = strconv.AppendInt(a, ts, 10)
	a = append(a, '|')
	if c.encrypt {
		rand.Read(s.iv[:])
		p := append(s.b[:0], s.iv[:]...)
		p = append(p, value...)
		s.xorCTR(key.block, s.iv[:], p[aesBlock:])
		a = b64.AppendEncode(a, p)
		s.b = p
	} else {
		a = b64.AppendEncode(a, value)
	}
	a = key.appendMAC(append(a, '|'), a)
	s.a = a
	out := b64.AppendEncode(dst, a[len(name)+1:])
	if len(out)-len(dst) > c.maxLength {
		return dst, ErrEncodedTooLong
	}
	return out, nil
}

// Decoded is a verified value.
type Decoded struct {
	// Value is the plain value, appended to the caller's buffer.
	Value []byte
	// Signed is when the value was signed (Unix seconds).
	Signed int64
	// Key is the index in the key ring of the key that verified it; 0 is the signing key.
	Key int
}

// AppendDecode verifies value for a cookie called name and appends the plain value to dst.
// On error, the returned error is one of ErrTooLong, ErrMalformed, ErrBadMAC, ErrExpired and
// dst is returned unchanged; on ErrExpired, Signed and Key say when and with which key the
// value was signed.
func (c *Codec) AppendDecode(dst []byte, name, value string) (Decoded, error) {
	return c.AppendDecodeAt(dst, name, value, 0)
}

// AppendDecodeAt is AppendDecode with the current time (Unix seconds) given by the caller,
// who reads the clock once per request; 0 reads it here.
func (c *Codec) AppendDecodeAt(dst []byte, name, value string, now int64) (Decoded, error) {
	if len(value) > c.maxLength {
		return Decoded{Value: dst}, ErrTooLong
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)

	// s.a = name|ts|b64payload|mac
	a := append(s.a[:0], name...)
	a = append(a, '|')
	a, err := b64.AppendDecode(a, []byte(value))
	s.a = a
	if err != nil {
		return Decoded{Value: dst}, ErrMalformed
	}
	b := a[len(name)+1:]
	i := indexPipe(b, 0)
	if i < 0 {
		return Decoded{Value: dst}, ErrMalformed
	}
	j := indexPipe(b, i+1)
	if j < 0 {
		return Decoded{Value: dst}, ErrMalformed
	}
	mac := b[j+1:]
	signed := a[:len(name)+1+j]
	ring := c.ring.Load()
	keyIndex := -1
	if len(mac) == sha256.Size {
		for ki, k := range ring.keys {
			if k.verify(signed, mac) {
				keyIndex = ki
				break
			}
		}
	}
	if keyIndex < 0 {
		return Decoded{Value: dst}, ErrBadMAC
	}
	ts, err := strconv.ParseInt(string(b[:i]), 10, 64)
	if err != nil {
		return Decoded{Value: dst}, ErrMalformed
	}
	if c.maxAge != 0 && now == 0 {
		now = c.now().Unix()
	}
	if c.maxAge != 0 && ts < now-c.maxAge {
		return Decoded{Value: dst, Signed: ts, Key: keyIndex}, ErrExpired
	}
	start := len(dst)
	out, err := b64.AppendDecode(dst, b[i+1:j])
	if err != nil {
		return Decoded{Value: dst}, ErrMalformed
	}
	if c.encrypt {
		p := out[start:]
		if len(p) <= aesBlock {
			return Decoded{Value: dst}, ErrMalformed
		}
		s.xorCTR(ring.keys[keyIndex].block, p[:aesBlock], p[aesBlock:])
		copy(p, p[aesBlock:])
		out = out[:len(out)-aesBlock]
	}
	return Decoded{Value: out, Signed: ts, Key: keyIndex}, nil
}

// Decode verifies value and returns the plain value.
func (c *Codec) Decode(name, value string) (Decoded, error) {
	return c.AppendDecode(nil, name, value)
}

func indexPipe(b []byte, from int) int {
	for k := from; k < len(b); k++ {
		if b[k] == '|' {
			return k
		}
	}
	return -1
}

// IsEncoded reports whether value has the form of an encoded value (timestamp, payload and
// a MAC of the right size), whatever its MAC says. A plain value never has it: during a
// migration, a plain value can be accepted as it is while an encoded one must verify.
func (c *Codec) IsEncoded(value string) bool {
	if len(value) > c.maxLength || len(value) == 0 {
		return false
	}
	s := scratchPool.Get().(*scratch)
	defer scratchPool.Put(s)
	b, err := b64.AppendDecode(s.a[:0], []byte(value))
	s.a = b
	if err != nil {
		return false
	}
	i := indexPipe(b, 0)
	if i <= 0 {
		return false
	}
	j := indexPipe(b, i+1)
	if j < 0 || len(b)-j-1 != sha256.Size {
		return false
	}
	_, err = strconv.ParseInt(string(b[:i]), 10, 64)
	return err == nil
}
