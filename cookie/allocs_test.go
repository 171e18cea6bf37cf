//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation counts are only
// meaningful without it.

package cookie

import (
	"strings"
	"testing"
	"time"
)

// The hot paths allocate nothing once their pools and buffers are warm: not for the managed
// cookie (the spec allows 6 on the verify path), and nothing per unmanaged cookie.
func TestAllocs(t *testing.T) {
	tj := newTestJar(t)
	realClock := NewCodec(tj.sign.KeyRing(), Options{})
	encr := NewCodec(tj.sign.KeyRing(), Options{Encrypt: true})
	j, err := NewJar(Rule{Pattern: "session", Codec: realClock}, Rule{Pattern: "sess_*", Codec: realClock},
		Rule{Pattern: "enc", Codec: encr}, Rule{Pattern: "vid", Codec: realClock, Strip: true})
	if err != nil {
		t.Fatal(err)
	}
	tj = testJar{Jar: j, sign: realClock, encr: encr}
	sv, _ := realClock.Encode("session", []byte("alice"))
	ev, _ := encr.Encode("enc", []byte("secret"))
	vid, _ := realClock.Encode("vid", benchValue)
	unmanaged := benchCookieHeader(t, tj, 50)
	unmanaged = unmanaged[strings.Index(unmanaged, ";")+2:]
	h1 := "session=" + sv + "; " + unmanaged
	h3 := unmanaged + "; session=" + sv + "; enc=" + ev + "; vid=" + vid
	hDrops := "SESSION=1; sess%69on=2; noeq; session=" + sv[:40] + "; session=" + sv + "; session=" + sv + "; " + unmanaged
	line := "session=alice; Path=/; Expires=Wed, 21 Oct 2099 07:28:00 GMT; HttpOnly"
	now := time.Now()

	var res Result
	var buf []byte
	for _, tc := range []struct {
		desc string
		f    func()
	}{
		{"Decode sign", func() { buf = must(realClock.AppendDecode(buf[:0], "session", sv)).Value }},
		{"Decode encrypt", func() { buf = must(encr.AppendDecode(buf[:0], "enc", ev)).Value }},
		{"Decode bad MAC", func() { realClock.AppendDecode(buf[:0], "other", sv) }},
		{"AppendEncode sign", func() { buf, _ = realClock.AppendEncode(buf[:0], "session", benchValue) }},
		{"AppendEncode encrypt", func() { buf, _ = encr.AppendEncode(buf[:0], "enc", benchValue) }},
		{"Rebuild 50 unmanaged + 1 managed", func() { rebuild(t, tj, &res, h1) }},
		{"Rebuild 50 unmanaged + 3 managed", func() { rebuild(t, tj, &res, h3) }},
		{"Rebuild with drops", func() { rebuild(t, tj, &res, hDrops) }},
		{"ParseSetCookie+IsDeletion+AppendSplice", func() {
			sc, _ := ParseSetCookie(line)
			sc.IsDeletion(now)
			buf = sc.AppendSplice(buf[:0], []byte("signed"))
		}},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.desc, n)
		}
	}
}

func must(d Decoded, err error) Decoded {
	if err != nil {
		panic(err)
	}
	return d
}

func rebuild(t *testing.T, tj testJar, res *Result, header string) {
	lines := [1]string{header}
	if err := tj.Rebuild(res, lines[:]); err != nil || len(res.Found) == 0 {
		t.Fatalf("Rebuild: %v, %d found", err, len(res.Found))
	}
}
