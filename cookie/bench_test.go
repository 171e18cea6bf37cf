package cookie

import (
	"testing"

	"github.com/gorilla/securecookie"
)

// Ours and securecookie side by side, same keys and value, so the ratios can be read off:
//
//	go test ./cookie -run XXX -bench . -benchmem

var benchValue = []byte("0123456789abcdef") // a visitor ID

func benchCodecs(b *testing.B, encrypt bool) (*Codec, *securecookie.SecureCookie) {
	ring := testRing(b, "bench")
	return NewCodec(ring, Options{Encrypt: encrypt, MaxAge: maxAge400d}),
		newSecureCookie(ring.Key(0), encrypt, maxAge400d)
}

func modeName(encrypt bool) string {
	if encrypt {
		return "encrypt"
	}
	return "sign"
}

func BenchmarkEncode(b *testing.B) {
	for _, enc := range []bool{false, true} {
		ours, theirs := benchCodecs(b, enc)
		b.Run(modeName(enc)+"/ours", func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = ours.AppendEncode(buf[:0], "vid", benchValue); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(modeName(enc)+"/securecookie", func(b *testing.B) {
			b.ReportAllocs()
			v := make([]byte, len(benchValue))
			for b.Loop() {
				copy(v, benchValue) // securecookie encrypts in place
				if _, err := theirs.Encode("vid", v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, enc := range []bool{false, true} {
		ours, theirs := benchCodecs(b, enc)
		v, err := ours.Encode("vid", benchValue)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(modeName(enc)+"/ours", func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for b.Loop() {
				if _, err := ours.AppendDecode(buf[:0], "vid", v); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(modeName(enc)+"/securecookie", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var dst []byte
				if err := theirs.Decode("vid", v, &dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// A forged value is refused at the MAC: the cost of an attacker's request.
	ours, _ := benchCodecs(b, false)
	bad, _ := NewCodec(testRing(b, "attacker"), Options{}).Encode("vid", benchValue)
	b.Run("bad_mac/ours", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 64)
		for b.Loop() {
			if _, err := ours.AppendDecode(buf[:0], "vid", bad); err != ErrBadMAC {
				b.Fatal(err)
			}
		}
	})
}
