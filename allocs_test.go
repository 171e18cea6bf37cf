//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation counts are only
// meaningful without it. Counts, unlike times, are exact: this is a test, not a benchmark.

package signedcookies

import (
	"strings"
	"testing"
)

// The handler's allocations per request, each path held at what it costs now so that a change
// that adds one shows here: verify 2 (the forwarded Cookie line, the ID header's value), and
// none more for the cookies the module does not manage; issue 5 (those two, the Set-Cookie
// line and its slice, Cache-Control); upstream-sign 4; a cookie block, a split value and an
// unused rollout as verify; a Flask session 14 (its JSON read into a map, the exposed field's
// header). A request as Caddy makes it adds the placeholders' provider (2).
func TestServeHTTPAllocations(t *testing.T) {
	h := benchHandler(t)
	allocs := map[string]float64{}
	for _, c := range append(benchCases(t, h), benchFeatureCases(t)...) {
		mw := h
		if c.h != nil {
			mw = c.h
		}
		serve, w, r := benchServer(t, mw, c, false)
		n := testing.AllocsPerRun(200, serve)
		c.check(t, w, r) // the runs did the work
		allocs[c.name] = n
		t.Logf("%s: %v allocations per request", c.name, n)
	}
	for name, most := range map[string]float64{"verify": 2, "issue": 5, "upstream_sign": 4,
		"cookie_block": 2, "split": 2, "rollout_unused": 2, "flask_session": 14} {
		if n := allocs[name]; n > most {
			t.Errorf("%s: %v allocations per request, want at most %v", name, n, most)
		}
	}
	for name, n := range allocs {
		if strings.HasPrefix(name, "verify_") && n != allocs["verify"] {
			t.Errorf("%s: %v allocations per request, verify alone %v: unmanaged cookies must not cost allocations", name, n, allocs["verify"])
		}
	}
	if len(allocs) < 9 {
		t.Fatalf("only %d cases measured", len(allocs))
	}

	// With a replacer per request, as Caddy gives each one (the module registers its
	// placeholders there), against a no-op middleware on the same fresh requests.
	verify := benchCases(t, h)[0]
	module, _, _ := benchServer(t, h, verify, true)
	noop, _, _ := benchServer(t, benchNoop{}, verify, true)
	withRepl := testing.AllocsPerRun(200, module) - testing.AllocsPerRun(200, noop)
	t.Logf("verify with a fresh replacer: %v allocations more than a no-op middleware", withRepl)
	if withRepl > 4 {
		t.Errorf("verify with a fresh replacer: %v allocations per request, want at most 4", withRepl)
	}
}
