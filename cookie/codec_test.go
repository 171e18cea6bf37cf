package cookie

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testSecret is a fixed 32-byte secret named by label, so tests are reproducible.
func testSecret(label string) []byte {
	s := sha256.Sum256([]byte(label))
	return s[:]
}

func testRing(tb testing.TB, labels ...string) *KeyRing {
	tb.Helper()
	var secrets [][]byte
	for _, l := range labels {
		secrets = append(secrets, testSecret(l))
	}
	r, err := NewKeyRing(secrets...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func at(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }

// t0 is a realistic signing time (10 digits, like every timestamp until 2286).
const t0 = 1764100000

// forge signs inner, the "timestamp|payload" part of the wire format, with k for a cookie
// called name, skipping every check of the encoder: it reaches the decoder's stages after the
// MAC. inner needs exactly one '|' for the MAC to cover what the decoder checks.
func forge(k *Key, name, inner string) string {
	m := hmac.New(sha256.New, k.HashKey())
	m.Write([]byte(name + "|" + inner))
	return base64.URLEncoding.EncodeToString(append([]byte(inner+"|"), m.Sum(nil)...))
}

// ctrPayload is the base64 payload of an encrypted value with a chosen IV.
func ctrPayload(k *Key, iv, plain []byte) string {
	block, err := aes.NewCipher(k.BlockKey())
	if err != nil {
		panic(err)
	}
	out := append(append([]byte(nil), iv...), plain...)
	cipher.NewCTR(block, iv).XORKeyStream(out[len(iv):], out[len(iv):])
	return base64.URLEncoding.EncodeToString(out)
}

// unwrap splits an encoded value into its timestamp, payload and MAC parts.
func unwrap(tb testing.TB, v string) (ts, payload string, mac []byte) {
	tb.Helper()
	raw, err := base64.URLEncoding.DecodeString(v)
	if err != nil {
		tb.Fatal(err)
	}
	parts := bytes.SplitN(raw, []byte("|"), 3)
	if len(parts) != 3 {
		tb.Fatalf("%q has %d parts", raw, len(parts))
	}
	return string(parts[0]), string(parts[1]), parts[2]
}

func rewrap(ts, payload string, mac []byte) string {
	return base64.URLEncoding.EncodeToString(append([]byte(ts+"|"+payload+"|"), mac...))
}

func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestCodecRoundTrip(t *testing.T) {
	ring := testRing(t, "k1")
	for _, enc := range []bool{false, true} {
		c := NewCodec(ring, Options{Encrypt: enc, MaxAge: time.Hour, Now: at(t0)})
		for _, tc := range []struct {
			name  string
			value []byte
		}{
			{"session", []byte("hello")},
			{"session", []byte("a value with spaces; semicolons, \"quotes\" and = signs")},
			{"binary", allBytes()},
			{"one", []byte{0}},
			{"", []byte("empty name")},
			{"pipe|name", []byte("pipes|in|value")},
			{"sess", bytes.Repeat([]byte("x"), 1000)},
		} {
			enc := enc
			v, err := c.Encode(tc.name, tc.value)
			if err != nil {
				t.Fatalf("encrypt=%v Encode(%q): %v", enc, tc.name, err)
			}
			if len(v) != c.EncodedLen(len(tc.value)) {
				t.Errorf("encrypt=%v len(Encode)=%d, EncodedLen=%d", enc, len(v), c.EncodedLen(len(tc.value)))
			}
			if strings.Contains(v, string(tc.value)) && len(tc.value) > 3 {
				t.Errorf("encrypt=%v: encoded value contains the plain value", enc)
			}
			d, err := c.Decode(tc.name, v)
			if err != nil {
				t.Fatalf("encrypt=%v Decode(%q): %v", enc, tc.name, err)
			}
			if !bytes.Equal(d.Value, tc.value) || d.Signed != t0 || d.Key != 0 {
				t.Errorf("encrypt=%v Decode(%q) = %q, signed %d, key %d", enc, tc.name, d.Value, d.Signed, d.Key)
			}
		}
	}
}

func TestCodecEncryptHidesValue(t *testing.T) {
	c := NewCodec(testRing(t, "k1"), Options{Encrypt: true, Now: at(t0)})
	plain := []byte("secret-plain-value")
	a, _ := c.Encode("s", plain)
	b, _ := c.Encode("s", plain)
	if a == b {
		t.Error("two encryptions of one value are equal: the IV is not random")
	}
	_, payload, _ := unwrap(t, a)
	raw, _ := base64.URLEncoding.DecodeString(payload)
	if bytes.Contains(raw, plain) || len(raw) != aes.BlockSize+len(plain) {
		t.Errorf("payload %q is not IV||ciphertext of the value", raw)
	}
	signOnly := NewCodec(testRing(t, "k1"), Options{Now: at(t0)})
	v, _ := signOnly.Encode("s", plain)
	_, payload, _ = unwrap(t, v)
	if raw, _ := base64.URLEncoding.DecodeString(payload); !bytes.Equal(raw, plain) {
		t.Errorf("sign-only payload %q is not the raw value", raw)
	}
}

func TestCodecEmptyValue(t *testing.T) {
	ring := testRing(t, "k1")
	c := NewCodec(ring, Options{Now: at(t0)})
	v, err := c.Encode("s", nil)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.Decode("s", v)
	if err != nil || len(d.Value) != 0 {
		t.Errorf("sign-only empty value: %q, %v", d.Value, err)
	}
	// securecookie encrypts an empty value to a bare IV and then refuses to decrypt it; the
	// codec does the same so both accept exactly the same values.
	ce := NewCodec(ring, Options{Encrypt: true, Now: at(t0)})
	v, err = ce.Encode("s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ce.Decode("s", v); err != ErrMalformed {
		t.Errorf("encrypted empty value: got %v, want ErrMalformed", err)
	}
}

func TestCodecMaxLength(t *testing.T) {
	ring := testRing(t, "k1")
	for _, enc := range []bool{false, true} {
		c := NewCodec(ring, Options{Encrypt: enc, Now: at(t0)})
		if c.MaxLength() != DefaultMaxLength {
			t.Fatalf("MaxLength() = %d", c.MaxLength())
		}
		// The longest value whose encoding fits in 4096 bytes.
		n := 0
		for c.EncodedLen(n+1) <= DefaultMaxLength {
			n++
		}
		v, err := c.Encode("s", bytes.Repeat([]byte{'v'}, n))
		if err != nil || len(v) > DefaultMaxLength || len(v) < DefaultMaxLength-3 {
			t.Fatalf("encrypt=%v: %d-byte value: len %d, %v", enc, n, len(v), err)
		}
		if d, err := c.Decode("s", v); err != nil || len(d.Value) != n {
			t.Errorf("encrypt=%v: %d-byte value does not decode: %v", enc, n, err)
		}
		dst := []byte("prefix")
		out, err := c.AppendEncode(dst, "s", bytes.Repeat([]byte{'v'}, n+1))
		if err != ErrEncodedTooLong || string(out) != "prefix" {
			t.Errorf("encrypt=%v: %d-byte value: %q, %v; want ErrEncodedTooLong and dst unchanged", enc, n+1, out, err)
		}
	}

	c := NewCodec(ring, Options{Now: at(t0)})
	if _, err := c.Decode("s", strings.Repeat("A", DefaultMaxLength+1)); err != ErrTooLong {
		t.Errorf("4097 bytes: %v, want ErrTooLong", err)
	}
	small := NewCodec(ring, Options{MaxLength: 100, Now: at(t0)})
	v, _ := c.Encode("s", bytes.Repeat([]byte{'v'}, 60))
	if _, err := small.Decode("s", v); err != ErrTooLong {
		t.Errorf("MaxLength 100, %d-byte value: %v, want ErrTooLong", len(v), err)
	}
	if _, err := small.Encode("s", bytes.Repeat([]byte{'v'}, 60)); err != ErrEncodedTooLong {
		t.Errorf("MaxLength 100: Encode %v, want ErrEncodedTooLong", err)
	}
}

// A clock with fewer timestamp digits gives shorter values: the length limit applies to the
// real encoding (as in securecookie), not to the 10-digit estimate.
func TestCodecMaxLengthShortTimestamp(t *testing.T) {
	c := NewCodec(testRing(t, "k1"), Options{Now: at(7)})
	n := 0
	for {
		v, err := c.Encode("s", bytes.Repeat([]byte{'v'}, n+1))
		if err != nil {
			break
		}
		if len(v) > DefaultMaxLength {
			t.Fatalf("Encode returned %d bytes", len(v))
		}
		n++
	}
	v, _ := c.Encode("s", bytes.Repeat([]byte{'v'}, n))
	if len(v) < DefaultMaxLength-3 {
		t.Errorf("longest value with a 1-digit timestamp encodes to %d bytes: the limit is applied too early", len(v))
	}
}

func TestCodecDecodeErrors(t *testing.T) {
	ring := testRing(t, "k1")
	k := ring.Key(0)
	sign := NewCodec(ring, Options{Now: at(t0)})
	encr := NewCodec(ring, Options{Encrypt: true, Now: at(t0)})
	good, _ := sign.Encode("s", []byte("hello"))
	ts, payload, mac := unwrap(t, good)
	goodEnc, _ := encr.Encode("s", []byte("hello"))
	other := NewCodec(testRing(t, "other"), Options{Now: at(t0)})
	fromOther, _ := other.Encode("s", []byte("hello"))
	b64 := base64.URLEncoding.EncodeToString
	iv := bytes.Repeat([]byte{7}, aes.BlockSize)

	for _, tc := range []struct {
		desc  string
		c     *Codec
		name  string
		value string
		want  error
	}{
		{"too long", sign, "s", strings.Repeat("A", 4097), ErrTooLong},
		{"not base64", sign, "s", "!!!!", ErrMalformed},
		{"standard alphabet", sign, "s", strings.NewReplacer("-", "+", "_", "/").Replace(good) + "+/+/", ErrMalformed},
		{"bad padding", sign, "s", good + "=", ErrMalformed},
		{"truncated base64", sign, "s", good[:len(good)-1], ErrMalformed},
		{"empty", sign, "s", "", ErrMalformed},
		{"no pipe", sign, "s", b64([]byte("abc")), ErrMalformed},
		{"one pipe", sign, "s", b64([]byte("abc|def")), ErrMalformed},
		{"bad timestamp", sign, "s", forge(k, "s", "12x4|"+payload), ErrMalformed},
		{"empty timestamp", sign, "s", forge(k, "s", "|"+payload), ErrMalformed},
		{"timestamp overflow", sign, "s", forge(k, "s", "9223372036854775808|"+payload), ErrMalformed},
		{"payload not base64", sign, "s", forge(k, "s", ts+"|***"), ErrMalformed},
		{"ciphertext empty", encr, "s", forge(k, "s", ts+"|"), ErrMalformed},
		{"ciphertext is a bare IV", encr, "s", forge(k, "s", ts+"|"+b64(iv)), ErrMalformed},
		{"ciphertext shorter than an IV", encr, "s", forge(k, "s", ts+"|"+b64(iv[:5])), ErrMalformed},
		{"tampered payload", sign, "s", rewrap(ts, b64([]byte("hellp")), mac), ErrBadMAC},
		{"tampered timestamp", sign, "s", rewrap(strconv.Itoa(t0+1), payload, mac), ErrBadMAC},
		{"mac truncated", sign, "s", rewrap(ts, payload, mac[:31]), ErrBadMAC},
		{"mac extended", sign, "s", rewrap(ts, payload, append(append([]byte(nil), mac...), 0)), ErrBadMAC},
		{"mac flipped", sign, "s", rewrap(ts, payload, append(append([]byte(nil), mac[:31]...), mac[31]^1)), ErrBadMAC},
		{"mac empty", sign, "s", rewrap(ts, payload, nil), ErrBadMAC},
		{"renamed cookie", sign, "t", good, ErrBadMAC},
		{"name case", sign, "S", good, ErrBadMAC},
		{"other key", sign, "s", fromOther, ErrBadMAC},
		{"signed value read as encrypted", encr, "s", good, ErrMalformed},
		{"encrypted value renamed", encr, "t", goodEnc, ErrBadMAC},
		{"expired", NewCodec(ring, Options{MaxAge: time.Hour, Now: at(t0 + 3601)}), "s", good, ErrExpired},
	} {
		dst := []byte("dst")
		d, err := tc.c.AppendDecode(dst, tc.name, tc.value)
		if err != tc.want {
			t.Errorf("%s: got %v, want %v", tc.desc, err, tc.want)
			continue
		}
		switch {
		case string(d.Value) != "dst":
			t.Errorf("%s: result %+v, want dst unchanged", tc.desc, d)
		case err == ErrExpired && (d.Signed != t0 || d.Key != 0):
			t.Errorf("%s: result %+v, want when and with which key it was signed", tc.desc, d)
		case err != ErrExpired && (d.Signed != 0 || d.Key != 0):
			t.Errorf("%s: result %+v, want dst unchanged and nothing else", tc.desc, d)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Reason == "" || !strings.Contains(err.Error(), de.Reason) {
			t.Errorf("%s: %v is not a DecodeError with a reason", tc.desc, err)
		}
	}
}

func TestCodecReasons(t *testing.T) {
	for err, want := range map[*DecodeError]string{
		ErrTooLong: "too_long", ErrMalformed: "malformed", ErrBadMAC: "bad_mac", ErrExpired: "expired",
	} {
		if err.Reason != want {
			t.Errorf("%v: reason %q, want %q", err, err.Reason, want)
		}
	}
}

func TestCodecMaxAge(t *testing.T) {
	ring := testRing(t, "k1")
	v, err := NewCodec(ring, Options{Now: at(t0)}).Encode("s", []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		maxAge time.Duration
		now    int64
		want   error
	}{
		{time.Hour, t0, nil},
		{time.Hour, t0 + 3600, nil}, // exactly max age: still valid (securecookie: t < now-maxAge)
		{time.Hour, t0 + 3601, ErrExpired},
		{time.Hour, t0 - 1_000_000, nil},                          // signed in the future: securecookie accepts with MinAge 0
		{time.Hour + 999*time.Millisecond, t0 + 3601, ErrExpired}, // sub-second part ignored
		{0, t0 + 100*365*86400, nil},                              // 0: any age
		{400 * 24 * time.Hour, t0 + 400*86400, nil},
		{400 * 24 * time.Hour, t0 + 400*86400 + 1, ErrExpired},
	} {
		c := NewCodec(ring, Options{MaxAge: tc.maxAge, Now: at(tc.now)})
		d, err := c.Decode("s", v)
		if err != tc.want {
			t.Errorf("maxAge %v, now t0%+d: %v, want %v", tc.maxAge, tc.now-t0, err, tc.want)
		} else if err == nil && (string(d.Value) != "x" || d.Signed != t0) {
			t.Errorf("maxAge %v, now t0%+d: %+v", tc.maxAge, tc.now-t0, d)
		}
	}
	// Without Options.Now the codec uses the real clock.
	real := NewCodec(ring, Options{MaxAge: time.Hour})
	fresh, _ := real.Encode("s", []byte("x"))
	if d, err := real.Decode("s", fresh); err != nil || d.Signed < time.Now().Unix()-5 {
		t.Errorf("real clock: %+v, %v", d, err)
	}
	if _, err := real.Decode("s", v); err != ErrExpired {
		t.Errorf("real clock, value signed at t0: %v, want ErrExpired", err)
	}
}

func TestCodecRotation(t *testing.T) {
	old := testRing(t, "old")
	rotated := testRing(t, "new", "old")
	dropped := testRing(t, "new")
	for _, enc := range []bool{false, true} {
		v, err := NewCodec(old, Options{Encrypt: enc, Now: at(t0)}).Encode("s", []byte("value"))
		if err != nil {
			t.Fatal(err)
		}
		c := NewCodec(rotated, Options{Encrypt: enc, Now: at(t0)})
		d, err := c.Decode("s", v)
		if err != nil || string(d.Value) != "value" || d.Key != 1 {
			t.Errorf("encrypt=%v: old value on [new, old]: %+v, %v; want key 1", enc, d, err)
		}
		nv, _ := c.Encode("s", []byte("value"))
		if d, err := c.Decode("s", nv); err != nil || d.Key != 0 {
			t.Errorf("encrypt=%v: new value on [new, old]: %+v, %v; want key 0", enc, d, err)
		}
		if _, err := NewCodec(old, Options{Encrypt: enc}).Decode("s", nv); err != ErrBadMAC {
			t.Errorf("encrypt=%v: value signed by the new key on [old]: %v", enc, err)
		}
		if _, err := NewCodec(dropped, Options{Encrypt: enc}).Decode("s", v); err != ErrBadMAC {
			t.Errorf("encrypt=%v: old value on [new]: %v, want ErrBadMAC", enc, err)
		}
		// SetKeyRing swaps the ring of a codec in use.
		c.SetKeyRing(dropped)
		if c.KeyRing() != dropped {
			t.Error("KeyRing() does not return the ring set")
		}
		if _, err := c.Decode("s", v); err != ErrBadMAC {
			t.Errorf("encrypt=%v: after SetKeyRing([new]): %v, want ErrBadMAC", enc, err)
		}
		if d, err := c.Decode("s", nv); err != nil || d.Key != 0 {
			t.Errorf("encrypt=%v: after SetKeyRing([new]), new value: %+v, %v", enc, d, err)
		}
	}
}

// The derivation and wire format are a contract with every cookie already issued: these
// vectors must never change.
func TestCodecGolden(t *testing.T) {
	ring := testRing(t, "golden")
	k := ring.Key(0)
	if got := base64.RawURLEncoding.EncodeToString(k.HashKey()); got != goldenHashKey {
		t.Errorf("hash key %s, want %s", got, goldenHashKey)
	}
	if got := base64.RawURLEncoding.EncodeToString(k.BlockKey()); got != goldenBlockKey {
		t.Errorf("block key %s, want %s", got, goldenBlockKey)
	}
	c := NewCodec(ring, Options{Now: at(t0)})
	if v, _ := c.Encode("session", []byte("hello")); v != goldenSigned {
		t.Errorf("Encode = %s, want %s", v, goldenSigned)
	}
	if d, err := c.Decode("session", goldenSigned); err != nil || string(d.Value) != "hello" {
		t.Errorf("golden signed value: %q, %v", d.Value, err)
	}
	ce := NewCodec(ring, Options{Encrypt: true})
	if d, err := ce.Decode("session", goldenEncrypted); err != nil || string(d.Value) != "hello" || d.Signed != t0 {
		t.Errorf("golden encrypted value: %+v, %v", d, err)
	}
}

const (
	goldenHashKey   = "Do1Gt5QJuuLGJM7lqB2aBJiYM5Lu4H0om3pOlKrndNM"
	goldenBlockKey  = "3KbAqSy7S3HoU8GZFHt60leMhJey52IMgM35YqtVgJM"
	goldenSigned    = "MTc2NDEwMDAwMHxhR1ZzYkc4PXybqR8k1IBitD9gPkRzmk9AkGgeb4WwhxjF6x-gYzFGsg=="
	goldenEncrypted = "MTc2NDEwMDAwMHxNREV5TXpRMU5qYzRPV0ZpWTJSbFpxX3M2YmRHfC_FA7Cf0yjmDvTOJ2RkD62D1alew6biOPRyLJoFzob1"
)

func TestAppendDecodeKeepsDst(t *testing.T) {
	c := NewCodec(testRing(t, "k1"), Options{Encrypt: true, Now: at(t0)})
	v1, _ := c.Encode("a", []byte("first"))
	v2, _ := c.Encode("b", []byte("second"))
	buf := make([]byte, 0, 64)
	d1, err := c.AppendDecode(buf, "a", v1)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := c.AppendDecode(d1.Value, "b", v2)
	if err != nil {
		t.Fatal(err)
	}
	if string(d2.Value) != "firstsecond" || string(d1.Value) != "first" {
		t.Errorf("AppendDecode: %q then %q", d1.Value, d2.Value)
	}
	out, err := c.AppendEncode([]byte("x="), "a", []byte("v"))
	if err != nil || !strings.HasPrefix(string(out), "x=") {
		t.Fatalf("AppendEncode: %q, %v", out, err)
	}
	if d, err := c.Decode("a", string(out[2:])); err != nil || string(d.Value) != "v" {
		t.Errorf("AppendEncode result: %q, %v", d.Value, err)
	}
}

// The codec must not write into the caller's value or keep it.
func TestEncodeDoesNotModifyValue(t *testing.T) {
	c := NewCodec(testRing(t, "k1"), Options{Encrypt: true})
	v := []byte("do not touch")
	if _, err := c.Encode("s", v); err != nil || string(v) != "do not touch" {
		t.Errorf("value after Encode: %q, %v", v, err)
	}
}

func TestCodecConcurrent(t *testing.T) {
	ring := testRing(t, "k1", "k2")
	c := NewCodec(ring, Options{Encrypt: true})
	done := make(chan error)
	for g := 0; g < 8; g++ {
		go func() {
			var err error
			for i := 0; i < 200 && err == nil; i++ {
				want := []byte(strconv.Itoa(g*1000 + i))
				var v string
				if v, err = c.Encode("s", want); err != nil {
					break
				}
				var d Decoded
				if d, err = c.Decode("s", v); err == nil && !bytes.Equal(d.Value, want) {
					err = errors.New("got " + string(d.Value) + " want " + string(want))
				}
				if i%50 == 0 {
					c.SetKeyRing(ring)
				}
			}
			done <- err
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestParseSecret(t *testing.T) {
	raw := testSecret("parse")
	copy(raw, []byte{0xfb, 0xef, 0xff}) // "++//" in the standard encoding, "--__" in the URL one
	for _, s := range []string{
		base64.StdEncoding.EncodeToString(raw),
		base64.URLEncoding.EncodeToString(raw),
		base64.RawStdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw),
		"  " + base64.StdEncoding.EncodeToString(raw) + "\n",
	} {
		b, err := ParseSecret(s)
		if err != nil || !bytes.Equal(b, raw) {
			t.Errorf("ParseSecret(%q) = %x, %v", s, b, err)
		}
	}
	long := append(testSecret("long 1"), testSecret("long 2")...)
	if b, err := ParseSecret(base64.StdEncoding.EncodeToString(long)); err != nil || !bytes.Equal(b, long) {
		t.Errorf("64-byte secret: %v", err)
	}

	short := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xcd}, 31))
	for _, tc := range []struct {
		in, want string
	}{
		{"", "empty"},
		{" \t\n", "empty"},
		{"sUpErSeCrEt!!!sUpErSeCrEt", "base64"},
		{base64.StdEncoding.EncodeToString(raw)[:43] + "*", "base64"},
		{base64.StdEncoding.EncodeToString(raw) + "==", "base64"},
		{short, "31 bytes"},
		{"c2VjcmV0", "6 bytes"},
	} {
		b, err := ParseSecret(tc.in)
		if err == nil || b != nil {
			t.Errorf("ParseSecret(%q): no error", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.want) {
			t.Errorf("ParseSecret(%q) = %q, want it to mention %q", tc.in, msg, tc.want)
		}
		if s := strings.TrimSpace(tc.in); echoes(msg, s) {
			t.Errorf("ParseSecret error %q echoes the secret", msg)
		}
	}
}

// echoes reports whether msg contains any 6-byte run of secret.
func echoes(msg, secret string) bool {
	for i := 0; i+6 <= len(secret); i++ {
		if strings.Contains(msg, secret[i:i+6]) {
			return true
		}
	}
	return false
}

func TestNewKeyRing(t *testing.T) {
	a, b, c := testSecret("a"), testSecret("b"), testSecret("c")
	r, err := NewKeyRing(a, b, c)
	if err != nil || r.Len() != 3 {
		t.Fatalf("NewKeyRing: %v", err)
	}
	if !bytes.Equal(r.Key(0).HashKey(), mustKey(t, a).HashKey()) || !bytes.Equal(r.Key(2).BlockKey(), mustKey(t, c).BlockKey()) {
		t.Error("ring keys are not in the order of the secrets")
	}
	for _, tc := range []struct {
		secrets [][]byte
		want    string
	}{
		{nil, "no secrets"},
		{[][]byte{a, b, a}, "secret 3 duplicates secret 1"},
		{[][]byte{a, b, b}, "secret 3 duplicates secret 2"},
		{[][]byte{a, a}, "secret 2 duplicates secret 1"},
		{[][]byte{a, a[:16]}, "secret 2: secret decodes to 16 bytes"},
		{[][]byte{{}}, "secret 1: secret decodes to 0 bytes"},
	} {
		_, err := NewKeyRing(tc.secrets...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewKeyRing: %v, want %q", err, tc.want)
			continue
		}
		for _, s := range tc.secrets {
			if echoes(err.Error(), string(s)) || echoes(err.Error(), base64.StdEncoding.EncodeToString(s)) {
				t.Errorf("error %q echoes a secret", err)
			}
		}
	}
}

func mustKey(tb testing.TB, secret []byte) *Key {
	tb.Helper()
	k, err := NewKey(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

func TestNewKey(t *testing.T) {
	k1, k1again, k2 := mustKey(t, testSecret("a")), mustKey(t, testSecret("a")), mustKey(t, testSecret("b"))
	if len(k1.HashKey()) != 32 || len(k1.BlockKey()) != 32 {
		t.Fatalf("key sizes %d, %d; want 32 (HMAC-SHA256, AES-256)", len(k1.HashKey()), len(k1.BlockKey()))
	}
	if bytes.Equal(k1.HashKey(), k1.BlockKey()) {
		t.Error("hash and block keys are equal")
	}
	if bytes.Equal(k1.HashKey(), testSecret("a")) || bytes.Equal(k1.BlockKey(), testSecret("a")) {
		t.Error("a key is the secret itself")
	}
	if !bytes.Equal(k1.HashKey(), k1again.HashKey()) || !bytes.Equal(k1.BlockKey(), k1again.BlockKey()) {
		t.Error("derivation is not deterministic")
	}
	if bytes.Equal(k1.HashKey(), k2.HashKey()) || bytes.Equal(k1.BlockKey(), k2.BlockKey()) {
		t.Error("two secrets give the same keys")
	}
	if _, err := NewKey(make([]byte, 31)); err == nil {
		t.Error("NewKey accepts 31 bytes")
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestVisitorID(t *testing.T) {
	seen := map[[VisitorIDLen]byte]bool{}
	for i := 0; i < 1000; i++ {
		id := NewVisitorID()
		if id[6]>>4 != 4 || id[8]>>6 != 2 {
			t.Fatalf("%x: not version 4 / RFC 4122 variant", id)
		}
		if seen[id] {
			t.Fatalf("%x issued twice", id)
		}
		seen[id] = true
		if s := string(AppendUUID(nil, id[:])); !uuidRE.MatchString(s) {
			t.Fatalf("AppendUUID = %q", s)
		}
	}
}

func TestAppendUUID(t *testing.T) {
	id := []byte{0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0xff}
	if got := string(AppendUUID([]byte("id="), id)); got != "id=00010203-0405-0607-0809-0a0b0c0d0eff" {
		t.Errorf("AppendUUID = %q", got)
	}
	if got := string(AppendUUID(nil, []byte{0xab, 0xcd})); got != "abcd" {
		t.Errorf("AppendUUID(2 bytes) = %q, want plain hex", got)
	}
	if got := string(AppendUUID([]byte("x"), nil)); got != "x" {
		t.Errorf("AppendUUID(nil) = %q", got)
	}
}

// xorCTR is cipher.NewCTR without the allocations: same key stream for every IV, the
// counter carrying across all 128 bits.
func TestXorCTRMatchesCipherCTR(t *testing.T) {
	block, err := aes.NewCipher(testRing(t, "ctr").Key(0).BlockKey())
	if err != nil {
		t.Fatal(err)
	}
	ivs := [][]byte{
		make([]byte, 16),
		bytes.Repeat([]byte{0xff}, 16),
		append(make([]byte, 8), bytes.Repeat([]byte{0xff}, 8)...), // low half wraps into the high half
		append(bytes.Repeat([]byte{0xff}, 15), 0xfe),
		[]byte("0123456789abcdef"),
	}
	var s scratch
	for _, iv := range ivs {
		for _, n := range []int{0, 1, 15, 16, 17, 31, 32, 33, 100, 4096} {
			plain := bytes.Repeat([]byte{0x5a}, n)
			want := make([]byte, n)
			cipher.NewCTR(block, iv).XORKeyStream(want, plain)
			got := append([]byte(nil), plain...)
			s.xorCTR(block, iv, got)
			if !bytes.Equal(got, want) {
				t.Fatalf("iv %x, %d bytes: key stream differs from cipher.NewCTR", iv, n)
			}
		}
	}
}

// A realm separates the keys of one secret: a value verifies in its own realm only. The
// realm's derivation is a contract too.
func TestRealmKeys(t *testing.T) {
	secret := testSecret("golden")
	rings := map[string]*KeyRing{}
	for _, realm := range []string{"", "shop", "admin"} {
		r, err := NewRealmKeyRing(realm, secret)
		if err != nil {
			t.Fatal(err)
		}
		rings[realm] = r
	}
	if got := base64.RawURLEncoding.EncodeToString(rings[""].Key(0).HashKey()); got != goldenHashKey {
		t.Errorf("realm \"\" hash key %s, want NewKey's %s", got, goldenHashKey)
	}
	if got := base64.RawURLEncoding.EncodeToString(rings["shop"].Key(0).HashKey()); got != goldenShopHashKey {
		t.Errorf("realm shop hash key %s, want %s", got, goldenShopHashKey)
	}
	if bytes.Equal(rings["shop"].Key(0).BlockKey(), rings[""].Key(0).BlockKey()) {
		t.Error("realm shop has the block key of no realm")
	}
	for _, enc := range []bool{false, true} {
		v, err := NewCodec(rings["shop"], Options{Encrypt: enc}).Encode("session", []byte("alice"))
		if err != nil {
			t.Fatal(err)
		}
		for realm, ring := range rings {
			d, err := NewCodec(ring, Options{Encrypt: enc}).Decode("session", v)
			if realm == "shop" && (err != nil || string(d.Value) != "alice") {
				t.Errorf("encrypt=%v: shop's value in its own realm: %q, %v", enc, d.Value, err)
			}
			if realm != "shop" && err != ErrBadMAC {
				t.Errorf("encrypt=%v: shop's value in realm %q: %v, want ErrBadMAC", enc, realm, err)
			}
		}
	}
}

const goldenShopHashKey = "uX3M0odX6KD5VtwbYUx1c7EGKMm5QHpm6yd-bMjKyM4"

func TestIsEncoded(t *testing.T) {
	ring := testRing(t, "k1")
	for _, enc := range []bool{false, true} {
		c := NewCodec(ring, Options{Encrypt: enc})
		v, err := c.Encode("s", []byte("alice"))
		if err != nil {
			t.Fatal(err)
		}
		other, _ := NewCodec(testRing(t, "other"), Options{Encrypt: enc}).Encode("s", []byte("x"))
		for _, tc := range []struct {
			value string
			want  bool
		}{
			{v, true},
			{other, true}, // another key: encoded, but it will not verify
			{v[:len(v)-4], false},
			{"alice", false},
			{"", false},
			{"YWxpY2U=", false}, // base64 of plain text
			{b64.EncodeToString([]byte("1|abc|short-mac")), false},                  // MAC of the wrong size
			{b64.EncodeToString([]byte("x|abc|" + strings.Repeat("m", 32))), false}, // no timestamp
			{strings.Repeat("A", 5000), false},
		} {
			if got := c.IsEncoded(tc.value); got != tc.want {
				t.Errorf("encrypt=%v: IsEncoded(%.30q) = %v, want %v", enc, tc.value, got, tc.want)
			}
		}
	}
}

func TestParseUUID(t *testing.T) {
	for i := 0; i < 100; i++ {
		id := NewVisitorID()
		if got, ok := ParseUUID(UUIDString(id[:])); !ok || got != id {
			t.Fatalf("ParseUUID(UUIDString(%x)) = %x, %v", id, got, ok)
		}
	}
	for _, s := range []string{"", "00010203-0405-4607-8809-0a0b0c0d0e0", "000102030405-4607-8809-0a0b0c0d0e0f0", "0001020x-0405-4607-8809-0a0b0c0d0e0f", "00010203+0405-4607-8809-0a0b0c0d0e0f"} {
		if _, ok := ParseUUID(s); ok {
			t.Errorf("ParseUUID(%q) accepted", s)
		}
	}
}
