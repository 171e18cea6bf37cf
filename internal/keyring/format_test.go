// The stored format: reads bounded and checked whole, writes through symbolic links.

package keyring

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// A stored ring is refused, whole and at once, when it is too large, holds too many secrets,
// duplicates one (in any spelling) or is not a file, with a message saying what is wrong and
// what to do; a file larger than the bound is refused by its size, before it is read.
func TestKeyRingReadBounds(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ring := func(n int) File {
		f := File{Version: Version}
		for i := range n {
			f.Secrets = append(f.Secrets, Secret{Secret: fixedSecret(fmt.Sprint("bounds ", i)), Created: created})
		}
		return f
	}
	raw, err := cookie.ParseSecret(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	dup := ring(3)
	dup.Secrets[2].Secret = base64.RawURLEncoding.EncodeToString(raw)
	dup.Secrets[0].Secret = testSecret

	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"5000 secrets", func(t *testing.T, dir string) { writeRingFile(t, dir, ring(5000)) }, "bytes, more than a key ring can be (65536 at most): refusing to read it"},
		{"65 secrets", func(t *testing.T, dir string) { writeRingFile(t, dir, ring(65)) }, "65 secrets, want 1 to 64"},
		{"duplicate in another spelling", func(t *testing.T, dir string) { writeRingFile(t, dir, dup) }, "secret 3 duplicates secret 1"},
		{"300 MB", func(t *testing.T, dir string) {
			writeRingFile(t, dir, ring(1))
			if err := os.Truncate(filepath.Join(dir, filepath.FromSlash(StorageKey)), 300<<20); err != nil {
				t.Fatal(err)
			}
		}, "is 314572800 bytes, more than a key ring can be"},
		{"directory", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(StorageKey)), 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := Read(context.Background(), &certmagic.FileStorage{Path: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "move it away") {
				t.Fatalf("error %v, want one saying %q and what to do", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}

	// A storage other than file_system is asked the size first, and a large object not loaded.
	dir := t.TempDir()
	writeRingFile(t, dir, ring(1))
	stor := &countingStorage{Storage: &certmagic.FileStorage{Path: dir}, size: 300 << 20}
	if _, err := Read(context.Background(), stor); err == nil || !strings.Contains(err.Error(), "314572800 bytes") || stor.loads.Load() != 0 {
		t.Errorf("error %v after %d loads, want the size refused without loading", err, stor.loads.Load())
	}

	// the largest ring that may be stored loads, and its checks are quick
	dir = t.TempDir()
	writeRingFile(t, dir, ring(MaxSecrets))
	start := time.Now()
	if _, err := Read(context.Background(), &certmagic.FileStorage{Path: dir}); err != nil {
		t.Fatal(err)
	}
	t.Logf("a full ring (%d secrets) read and checked in %v", MaxSecrets, time.Since(start))
}

// A symbolic link keyring.json stays a link through rotations, its target holding the ring;
// a write through a link that resolves to nothing fails with a message saying so (a new
// instance starts on a ring held in memory, and says so), and leaves the link as it is.
func TestSymlinkedKeyRing(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	stor := &certmagic.FileStorage{Path: dir}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	use := Use{Rotate: time.Hour, Check: time.Minute, Keep: 24 * time.Hour}
	link := filepath.Join(dir, filepath.FromSlash(StorageKey))
	target := filepath.Join(elsewhere, "keyring.json")
	writeRingFile(t, elsewhere, File{}) // makes the directories
	b := writeRingFile(t, dir, File{Version: Version, Secrets: []Secret{{Secret: testSecret, Created: now}}})
	if err := os.WriteFile(target, b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	sr := testRing(t, stor, &now, use)
	now = now.Add(time.Hour)
	mustSync(t, sr)
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("keyring.json is no longer a symbolic link (%v)", err)
	}
	b, err = os.ReadFile(target)
	if err != nil {
		t.Fatal(err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("the link's target: %v", err)
	}
	if len(f.Secrets) != 2 || f.Secrets[1].Secret != testSecret {
		t.Fatalf("the link's target does not hold the rotated ring: %d secrets", len(f.Secrets))
	}
	if fi, err := os.Stat(target); err != nil {
		t.Fatal(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("the target's permissions changed to %v", fi.Mode().Perm())
	}

	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	writeErr, err := sr.sync(context.Background(), true)
	if err != nil || writeErr == nil || !strings.Contains(writeErr.Error(), "is a symbolic link that does not resolve") {
		t.Errorf("restoring through a dangling link: %v, %v", writeErr, err)
	}
	logger, logs := observed()
	fresh := testRingLog(t, stor, &now, logger, use)
	if err := fresh.Start(); err != nil {
		t.Errorf("a new instance on a dangling link did not start: %v", err)
	}
	if got := logs.FilterMessageSnippet("no key ring in storage, and storing one failed").AllUntimed(); len(got) != 1 ||
		!strings.Contains(fmt.Sprint(got[0].ContextMap()["error"]), "storing the key ring: "+link+" is a symbolic link that does not resolve") {
		t.Errorf("a new instance on a dangling link logged %v", logs.AllUntimed())
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the dangling link was replaced")
	}
}

type bareStorage struct{ certmagic.Storage }

func TestStorageName(t *testing.T) {
	for _, tc := range []struct {
		s    certmagic.Storage
		want string
	}{
		{&certmagic.FileStorage{Path: "/var/lib/caddy"}, "FileStorage:/var/lib/caddy"},
		{&countingStorage{Storage: &certmagic.FileStorage{Path: "/x"}}, "counting storage"},
		{bareStorage{}, "keyring.bareStorage"},
		{&bareStorage{}, "*keyring.bareStorage"},
	} {
		if got := StorageName(tc.s); got != tc.want {
			t.Errorf("StorageName(%T) = %q, want %q", tc.s, got, tc.want)
		}
	}
}
