package cookie

import (
	"strconv"
	"strings"
	"testing"
	"time"

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

// benchCookieHeader is a Cookie header with n unmanaged pairs (analytics-like names and
// values) and one signed "session".
func benchCookieHeader(tb testing.TB, tj testJar, n int) string {
	parts := []string{"session=" + tj.signed(tb, "session", "alice")}
	for i := 0; i < n; i++ {
		parts = append(parts, "_ga_"+strconv.Itoa(i)+"=GS1.1."+strconv.Itoa(1700000000+i)+".4.1.1700000300.0.0.0")
	}
	return strings.Join(parts, "; ")
}

func BenchmarkRebuild(b *testing.B) {
	tj := newTestJar(b)
	// A real clock: the bench codecs of newTestJar would expire the values after an hour.
	tj.sign = NewCodec(tj.sign.KeyRing(), Options{})
	j, err := NewJar(Rule{Pattern: "session", Codec: tj.sign}, Rule{Pattern: "sess_*", Codec: tj.sign},
		Rule{Pattern: "enc", Codec: tj.encr})
	if err != nil {
		b.Fatal(err)
	}
	tj.Jar = j
	for _, n := range []int{1, 10, 50} {
		lines := []string{benchCookieHeader(b, tj, n)}
		b.Run("unmanaged="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var res Result
			for b.Loop() {
				if err := tj.Rebuild(&res, lines); err != nil {
					b.Fatal(err)
				}
			}
			if len(res.Found) != 1 || len(res.Dropped) != 0 {
				b.Fatalf("found %d, dropped %d", len(res.Found), len(res.Dropped))
			}
		})
	}
}

func BenchmarkSetCookieSplice(b *testing.B) {
	line := "session=alice; Path=/; Domain=example.com; Expires=Wed, 21 Oct 2099 07:28:00 GMT; HttpOnly; Secure; SameSite=Lax"
	c, _ := benchCodecs(b, false)
	now := time.Now()
	b.Run("parse+splice", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			sc, ok := ParseSetCookie(line)
			if !ok || sc.IsDeletion(now) {
				b.Fatal("not a cookie")
			}
			buf = sc.AppendSplice(buf[:0], []byte("signed-value"))
		}
	})
	b.Run("parse+encode+splice", func(b *testing.B) {
		b.ReportAllocs()
		var buf, enc []byte
		for b.Loop() {
			sc, ok := ParseSetCookie(line)
			if !ok || sc.IsDeletion(now) {
				b.Fatal("not a cookie")
			}
			var err error
			if enc, err = c.AppendEncode(enc[:0], sc.Name, []byte(sc.Value)); err != nil {
				b.Fatal(err)
			}
			buf = sc.AppendSplice(buf[:0], enc)
		}
	})
}
