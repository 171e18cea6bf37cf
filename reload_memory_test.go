// Nothing of a config outlives it: a Caddy reloaded many times with handlers of this module
// holds a flat heap, as plain Caddy does.

package signedcookies

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// Reloads alternate two configs of three sites, each with signed_cookies handlers; after a
// warm-up, the live heap (after a GC, a count of bytes, not a time) may grow by no more than
// a few KiB per reload, where a config kept alive costs tens of KiB each (the composition
// check once kept every checked HTTP app in a package-level map: ~48 KB a reload for three
// sites).
func TestReloadHeapFlat(t *testing.T) {
	up := startUpstream(t, nil)
	site := func(i, variant int) string {
		return fmt.Sprintf(`
	handle /s%d/* {
		signed_cookies {
			secret %s
			sign session_%d
			track {
				header X-Visitor-%d
			}
		}
		reverse_proxy %s
	}`, i, testSecret, variant, variant, up.Addr)
	}
	config := func(variant int) string {
		return site(1, variant) + site(2, variant) + site(3, variant)
	}
	ci := startCaddy(t, config(0))
	load := func(variant int) {
		postLoad(t, ci.AdminAddr, adapt(t, strings.Replace(ci.Caddyfile, config(0), config(variant), 1)))
	}
	live := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const warmup, measured = 20, 120
	for i := range warmup {
		load(i % 2)
	}
	before := live()
	for i := range measured {
		load(i % 2)
	}
	after := live()
	perReload := (float64(after) - float64(before)) / measured
	t.Logf("live heap %d -> %d bytes over %d reloads: %+.0f bytes a reload", before, after, measured, perReload)
	if perReload > 4096 {
		t.Errorf("the live heap grows by %.0f bytes a reload: a config outlives its unload", perReload)
	}
}
