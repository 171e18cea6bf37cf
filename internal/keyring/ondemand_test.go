// On-demand reads: at most one a second, shared, read-only.

package keyring

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// Cookies with unknown keys make a shared ring re-read storage at most once a second, however
// many arrive; each waits for a read that starts after it arrived, so a secret stored a
// moment ago is found even right after another re-read; and these reads never lock or write.
func TestOnDemandReads(t *testing.T) {
	dir := t.TempDir()
	stor := &countingStorage{Storage: &certmagic.FileStorage{Path: dir}}
	now := time.Now()
	sr := testRing(t, stor, &now, Use{Rotate: time.Hour, Check: time.Hour, Keep: time.Hour})
	mustSync(t, sr)
	u := &Use{ring: sr}
	stor.loads.Store(0)
	stor.locks.Store(0)
	stor.stores.Store(0)

	// a flood of forged cookies from 16 clients for 2.5 s
	const flood = 2500 * time.Millisecond
	start := time.Now()
	var calls, slowest atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < flood {
				t0 := time.Now()
				if !u.ReadOnDemand() {
					t.Error("an on-demand re-read failed")
				}
				calls.Add(1)
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	reads := stor.loads.Load()
	t.Logf("%d on-demand requests in %v: %d storage reads, the slowest waited %v", calls.Load(), elapsed.Round(time.Millisecond), reads, time.Duration(slowest.Load()).Round(time.Millisecond))
	if max := int64(elapsed/onDemandEvery) + 1; reads > max || reads < 2 {
		t.Errorf("%d storage reads in %v, want 2 to %d", reads, elapsed, max)
	}
	// the next read comes within one interval: slack for a busy machine, short of a second one
	if d := time.Duration(slowest.Load()); d > onDemandEvery+900*time.Millisecond {
		t.Errorf("a request waited %v for its re-read", d)
	}
	if stor.locks.Load() != 0 || stor.stores.Load() != 0 {
		t.Errorf("on-demand re-reads locked (%d) or wrote (%d) storage", stor.locks.Load(), stor.stores.Load())
	}

	// another instance rotates just after a re-read: the next request still finds the secret
	u.ReadOnDemand()
	f := storedRing(t, stor)
	added := fixedSecret("rotated in elsewhere")
	f.Secrets = append([]Secret{{Secret: added, Created: time.Now().UTC()}}, f.Secrets...)
	writeRingFile(t, dir, *f)
	if !u.ReadOnDemand() {
		t.Fatal("the re-read failed")
	}
	if !slices.Contains(sr.order, added) {
		t.Error("a secret stored before the cookie arrived was not found: the re-read started before the request")
	}
}
