package signedcookies

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// testRing is a shared ring over a file_system storage with a clock the test moves, and one
// user per (check, keep) given.
func testRing(t testing.TB, stor certmagic.Storage, now *time.Time, uses ...ringUse) *sharedRing {
	t.Helper()
	sr := newSharedRing("test", stor, zap.NewNop())
	sr.now = func() time.Time { return *now }
	for i := range uses {
		u := uses[i]
		u.sr = sr
		if err := sr.join(context.Background(), &u); err != nil {
			t.Fatal(err)
		}
	}
	return sr
}

func mustSync(t testing.TB, sr *sharedRing) {
	t.Helper()
	if _, err := sr.sync(context.Background(), true); err != nil {
		t.Fatal(err)
	}
}

func storedRing(t testing.TB, stor certmagic.Storage) *keyRingFile {
	t.Helper()
	f, err := readRing(context.Background(), stor)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// The storage key ring on its own: created on first sync, a rotated-in secret signs only
// after two check intervals, pruning by the longest lifetime any sharer asked for, and the
// size cap.
func TestStoredKeyRingLifecycle(t *testing.T) {
	stor := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	long := testRing(t, stor, &now, ringUse{rotate: time.Hour, check: time.Minute, keep: 30 * 24 * time.Hour})
	short := testRing(t, stor, &now, ringUse{rotate: time.Hour, check: time.Minute, keep: time.Hour})

	mustSync(t, long)
	first := storedRing(t, stor)
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
	for i := 0; i < maxStoredSecrets+10; i++ {
		now = now.Add(time.Hour)
		mustSync(t, long)
	}
	f = storedRing(t, stor)
	if len(f.Secrets) != maxStoredSecrets {
		t.Errorf("ring holds %d secrets, want the cap %d", len(f.Secrets), maxStoredSecrets)
	}
}
