// The shared ring with a clock the test moves: creation, rotation, merges, restores, a
// damaged ring, storage that does not take writes, and memory bounds.

package keyring

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// testRing is a shared ring over a storage with a clock the test moves, and one use per
// settings given.
func testRing(t testing.TB, stor certmagic.Storage, now *time.Time, uses ...Use) *Ring {
	t.Helper()
	return testRingLog(t, stor, now, zap.NewNop(), uses...)
}

// testRingLog is testRing logging to logger.
func testRingLog(t testing.TB, stor certmagic.Storage, now *time.Time, logger *zap.Logger, uses ...Use) *Ring {
	t.Helper()
	sr := New(stor, Options{Logger: logger})
	sr.now = func() time.Time { return *now }
	t.Cleanup(func() { _ = sr.Destruct() })
	for i := range uses {
		if err := sr.Join(context.Background(), &uses[i]); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

func mustSync(t testing.TB, sr *Ring) {
	t.Helper()
	if writeErr, err := sr.sync(context.Background(), true); err != nil || writeErr != nil {
		t.Fatal(cmp.Or(err, writeErr))
	}
}

// The storage key ring on its own: created on first sync, a rotated-in secret signs only
// after two check intervals, pruning by the longest lifetime any sharer asked for, and the
// size cap.
func TestStoredKeyRingLifecycle(t *testing.T) {
	stor := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	long := testRing(t, stor, &now, Use{Rotate: time.Hour, Check: time.Minute, Keep: 30 * 24 * time.Hour})
	mustSync(t, long)
	first := storedRing(t, stor)
	// joins the stored ring (one that joined before it was stored would keep its own
	// candidate beside it: see TestCandidateRingStored)
	short := testRing(t, stor, &now, Use{Rotate: time.Hour, Check: time.Minute, Keep: time.Hour})

	if len(first.Secrets) != 1 || long.order[0] != first.Secrets[0].Secret {
		t.Fatalf("a new ring should have one secret, signing at once: %+v", first)
	}

	now = now.Add(time.Hour) // due
	mustSync(t, short)
	f := storedRing(t, stor)
	if len(f.Secrets) != 2 {
		t.Fatalf("want a rotation, got %d secrets", len(f.Secrets))
	}
	if short.order[0] != first.Secrets[0].Secret {
		t.Error("the new secret signs before the others could have read it")
	}
	now = now.Add(2*time.Minute + 2*time.Second)
	mustSync(t, short)
	if short.order[0] != f.Secrets[0].Secret {
		t.Error("the new secret does not sign after two check intervals")
	}
	if f.Keep != 30*24*time.Hour {
		t.Errorf("stored keep %v, want the longest asked for (30 days)", f.Keep)
	}

	// Rotations by the short-lived sharer must not prune what the long-lived one needs.
	for i := 0; i < 5; i++ {
		now = now.Add(time.Hour)
		mustSync(t, short)
	}
	f = storedRing(t, stor)
	if f.Secrets[len(f.Secrets)-1].Secret != first.Secrets[0].Secret {
		t.Errorf("the first secret was pruned after %d hours although cookies signed with it live 30 days", 5)
	}

	// Whatever the intervals, the ring stays bounded.
	for i := 0; i < MaxSecrets+10; i++ {
		now = now.Add(time.Hour)
		mustSync(t, long)
	}
	f = storedRing(t, stor)
	if len(f.Secrets) != MaxSecrets {
		t.Errorf("ring holds %d secrets, want the cap %d", len(f.Secrets), MaxSecrets)
	}
}

// The candidate ring a process makes when it finds none at Provision is the ring stored when
// its config starts; when another process stored one first, the candidate (with which the
// first process may already have signed) is stored beside it, verify-only.
func TestCandidateRingStored(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour}

	t.Run("alone", func(t *testing.T) {
		stor := &certmagic.FileStorage{Path: t.TempDir()}
		sr := testRing(t, stor, &now, use)
		candidate := sr.order[0]
		if err := sr.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := sr.Destruct(); err != nil {
				t.Error(err)
			}
		})
		if got := secretsOf(storedRing(t, stor)); !slices.Equal(got, []string{candidate}) || sr.order[0] != candidate {
			t.Fatalf("stored %d secrets, signing with the candidate: %v; want just the candidate, which signs", len(got), sr.order[0] == candidate)
		}
	})
	t.Run("another stored first", func(t *testing.T) {
		stor := &certmagic.FileStorage{Path: t.TempDir()}
		a := testRing(t, stor, &now, use)
		b := testRing(t, stor, &now, use) // both found no ring
		mustSync(t, a)
		mustSync(t, b)
		f := storedRing(t, stor)
		if got := secretsOf(f); len(got) != 2 || got[0] != a.order[0] || got[1] != b.file.Secrets[1].Secret {
			t.Fatalf("stored %v, want a's candidate then b's", got)
		}
		if f.Secrets[1].Retired.IsZero() || b.order[0] != a.order[0] || !slices.Contains(b.order, f.Secrets[1].Secret) {
			t.Errorf("b's candidate should verify only (retired %v), and b sign with the stored signer", f.Secrets[1].Retired)
		}
	})
}

