//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation counts are only
// meaningful without it. Counts, unlike times, are exact: this is a test, not a benchmark.

package signedcookies

import (
	"strings"
	"testing"
)

// The handler's allocations per request (issue 5): at most 6 on the verify path, and none
// more for the cookies it does not manage.
func TestServeHTTPAllocations(t *testing.T) {
	h := benchHandler(t)
	allocs := map[string]float64{}
	for _, c := range benchCases(t, h) {
		serve, w, r := benchServer(t, h, c, false)
		n := testing.AllocsPerRun(200, serve)
		c.check(t, w, r) // the runs did the work
		allocs[c.name] = n
		t.Logf("%s: %v allocations per request", c.name, n)
	}
	if n := allocs["verify"]; n > 6 {
		t.Errorf("verify: %v allocations per request, want at most 6", n)
	}
	for name, n := range allocs {
		if strings.HasPrefix(name, "verify_") && n != allocs["verify"] {
			t.Errorf("%s: %v allocations per request, verify alone %v: unmanaged cookies must not cost allocations", name, n, allocs["verify"])
		}
	}
	if len(allocs) < 5 {
		t.Fatalf("only %d cases measured", len(allocs))
	}

	// With a replacer per request, as Caddy gives each one (the module registers its
	// placeholders there), against a no-op middleware on the same fresh requests.
	verify := benchCases(t, h)[0]
	module, _, _ := benchServer(t, h, verify, true)
	noop, _, _ := benchServer(t, benchNoop{}, verify, true)
	withRepl := testing.AllocsPerRun(200, module) - testing.AllocsPerRun(200, noop)
	t.Logf("verify with a fresh replacer: %v allocations more than a no-op middleware", withRepl)
	if withRepl > 6 {
		t.Errorf("verify with a fresh replacer: %v allocations per request, want at most 6", withRepl)
	}
}
