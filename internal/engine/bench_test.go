package engine

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

//	go test ./internal/engine -run XXX -bench . -benchmem

// benchUnmanaged is n unmanaged pairs, analytics-like names and values, "; " between them.
func benchUnmanaged(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "_ga_" + strconv.Itoa(i) + "=GS1.1." + strconv.Itoa(1700000000+i) + ".4.1.1700000300.0.0.0"
	}
	return strings.Join(parts, "; ")
}

// benchCookieHeader is a Cookie header with one signed "session" and n unmanaged pairs.
func benchCookieHeader(tb testing.TB, tp testPolicy, n int) string {
	return "session=" + tp.signed(tb, "session", "alice") + "; " + benchUnmanaged(n)
}

func BenchmarkRebuild(b *testing.B) {
	tp := newTestPolicy(b, nil)
	for _, n := range []int{1, 10, 50} {
		lines := []string{benchCookieHeader(b, tp, n)}
		b.Run("unmanaged="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			var res result
			for b.Loop() {
				if !tp.rebuild(&res, lines, t0, nil, false) {
					b.Fatal("too many pairs")
				}
			}
			if len(res.found) != 1 || len(res.dropped) != 0 {
				b.Fatalf("found %d, dropped %d", len(res.found), len(res.dropped))
			}
		})
	}
}

func BenchmarkSetCookieSplice(b *testing.B) {
	line := "session=alice; Path=/; Domain=example.com; Expires=Wed, 21 Oct 2099 07:28:00 GMT; HttpOnly; Secure; SameSite=Lax"
	c := newTestPolicy(b, nil).sign
	now := time.Now().Unix()
	b.Run("parse+splice", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			sc, ok := parseSetCookie(line)
			if deletion, _, _ := sc.lifetime(now); !ok || deletion {
				b.Fatal("not a cookie")
			}
			buf = sc.appendSplice(buf[:0], []byte("signed-value"))
		}
	})
	b.Run("parse+encode+splice", func(b *testing.B) {
		b.ReportAllocs()
		var buf, enc []byte
		for b.Loop() {
			sc, ok := parseSetCookie(line)
			if deletion, _, _ := sc.lifetime(now); !ok || deletion {
				b.Fatal("not a cookie")
			}
			var err error
			if enc, err = c.AppendEncodeAt(enc[:0], sc.name, []byte(sc.value), now); err != nil {
				b.Fatal(err)
			}
			buf = sc.appendSplice(buf[:0], enc)
		}
	})
}