// A ring deleted under a running instance: a new instance makes a fresh ring, the running one
// adds the secrets it knows to it (they verify everywhere, the fresh one signs everywhere),
// and a running instance that finds no ring at all puts back what it holds.
func TestKeyRingDeletedMerge(t *testing.T) {
	dir := t.TempDir()
	stor := &certmagic.FileStorage{Path: dir}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour}
	a := testRing(t, stor, &now, use)
	mustSync(t, a)
	a1 := a.order[0]
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(StorageKey))); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	b := testRing(t, stor, &now, use)
	mustSync(t, b)
	b1 := b.order[0]
	now = now.Add(time.Second)
	mustSync(t, a)
	if got := secretsOf(storedRing(t, stor)); !slices.Equal(got, []string{b1, a1}) {
		t.Fatalf("stored %v, want the fresh secret then the one the running instance knows", got)
	}
	mustSync(t, b)
	for name, sr := range map[string]*Ring{"running": a, "new": b} {
		if sr.order[0] != b1 || !slices.Contains(sr.order, a1) {
			t.Errorf("%s instance: signs with the fresh secret %v, knows the old one %v", name, sr.order[0] == b1, slices.Contains(sr.order, a1))
		}
	}
	if err := os.Remove(filepath.Join(dir, filepath.FromSlash(StorageKey))); err != nil {
		t.Fatal(err)
	}
	mustSync(t, a)
	if got := secretsOf(storedRing(t, stor)); !slices.Equal(got, []string{b1, a1}) {
		t.Errorf("restored %v, want what the running instance used", got)
	}
}

// A rotated-in secret signs only after two of the slowest sharer's re-read intervals, the
// sharers' longest interval is recorded in storage, and no rotation is made while the newest
// secret still waits to sign.
func TestMixedCheckIntervals(t *testing.T) {
	stor := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fast := testRing(t, stor, &now, Use{Rotate: 3 * time.Second, Check: 200 * time.Millisecond, Keep: time.Hour})
	mustSync(t, fast)
	slow := testRing(t, stor, &now, Use{Rotate: time.Hour, Check: 3 * time.Second, Keep: time.Hour})
	mustSync(t, slow)
	if f := storedRing(t, stor); f.CheckInterval != 3*time.Second {
		t.Fatalf("stored check_interval %v, want the slowest sharer's 3s", f.CheckInterval)
	}
	now = now.Add(3 * time.Second)
	mustSync(t, fast)
	f := storedRing(t, stor)
	if len(f.Secrets) != 2 {
		t.Fatalf("want a rotation, got %d secrets", len(f.Secrets))
	}
	if wait := f.Secrets[0].Active.Sub(now); wait < 2*3*time.Second+onDemandEvery {
		t.Errorf("the new secret signs %v after its rotation, want at least two of the slow sharer's intervals and the on-demand margin", wait)
	}
	for now = now.Add(time.Second); now.Before(f.Secrets[0].Active); now = now.Add(time.Second) {
		mustSync(t, fast)
		if n := len(storedRing(t, stor).Secrets); n != 2 {
			t.Fatalf("%d secrets: rotated again while the newest still waits to sign", n)
		}
		if fast.order[0] == f.Secrets[0].Secret {
			t.Fatal("signs with the new secret before its time")
		}
	}
	mustSync(t, fast)
	if fast.order[0] != f.Secrets[0].Secret {
		t.Error("the new secret does not sign once active")
	}
}

