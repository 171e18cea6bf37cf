//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation counts are only
// meaningful without it.

package cookie

import "testing"

// The codec allocates nothing once its pools and buffers are warm.
func TestAllocs(t *testing.T) {
	ring := testRing(t, "allocs")
	sign := NewCodec(ring, Options{})
	encr := NewCodec(ring, Options{Encrypt: true})
	sv, _ := sign.Encode("session", []byte("alice"))
	ev, _ := encr.Encode("enc", []byte("secret"))
	var buf []byte
	for _, tc := range []struct {
		desc string
		f    func()
	}{
		{"Decode sign", func() { buf = must(sign.AppendDecode(buf[:0], "session", sv)).Value }},
		{"Decode encrypt", func() { buf = must(encr.AppendDecode(buf[:0], "enc", ev)).Value }},
		{"Decode bad MAC", func() { sign.AppendDecode(buf[:0], "other", sv) }},
		{"AppendEncode sign", func() { buf, _ = sign.AppendEncode(buf[:0], "session", benchValue) }},
		{"AppendEncode encrypt", func() { buf, _ = encr.AppendEncode(buf[:0], "enc", benchValue) }},
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
