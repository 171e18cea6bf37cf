package signedcookies

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// The storage key ring on its own, with a clock the test moves: activation after rotation,
// pruning by the longest lifetime any sharer asked for, and the size cap.
func TestStoredKeyRingLifecycle(t *testing.T) {
	ctx := context.Background()
	stor := &certmagic.FileStorage{Path: t.TempDir()}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	long := newStoredKeys(stor, "", time.Hour, time.Minute, 30*24*time.Hour, zap.NewNop())
	short := newStoredKeys(stor, "", time.Hour, time.Minute, time.Hour, zap.NewNop())
	long.now, short.now = clock, clock

	if _, err := long.load(ctx); err != nil {
		t.Fatal(err)
	}
	first, _ := long.read(ctx)
	if len(first.Secrets) != 1 || long.order(first)[0] != first.Secrets[0].Secret {
		t.Fatalf("a new ring should have one secret, signing at once: %+v", first)
	}

	now = now.Add(time.Hour) // due
	if _, err := short.load(ctx); err != nil {
		t.Fatal(err)
	}
	f, _ := short.read(ctx)
	if len(f.Secrets) != 2 {
		t.Fatalf("want a rotation, got %d secrets", len(f.Secrets))
	}
	if got := short.order(f)[0]; got != first.Secrets[0].Secret {
		t.Error("the new secret signs before the others could have read it")
	}
	now = now.Add(2*time.Minute + 2*time.Second)
	if got := short.order(f)[0]; got != f.Secrets[0].Secret {
		t.Error("the new secret does not sign after two check intervals")
	}
	if f.Keep != 30*24*time.Hour {
		t.Errorf("stored keep %v, want the longest asked for (30 days)", f.Keep)
	}

	// Rotations by the short-lived sharer must not prune what the long-lived one needs.
	for i := 0; i < 5; i++ {
		now = now.Add(time.Hour)
		if _, err := short.load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f, _ = short.read(ctx)
	if f.Secrets[len(f.Secrets)-1].Secret != first.Secrets[0].Secret {
		t.Errorf("the first secret was pruned after %d hours although cookies signed with it live 30 days", 5)
	}

	// Whatever the intervals, the ring stays bounded.
	for i := 0; i < maxStoredSecrets+10; i++ {
		now = now.Add(time.Hour)
		if _, err := long.load(ctx); err != nil {
			t.Fatal(err)
		}
	}
	f, _ = long.read(ctx)
	if len(f.Secrets) != maxStoredSecrets {
		t.Errorf("ring holds %d secrets, want the cap %d", len(f.Secrets), maxStoredSecrets)
	}
}