// A ring that records no check_interval was written by 0.1.0 (it records none, and rewrites
// the ring without one when it rotates): its instances re-read every minute by default, so a
// secret this release rotates in waits for two of those re-reads, not two of its own.
func TestUnrecordedCheckInterval(t *testing.T) {
	dir := t.TempDir()
	stor := &certmagic.FileStorage{Path: dir}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeRingFile(t, dir, File{Version: Version, Keep: time.Hour, Secrets: []Secret{
		{Secret: fixedSecret("written by 0.1.0"), Created: now.Add(-time.Hour)},
	}})
	fast := testRing(t, stor, &now, Use{Rotate: 3 * time.Second, Check: time.Second, Keep: time.Hour})
	mustSync(t, fast)
	f := storedRing(t, stor)
	if f.CheckInterval != UnrecordedCheckInterval {
		t.Fatalf("stored check_interval %v, want 0.1.0's default %v", f.CheckInterval, UnrecordedCheckInterval)
	}
	if len(f.Secrets) != 2 {
		t.Fatalf("want a rotation (the stored secret is an hour old), got %d secrets", len(f.Secrets))
	}
	if wait := f.Secrets[0].Active.Sub(now); wait < 2*UnrecordedCheckInterval {
		t.Errorf("the new secret signs %v after its rotation, want at least two of 0.1.0's re-reads", wait)
	}

	// A ring this release made records its maker's interval, however short.
	dir = t.TempDir()
	stor = &certmagic.FileStorage{Path: dir}
	own := testRing(t, stor, &now, Use{Rotate: time.Hour, Check: time.Second, Keep: time.Hour})
	mustSync(t, own)
	if got := storedRing(t, stor).CheckInterval; got != time.Second {
		t.Errorf("a fresh ring records check_interval %v, want its maker's 1s", got)
	}
}

// A newest secret dated in the future (a clock that jumped) does not stall rotation: it is
// logged once, and rotation counts from when this process first saw it.
func TestFutureDatedSecret(t *testing.T) {
	dir := t.TempDir()
	stor := &certmagic.FileStorage{Path: dir}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	future, old := fixedSecret("future"), fixedSecret("old")
	writeRingFile(t, dir, File{Version: Version, Keep: 24 * time.Hour, CheckInterval: time.Minute, Secrets: []Secret{
		{Secret: future, Created: now.AddDate(1, 0, 0)},
		{Secret: old, Created: now.AddDate(0, 0, -2), Retired: now.AddDate(1, 0, 0)},
	}})
	logger, logs := observed()
	sr := testRingLog(t, stor, &now, logger, Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour})
	for i := 0; i < 59; i++ {
		mustSync(t, sr)
		now = now.Add(time.Minute)
	}
	if n := len(storedRing(t, stor).Secrets); n != 2 {
		t.Fatalf("rotated before an interval from first seen: %d secrets", n)
	}
	if sr.order[0] != future {
		t.Error("the future-dated secret should sign until the rotation")
	}
	now = now.Add(time.Minute) // an hour since first seen
	mustSync(t, sr)
	f := storedRing(t, stor)
	if len(f.Secrets) != 3 || f.Secrets[0].Created != now {
		t.Fatalf("no rotation an interval after first seeing the future-dated secret: %d secrets", len(f.Secrets))
	}
	warned := logs.FilterMessageSnippet("dated in the future").AllUntimed()
	if len(warned) != 1 || warned[0].Level != zap.WarnLevel {
		t.Errorf("want one warning about the future-dated secret, got %d: %v", len(warned), warned)
	}
	if !slices.Contains(sr.order, future) {
		t.Error("the future-dated secret no longer verifies")
	}
}

