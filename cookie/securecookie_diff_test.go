package cookie

import (
	"bytes"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
)

// The codec is a fast path of gorilla/securecookie v1.1.2 configured with
// New(HashKey, BlockKey or nil) + NopEncoder + MaxAge + MaxLength(4096). These tests hold it to
// accepting exactly the values securecookie accepts, with the same plain value, and to
// producing values securecookie reads.

const maxAge400d = 400 * 24 * time.Hour

// newSecureCookie is the securecookie equivalent of a codec over one key.
func newSecureCookie(k *Key, encrypt bool, maxAge time.Duration) *securecookie.SecureCookie {
	var blockKey []byte
	if encrypt {
		blockKey = k.BlockKey()
	}
	return securecookie.New(k.HashKey(), blockKey).
		SetSerializer(securecookie.NopEncoder{}).
		MaxAge(int(maxAge / time.Second)).
		MaxLength(DefaultMaxLength)
}

// diffPair is one configuration on both sides: our codec over a ring, and one securecookie
// per key of the ring for securecookie.DecodeMulti (its own rotation mechanism).
type diffPair struct {
	desc    string
	encrypt bool
	maxAge  time.Duration
	ours    *Codec
	theirs  []securecookie.Codec
}

func newDiffPair(ring *KeyRing, encrypt bool, maxAge time.Duration) diffPair {
	p := diffPair{
		desc:    "sign",
		encrypt: encrypt,
		maxAge:  maxAge,
		ours:    NewCodec(ring, Options{Encrypt: encrypt, MaxAge: maxAge}),
	}
	if encrypt {
		p.desc = "encrypt"
	}
	p.desc += "/maxage=" + maxAge.String()
	for i := 0; i < ring.Len(); i++ {
		p.theirs = append(p.theirs, newSecureCookie(ring.Key(i), encrypt, maxAge))
	}
	return p
}

// diffPairs covers both modes, with and without a max age, over the ring [k1, k0].
func diffPairs(tb testing.TB) (ring *KeyRing, pairs []diffPair) {
	ring = testRing(tb, "k1", "k0")
	for _, enc := range []bool{false, true} {
		for _, ma := range []time.Duration{0, maxAge400d} {
			pairs = append(pairs, newDiffPair(ring, enc, ma))
		}
	}
	return ring, pairs
}

func decodeTheirs(codecs []securecookie.Codec, name, value string) ([]byte, error) {
	var dst []byte
	err := securecookie.DecodeMulti(name, value, &dst, codecs...)
	return dst, err
}

// nearExpiry reports whether value carries a timestamp within a few seconds of the max age
// boundary, where the two clocks (ours and securecookie's, read at different instants) may
// disagree.
func nearExpiry(value string, maxAge time.Duration) bool {
	if maxAge == 0 {
		return false
	}
	raw, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	ts, _, _ := strings.Cut(string(raw), "|")
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	edge := time.Now().Unix() - int64(maxAge/time.Second)
	return t > edge-3 && t < edge+3
}

// agree decodes value on both sides and fails unless they accept and reject alike, with the
// same plain value. It reports whether the value was accepted.
func agree(tb testing.TB, p diffPair, name, value string) bool {
	tb.Helper()
	d, err := p.ours.Decode(name, value)
	want, theirErr := decodeTheirs(p.theirs, name, value)
	if (err == nil) != (theirErr == nil) {
		if nearExpiry(value, p.maxAge) {
			return err == nil
		}
		tb.Fatalf("%s: Decode(%q, %q): ours %v, securecookie %v", p.desc, name, value, err, theirErr)
	}
	if err == nil && !bytes.Equal(d.Value, want) {
		tb.Fatalf("%s: Decode(%q, %q): ours %q, securecookie %q", p.desc, name, value, d.Value, want)
	}
	return err == nil
}

type diffCase struct {
	desc  string
	name  string
	value string
	// want is the expected acceptance with MaxAge 0 and with MaxAge 400d; nil: agreement only.
	want *[2]bool
}

