// On-demand reads with their spacing and wait shortened (the mechanism, not the constants: the
// root package's tests run them through a real Caddy): bounded waits on a storage that stalls
// and ignores its context, one read at a time, and the backoff under a stream of unknown keys.

package keyring

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// stallingStorage is a storage that is not file_system (reads go through Stat and Load), whose
// Load waits, ignoring its context, while the test holds it.
type stallingStorage struct {
	certmagic.Storage
	mu             sync.Mutex
	gate           chan struct{} // closed: loads go through
	loads, inLoad  atomic.Int64
	locks, storeds atomic.Int64
}

func newStallingStorage(dir string) *stallingStorage {
	s := &stallingStorage{Storage: &certmagic.FileStorage{Path: dir}, gate: make(chan struct{})}
	close(s.gate)
	return s
}

func (s *stallingStorage) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gate = make(chan struct{})
}

func (s *stallingStorage) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.gate)
}

func (s *stallingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads.Add(1)
	s.inLoad.Add(1)
	defer s.inLoad.Add(-1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	<-gate
	return s.Storage.Load(ctx, key)
}

func (s *stallingStorage) Lock(ctx context.Context, name string) error {
	s.locks.Add(1)
	return s.Storage.Lock(ctx, name)
}

func (s *stallingStorage) Store(ctx context.Context, key string, b []byte) error {
	s.storeds.Add(1)
	return s.Storage.Store(ctx, key, b)
}

// onDemandRing is a ring over stor, already stored, whose on-demand reads are spaced by every
// at first and wait every*1.25.
func onDemandRing(t *testing.T, dir string, stor certmagic.Storage, every, check time.Duration) (*Ring, *Use) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Second)
	writeRingFile(t, dir, File{Version: Version, Keep: time.Hour, CheckInterval: check, Secrets: []Secret{{Secret: testSecret, Created: now}}})
	r := New(stor, Options{})
	r.onDemand.every, r.onDemand.wait, r.onDemand.gap = every, every+every/4, every
	t.Cleanup(func() { _ = r.Destruct() })
	u := &Use{Rotate: time.Hour, Check: check, Keep: time.Hour}
	if err := r.Join(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return r, u
}

// addSecret stores a new secret in front of the ring in dir, as another instance rotating
// would.
func addSecret(t *testing.T, dir, label string) string {
	t.Helper()
	f := storedRing(t, &certmagic.FileStorage{Path: dir})
	s := fixedSecret(label)
	f.Secrets = append([]Secret{{Secret: s, Created: time.Now().UTC()}}, f.Secrets...)
	writeRingFile(t, dir, *f)
	return s
}

func inUse(r *Ring, secret string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Contains(r.order, secret)
}

// A request waits a bounded time for a read whatever the storage does: with the storage
// stalled (and deaf to its context) it goes on while the read is still blocked, the requests
// after it do not wait and start no second read, and once the storage answers the read lands
// and the next request's read finds what was stored meanwhile.
func TestOnDemandStalledStorage(t *testing.T) {
	dir := t.TempDir()
	stor := newStallingStorage(dir)
	r, u := onDemandRing(t, dir, stor, 40*time.Millisecond, time.Hour)
	stor.loads.Store(0)

	stor.hold()
	if u.ReadOnDemand() {
		t.Error("the read reported done while the storage still held it")
	}
	if n := stor.inLoad.Load(); n != 1 {
		t.Fatalf("%d reads under way when the request went on, want the 1 it started, still blocked", n)
	}
	for range 20 {
		if u.ReadOnDemand() {
			t.Error("a read reported done while the storage still held it")
		}
	}
	if n := stor.loads.Load(); n != 1 {
		t.Errorf("%d reads started while the first was blocked, want 1: one at a time", n)
	}

	added := addSecret(t, dir, "stored while the read was blocked")
	stor.release()
	deadline := time.Now().Add(5 * time.Second)
	for !inUse(r, added) {
		if time.Now().After(deadline) {
			t.Fatal("the secret stored meanwhile never came into use")
		}
		u.ReadOnDemand()
	}
	if stor.locks.Load() != 0 || stor.storeds.Load() != 0 {
		t.Errorf("on-demand reads locked (%d) or wrote (%d) storage", stor.locks.Load(), stor.storeds.Load())
	}
}

// A flood of unknown keys makes a ring read storage with a spacing that doubles while the
// reads find nothing new, up to the ring's re-read interval; concurrent requests share a read;
// a read that finds a new secret resets the spacing, and the request that asked for it verifies
// the cookie against it.
func TestOnDemandBackoff(t *testing.T) {
	const every = 10 * time.Millisecond
	for _, tc := range []struct {
		name       string
		check      time.Duration
		flood      time.Duration
		reads      [2]int64 // at least, at most
		spacingCap time.Duration
	}{
		// reads at 0, 10, 30, 70, 150, 310, 630 ms (without the backoff: 80)
		{"up to an hour", time.Hour, 800 * time.Millisecond, [2]int64{4, 8}, time.Hour},
		// reads at 0, 10, 30, 70, 150, then every 100 ms: 11 in 800 ms
		{"up to 100ms", 100 * time.Millisecond, 800 * time.Millisecond, [2]int64{6, 12}, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stor := newStallingStorage(dir)
			r, u := onDemandRing(t, dir, stor, every, tc.check)
			stor.loads.Store(0)

			var calls atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range 16 {
				wg.Go(func() {
					pace := time.NewTicker(time.Millisecond) // a steady stream, not a CPU hog
					defer pace.Stop()
					for time.Since(start) < tc.flood {
						u.ReadOnDemand()
						calls.Add(1)
						<-pace.C
					}
				})
			}
			wg.Wait()
			reads := stor.loads.Load()
			r.onDemand.mu.Lock()
			gap := r.onDemand.gap
			r.onDemand.mu.Unlock()
			t.Logf("%d requests with unknown keys in %v: %d storage reads, spacing now %v", calls.Load(), time.Since(start).Round(time.Millisecond), reads, gap)
			if reads < tc.reads[0] || reads > tc.reads[1] {
				t.Errorf("%d storage reads, want %d to %d", reads, tc.reads[0], tc.reads[1])
			}
			if want := min(tc.spacingCap, 64*every); gap < want/2 || gap > tc.spacingCap {
				t.Errorf("spacing %v after the flood, want it doubled up to %v", gap, tc.spacingCap)
			}

			added := addSecret(t, dir, "rotated in elsewhere")
			deadline := time.Now().Add(5 * time.Second)
			for !u.ReadOnDemand() || !inUse(r, added) {
				if time.Now().After(deadline) {
					t.Fatal("the new secret never came into use")
				}
			}
			// a read the last requests scheduled may run (and find nothing new) after the one
			// that found the secret: the spacing is back to every, or one doubling of it
			r.onDemand.mu.Lock()
			next := r.onDemand.next
			r.onDemand.mu.Unlock()
			if next != nil {
				<-next.done
			}
			r.onDemand.mu.Lock()
			gap = r.onDemand.gap
			r.onDemand.mu.Unlock()
			if gap > 2*every {
				t.Errorf("spacing %v after a read found a new secret, want it reset to %v", gap, every)
			}
		})
	}
}