// A damaged ring is never written: not by a running instance whose ticks find a rotation
// due, not by a new one that fails to start. The running one keeps the keys it had.
func TestDamagedKeyRingNotRewritten(t *testing.T) {
	dir := t.TempDir()
	stor := &certmagic.FileStorage{Path: dir}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour}
	logger, logs := observed()
	running := testRingLog(t, stor, &now, logger, use)
	mustSync(t, running)
	keys := slices.Clone(running.order)

	s := running.order[0]
	damaged := writeRingFile(t, dir, File{Version: Version, Keep: 24 * time.Hour, Secrets: []Secret{
		{Secret: s, Created: now.Add(-48 * time.Hour)}, // due for rotation
		{Secret: fixedSecret("another"), Created: now.Add(-72 * time.Hour)},
		{Secret: s, Created: now.Add(-96 * time.Hour)},
	}})
	for range 5 {
		now = now.Add(time.Minute)
		running.tick(context.Background())
		if !slices.Equal(running.order, keys) {
			t.Fatal("the running instance changed its keys after reading a damaged ring")
		}
	}
	now = now.Add(2 * time.Hour)
	running.tick(context.Background())
	if err := running.Start(); err == nil || !strings.Contains(err.Error(), "secret 3 duplicates secret 1") {
		t.Errorf("a config start on a damaged ring: %v", err)
	}
	if got := logs.FilterMessageSnippet("key ring refresh failed").AllUntimed(); len(got) == 0 || !strings.Contains(fmt.Sprint(got[0].ContextMap()["error"]), "secret 3 duplicates secret 1; move it away") {
		t.Errorf("the running instance logged %v", got)
	}
	if err := New(stor, Options{}).Join(context.Background(), &Use{}); err == nil || !strings.Contains(err.Error(), "duplicates") {
		t.Errorf("a new instance joined a damaged ring: %v", err)
	}
	if !bytes.Equal(ringFileBytes(t, dir), damaged) {
		t.Error("the damaged ring was rewritten")
	}
}

// A write storage does not take (a lock that cannot be taken, a store that fails as on a
// read-only or full disk) fails nothing: the start succeeds, the keys in memory stay in use,
// the error is logged once however many re-reads retry it, counted at each, and the write
// goes through at the first re-read once storage takes it.
func TestStorageWriteFailures(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour}
	lockErr := errors.New("dial tcp 10.0.0.7:6379: connect: connection refused")
	fullErr := &fs.PathError{Op: "write", Path: "keyring.json", Err: syscall.ENOSPC}
	for _, tc := range []struct {
		name          string
		ring          bool // a ring is stored (due for rotation), or none
		lock, store   error
		want, message string
	}{
		{"lock, rotation due", true, lockErr, nil, `taking the storage lock "signed_cookies_keyring": ` + lockErr.Error(), "key ring update not stored; keeping the keys in use"},
		{"full, rotation due", true, nil, fullErr, "storing the key ring: write keyring.json: no space left on device", "key ring update not stored; keeping the keys in use"},
		{"lock, no ring", false, lockErr, nil, `taking the storage lock "signed_cookies_keyring": ` + lockErr.Error(), "no key ring in storage, and storing one failed: signing with a key ring held in memory only"},
		{"full, no ring", false, nil, fullErr, "no space left on device", "no key ring in storage, and storing one failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			stor := &countingStorage{Storage: &certmagic.FileStorage{Path: dir}, lockErr: tc.lock, storeErr: tc.store}
			if tc.ring {
				writeRingFile(t, dir, File{Version: Version, Keep: use.Keep, CheckInterval: use.Check, Secrets: []Secret{{Secret: testSecret, Created: now.Add(-2 * time.Hour)}}})
			}
			var counted []string
			logger, logs := observed()
			sr := New(stor, Options{Logger: logger, OnError: func(op string) { counted = append(counted, op) }})
			sr.now = func() time.Time { return now }
			t.Cleanup(func() { _ = sr.Destruct() })
			u := use
			if err := sr.Join(context.Background(), &u); err != nil {
				t.Fatal(err)
			}
			keys := slices.Clone(sr.order)
			if err := sr.Start(); err != nil {
				t.Fatalf("the start failed: %v", err)
			}
			for range 3 {
				sr.tick(context.Background())
			}
			got := logs.FilterMessageSnippet(tc.message).AllUntimed()
			if len(got) != 1 || got[0].Level != zap.ErrorLevel || !strings.Contains(fmt.Sprint(got[0].ContextMap()["error"]), tc.want) {
				t.Errorf("logged %v, want one error saying %q", logs.AllUntimed(), tc.want)
			}
			op := map[bool]string{true: "lock", false: "store"}[tc.lock != nil]
			if len(counted) != 4 || slices.ContainsFunc(counted, func(s string) bool { return s != op }) {
				t.Errorf("counted %v, want %q at the start and at each of 3 re-reads", counted, op)
			}
			if !slices.Equal(sr.order, keys) {
				t.Error("the keys in use changed")
			}

			stor.lockErr, stor.storeErr = nil, nil // storage takes writes again
			sr.tick(context.Background())
			f := storedRing(t, stor)
			if tc.ring && len(f.Secrets) != 2 || !tc.ring && !slices.Equal(secretsOf(f), keys) {
				t.Errorf("once storage takes writes: stored %d secrets, want the rotation or the ring in memory", len(f.Secrets))
			}
			if logs.FilterMessageSnippet("storage takes the key ring again").Len() != 1 {
				t.Error("the recovery was not logged")
			}
		})
	}

	// A stored ring that needs no write: nothing is locked or stored at all.
	dir := t.TempDir()
	stor := &countingStorage{Storage: &certmagic.FileStorage{Path: dir}, lockErr: lockErr, storeErr: fullErr}
	writeRingFile(t, dir, File{Version: Version, Keep: use.Keep, CheckInterval: use.Check, Secrets: []Secret{{Secret: testSecret, Created: now}}})
	sr := testRing(t, stor, &now, use)
	if err := sr.Start(); err != nil {
		t.Fatal(err)
	}
	sr.tick(context.Background())
	if stor.locks.Load() != 0 || stor.stores.Load() != 0 {
		t.Errorf("a ring that needs no write: %d locks, %d stores", stor.locks.Load(), stor.stores.Load())
	}
}