var (
	acceptBoth  = &[2]bool{true, true}
	rejectBoth  = &[2]bool{false, false}
	expiredOnly = &[2]bool{true, false}
)

// diffCases builds the inputs for one mode: valid values made by either side, every kind of
// damage, and forged values (valid MAC) that reach the timestamp and payload checks.
func diffCases(tb testing.TB, ring *KeyRing, encrypt bool) []diffCase {
	k, old := ring.Key(0), ring.Key(1)
	stranger := testRing(tb, "stranger").Key(0)
	ours := NewCodec(ring, Options{Encrypt: encrypt})
	oursOld := NewCodec(testRing(tb, "k0"), Options{Encrypt: encrypt})
	theirs := newSecureCookie(k, encrypt, 0)
	theirsOld := newSecureCookie(old, encrypt, 0)
	enc := func(c *Codec, v []byte) string {
		s, err := c.Encode("s", v)
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	encTheirs := func(sc *securecookie.SecureCookie, v []byte) string {
		s, err := sc.Encode("s", append([]byte(nil), v...)) // securecookie encrypts in place
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	now := time.Now().Unix()
	b64 := base64.URLEncoding.EncodeToString
	payload := func(plain []byte) string {
		if encrypt {
			return ctrPayload(k, []byte("0123456789abcdef"), plain)
		}
		return b64(plain)
	}
	hello := payload([]byte("hello"))
	good := enc(ours, []byte("hello"))

	cs := []diffCase{
		{"ours", "s", good, acceptBoth},
		{"securecookie", "s", encTheirs(theirs, []byte("hello")), acceptBoth},
		{"ours binary", "s", enc(ours, allBytes()), acceptBoth},
		{"securecookie binary", "s", encTheirs(theirs, allBytes()), acceptBoth},
		{"ours old key", "s", enc(oursOld, []byte("hello")), acceptBoth},
		{"securecookie old key", "s", encTheirs(theirsOld, []byte("hello")), acceptBoth},
		{"stranger key", "s", enc(NewCodec(testRing(tb, "stranger"), Options{Encrypt: encrypt}), []byte("hello")), rejectBoth},
		{"renamed", "t", good, rejectBoth},
		{"empty name", "", good, rejectBoth},
		{"empty value", "s", "", rejectBoth},
		{"padding stripped", "s", strings.TrimRight(good, "="), nil},
		{"standard alphabet", "s", base64.StdEncoding.EncodeToString([]byte(strconv.FormatInt(now, 10)+"|"+hello+"|")) + "+/", rejectBoth},
		{"newline inside", "s", good[:10] + "\n" + good[10:], acceptBoth},
		{"CRLF inside", "s", good[:4] + "\r\n" + good[4:], acceptBoth},
		{"space inside", "s", good[:4] + " " + good[4:], rejectBoth},
		{"4096 bytes with newlines", "s", good + strings.Repeat("\n", DefaultMaxLength-len(good)), acceptBoth},
		{"4097 bytes with newlines", "s", good + strings.Repeat("\n", DefaultMaxLength+1-len(good)), rejectBoth},
		{"4097 bytes", "s", strings.Repeat("A", DefaultMaxLength+1), rejectBoth},
		{"no pipe", "s", b64([]byte("hello")), rejectBoth},
		{"one pipe", "s", b64([]byte("1|hello")), rejectBoth},
		{"stranger mac", "s", forge(stranger, "s", strconv.FormatInt(now, 10)+"|"+hello), rejectBoth},
		{"old key mac", "s", forge(old, "s", strconv.FormatInt(now, 10)+"|"+payloadWith(old, encrypt, []byte("hello"))), acceptBoth},
		{"two pipes before mac", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"+hello+"|x"), rejectBoth},
		{"pipe in mac", "s", rewrap(strconv.FormatInt(now, 10), hello, []byte(strings.Repeat("|", 32))), rejectBoth},
		{"payload not base64", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|***"), rejectBoth},
		{"payload unpadded", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"+strings.TrimRight(hello, "=")), nil},
		{"payload with newline", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"+hello[:3]+"\n"+hello[3:]), acceptBoth},
		{"payload standard alphabet", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|+/+/"), rejectBoth},
		{"payload 16 bytes", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"+b64(make([]byte, 16))), &[2]bool{!encrypt, !encrypt}},
		{"payload 17 bytes", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"+b64(make([]byte, 17))), acceptBoth},
		{"payload empty", "s", forge(k, "s", strconv.FormatInt(now, 10)+"|"), &[2]bool{!encrypt, !encrypt}},
	}
	for _, v := range [][]byte{nil, {0}, []byte("x"), make([]byte, 15), make([]byte, 16)} {
		cs = append(cs, diffCase{"securecookie " + strconv.Itoa(len(v)) + " bytes", "s", encTheirs(theirs, v), &[2]bool{!encrypt || len(v) > 0, !encrypt || len(v) > 0}})
	}
	for _, tc := range []struct {
		ts   string
		want *[2]bool
	}{
		{strconv.FormatInt(now, 10), acceptBoth},
		{"+" + strconv.FormatInt(now, 10), acceptBoth},
		{"000" + strconv.FormatInt(now, 10), acceptBoth},
		{strconv.FormatInt(now+86400*365, 10), acceptBoth}, // from the future: MinAge is 0
		{strconv.FormatInt(now-int64(maxAge400d/time.Second)+3600, 10), acceptBoth},
		{strconv.FormatInt(now-int64(maxAge400d/time.Second)-3600, 10), expiredOnly},
		{"0", expiredOnly},
		{"-0", expiredOnly},
		{"-1", expiredOnly},
		{"9223372036854775807", acceptBoth},
		{"-9223372036854775808", expiredOnly},
		{"9223372036854775808", rejectBoth},
		{"-9223372036854775809", rejectBoth},
		{"", rejectBoth},
		{"+", rejectBoth},
		{"-", rejectBoth},
		{" 1", rejectBoth},
		{"1 ", rejectBoth},
		{"1_000", rejectBoth},
		{"0x10", rejectBoth},
		{"1e9", rejectBoth},
		{"++1", rejectBoth},
	} {
		cs = append(cs, diffCase{"timestamp " + strconv.Quote(tc.ts), "s", forge(k, "s", tc.ts+"|"+hello), tc.want})
	}
	// Every truncation, and every single-byte change: damage must never be accepted by one
	// side only (a changed final base64 digit may be accepted by both: unused bits).
	for i := 0; i < len(good); i++ {
		cs = append(cs, diffCase{"truncated to " + strconv.Itoa(i), "s", good[:i], rejectBoth})
		for _, c := range []byte{'A', '_', '=', '|', '\n'} {
			if good[i] != c {
				cs = append(cs, diffCase{"byte " + strconv.Itoa(i) + " changed", "s", good[:i] + string(c) + good[i+1:], nil})
			}
		}
	}
	return cs
}

// payloadWith is the payload of plain for key k (encrypted with a fixed IV when encrypt).
func payloadWith(k *Key, encrypt bool, plain []byte) string {
	if encrypt {
		return ctrPayload(k, []byte("fedcba9876543210"), plain)
	}
	return base64.URLEncoding.EncodeToString(plain)
}

func TestDecodeDifferential(t *testing.T) {
	ring, pairs := diffPairs(t)
	for _, p := range pairs {
		accepted, rejected := 0, 0
		for _, tc := range diffCases(t, ring, p.encrypt) {
			got := agree(t, p, tc.name, tc.value)
			if got {
				accepted++
			} else {
				rejected++
			}
			if tc.want == nil {
				continue
			}
			want := tc.want[0]
			if p.maxAge != 0 {
				want = tc.want[1]
			}
			if got != want {
				t.Errorf("%s: %s: accepted=%v, want %v", p.desc, tc.desc, got, want)
			}
		}
		if accepted < 10 || rejected < 100 {
			t.Errorf("%s: %d accepted, %d rejected: the table lost its cases", p.desc, accepted, rejected)
		}
	}
}

// With a single key in the ring, values signed by the other key are refused by both.
func TestDecodeDifferentialWithoutOldKey(t *testing.T) {
	full := testRing(t, "k1", "k0")
	for _, enc := range []bool{false, true} {
		p := newDiffPair(testRing(t, "k1"), enc, 0)
		for _, tc := range diffCases(t, full, enc) {
			agree(t, p, tc.name, tc.value)
		}
		old, _ := NewCodec(testRing(t, "k0"), Options{Encrypt: enc}).Encode("s", []byte("v"))
		if agree(t, p, "s", old) {
			t.Errorf("%s: value of a key not in the ring accepted", p.desc)
		}
	}
}

// Golden values of codec_test.go are read by securecookie too.
func TestGoldenDecodeWithSecureCookie(t *testing.T) {
	k := testRing(t, "golden").Key(0)
	for _, tc := range []struct {
		encrypt bool
		value   string
	}{{false, goldenSigned}, {true, goldenEncrypted}} {
		var got []byte
		if err := newSecureCookie(k, tc.encrypt, 0).Decode("session", tc.value, &got); err != nil || string(got) != "hello" {
			t.Errorf("encrypt=%v: securecookie reads %q, %v", tc.encrypt, got, err)
		}
	}
}

// encodeValues covers the lengths that matter, up to both sides of the 4096-byte limit.
func encodeValues(c *Codec) [][]byte {
	n := 0
	for c.EncodedLen(n+1) <= DefaultMaxLength {
		n++
	}
	return [][]byte{
		nil, {0}, []byte("hello"), allBytes(), []byte(strings.Repeat("é", 100)),
		bytes.Repeat([]byte{'m'}, n-1), bytes.Repeat([]byte{'m'}, n), bytes.Repeat([]byte{'m'}, n+1),
		bytes.Repeat([]byte{'m'}, n+100),
	}
}

func TestEncodeInterop(t *testing.T) {
	ring := testRing(t, "k1")
	k := ring.Key(0)
	for _, enc := range []bool{false, true} {
		ours := NewCodec(ring, Options{Encrypt: enc})
		theirs := newSecureCookie(k, enc, maxAge400d)
		for _, v := range encodeValues(ours) {
			checkInterop(t, ours, theirs, "session", v)
		}
		if !enc {
			// Sign-only encoding is deterministic: within one second both sides produce the
			// same bytes.
			for try := 0; ; try++ {
				before := time.Now().Unix()
				a, _ := ours.Encode("session", []byte("same"))
				b, _ := theirs.Encode("session", []byte("same"))
				if time.Now().Unix() != before {
					if try < 5 {
						continue
					}
					t.Fatal("the clock keeps crossing seconds")
				}
				if a != b {
					t.Errorf("sign-only: ours %q, securecookie %q", a, b)
				}
				break
			}
		}
	}
}

// checkInterop encodes v on each side, decodes it on both and compares: an encode refused by
// one side must be refused by the other, and the empty encrypted value (a bare IV) is
// refused by both decoders.
func checkInterop(tb testing.TB, ours *Codec, theirs *securecookie.SecureCookie, name string, v []byte) {
	tb.Helper()
	ov, oErr := ours.Encode(name, v)
	tv, tErr := theirs.Encode(name, append([]byte(nil), v...))
	if (oErr == nil) != (tErr == nil) {
		tb.Fatalf("Encode(%q, %d bytes): ours %v, securecookie %v", name, len(v), oErr, tErr)
	}
	if oErr != nil {
		if oErr != ErrEncodedTooLong {
			tb.Fatalf("Encode: %v, want ErrEncodedTooLong", oErr)
		}
		return
	}
	if len(ov) != len(tv) {
		tb.Fatalf("Encode(%q, %d bytes): ours %d bytes, securecookie %d", name, len(v), len(ov), len(tv))
	}
	decodable := !ours.Encrypted() || len(v) > 0
	for _, s := range []string{ov, tv} {
		d, err := ours.Decode(name, s)
		var got []byte
		theirErr := theirs.Decode(name, s, &got)
		if (err == nil) != decodable || (theirErr == nil) != decodable {
			tb.Fatalf("Decode(%q, %d-byte value): ours %v, securecookie %v", name, len(v), err, theirErr)
		}
		if decodable && (!bytes.Equal(d.Value, v) || !bytes.Equal(got, v)) {
			tb.Fatalf("Decode(%q): ours %q, securecookie %q, want %q", name, d.Value, got, v)
		}
	}
}

func FuzzDecodeDifferential(f *testing.F) {
	ring, pairs := diffPairs(f)
	k := ring.Key(0)
	now := strconv.FormatInt(time.Now().Unix(), 10)
	for _, enc := range []bool{false, true} {
		c := NewCodec(ring, Options{Encrypt: enc})
		for _, v := range []string{"hello", "", "x", strings.Repeat("z", 17)} {
			s, _ := c.Encode("s", []byte(v))
			f.Add("s", s)
			f.Add("t", s)
			f.Add("s", s[:len(s)-3])
		}
	}
	// Inputs that are themselves "timestamp|payload": the fuzz body also signs them.
	for _, inner := range []string{
		now + "|aGVsbG8=", "+" + now + "|", "-1|aGVsbG8=", "0|" + ctrPayload(k, make([]byte, 16), []byte("x")),
		now + "|AAAAAAAAAAAAAAAAAAAAAA==", now + "|AAAAAAAAAAAAAAAAAAAAAAA=", now + "|aGVs\nbG8=", "9223372036854775808|",
	} {
		f.Add("s", inner)
	}
	f.Add("", "")
	f.Add("s", "MTc2NDEwMDAwMHxhR1ZzYkc4PXybqR8k1IBitD9gPkRzmk9AkGgeb4WwhxjF6x-gYzFGsg==")
	f.Fuzz(func(t *testing.T, name, value string) {
		forged := forge(k, name, value)
		for _, p := range pairs {
			agree(t, p, name, value)
			agree(t, p, name, forged)
		}
	})
}

// FuzzEncodeRoundTrip encodes value, followed by pad bytes of padding, on both sides and
// decodes each result on both. The padding reaches the 4096-byte limit (2271 bytes fit
// signed, 2255 encrypted) while the fuzzer's inputs stay small and quick to minimize.
func FuzzEncodeRoundTrip(f *testing.F) {
	ring := testRing(f, "k1")
	var ours [2]*Codec
	var sc [2]*securecookie.SecureCookie
	for i, enc := range []bool{false, true} {
		ours[i] = NewCodec(ring, Options{Encrypt: enc, MaxAge: maxAge400d})
		sc[i] = newSecureCookie(ring.Key(0), enc, maxAge400d)
	}
	f.Add("session", []byte("hello"), uint16(0))
	f.Add("", []byte{}, uint16(0))
	f.Add("a|b", []byte("|||"), uint16(1))
	f.Add("s", []byte{0xff}, uint16(2270))
	f.Add("s", []byte{}, uint16(2272))
	f.Add("s", []byte("a"), uint16(2254))
	f.Add("s", []byte("a"), uint16(2255))
	f.Fuzz(func(t *testing.T, name string, value []byte, pad uint16) {
		value = append(value, bytes.Repeat([]byte{'p'}, int(pad%3000))...)
		for i := range ours {
			checkInterop(t, ours[i], sc[i], name, value)
		}
	})
}
