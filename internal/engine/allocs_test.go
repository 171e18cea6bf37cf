//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation counts are only
// meaningful without it.

package engine

import (
	"testing"
	"time"
)

const raceEnabled = false

// The hot paths allocate nothing once their pools and buffers are warm: not for the managed
// cookies, not per unmanaged cookie, not per dropped one.
func TestAllocs(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	ev := tp.signed(t, "enc", "secret")
	vid := tp.signed(t, "vid", string(testVisitorID))
	unmanaged := benchUnmanaged(50)
	h1 := "session=" + sv + "; " + unmanaged
	h3 := unmanaged + "; session=" + sv + "; enc=" + ev + "; vid=" + vid
	hDrops := "SESSION=1; sess%69on=2; noeq; x=1,session=2; session=" + sv[:40] + "; session=" + sv + "; session=" + sv + "; " + unmanaged
	// With a consent cookie to watch for, managed and not.
	consent := newTestPolicy(t, nil, func(c *Config) { c.Visitor.Consent = "enc=secret" })
	line := "session=alice; Path=/; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Max-Age=3600; HttpOnly"
	now := time.Now().Unix()

	var res result
	var buf []byte
	lines := make([]string, 1) // a request's Cookie lines are the request's
	rebuild := func(tp testPolicy, header string) {
		lines[0] = header
		if !tp.rebuild(&res, lines, t0, nil, false) || len(res.found) == 0 {
			t.Fatalf("rebuild: %d found", len(res.found))
		}
	}
	for _, tc := range []struct {
		desc string
		f    func()
	}{
		{"rebuild 50 unmanaged + 1 managed", func() { rebuild(tp, h1) }},
		{"rebuild 50 unmanaged + 3 managed", func() { rebuild(tp, h3) }},
		{"rebuild with drops", func() { rebuild(tp, hDrops) }},
		{"rebuild watching for consent", func() { rebuild(consent, h3) }},
		{"parseSetCookie+lifetime+appendSplice", func() {
			sc, _ := parseSetCookie(line)
			sc.lifetime(now)
			buf = sc.appendSplice(buf[:0], []byte("signed"))
		}},
	} {
		if n := testing.AllocsPerRun(1000, tc.f); n != 0 {
			t.Errorf("%s: %v allocations per run, want 0", tc.desc, n)
		}
	}
	if !res.consent {
		t.Error("the consent cookie went unnoticed")
	}
}