// A process re-reads as often as its handlers ask, and at least as often as the stored ring
// says the slowest sharer does: more often only while it could not record its own interval.
func TestPace(t *testing.T) {
	for _, tc := range []struct {
		name          string
		stored, check time.Duration
		want          time.Duration
	}{
		{"its interval recorded", time.Hour, time.Minute, time.Minute},
		{"a slower sharer's recorded", time.Hour, 10 * time.Minute, 10 * time.Minute},
		{"its slower interval not recorded", time.Minute, time.Hour, time.Minute},
		{"nothing recorded", 0, time.Hour, time.Hour},
	} {
		dir := t.TempDir()
		now := time.Now()
		writeRingFile(t, dir, File{Version: Version, CheckInterval: tc.stored, Secrets: []Secret{{Secret: testSecret, Created: now}}})
		r := testRing(t, &certmagic.FileStorage{Path: dir}, &now, Use{Rotate: 30 * 24 * time.Hour, Check: tc.check, Keep: time.Hour})
		if got := r.pace(); got != tc.want {
			t.Errorf("%s: re-reads every %v, want %v", tc.name, got, tc.want)
		}
	}
}

// However many secrets go through a ring, what a process holds stays bounded.
func TestKeyRingMemoryBounded(t *testing.T) {
	stor := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	logger, logs := observed()
	sr := testRingLog(t, stor, &now, logger, Use{Rotate: time.Hour, Check: time.Second, Keep: 365 * 24 * time.Hour})
	for range 2*MaxSecrets + 10 {
		mustSync(t, sr)
		now = now.Add(time.Hour)
	}
	if len(sr.known) > 2*MaxSecrets || len(sr.order) > MaxSecrets || len(storedRing(t, stor).Secrets) > MaxSecrets {
		t.Errorf("holds %d secrets, uses %d, stores %d", len(sr.known), len(sr.order), len(storedRing(t, stor).Secrets))
	}
	if logs.FilterMessageSnippet("key ring full").Len() == 0 {
		t.Error("dropping secrets whose cookies may still be valid was not logged")
	}
}
