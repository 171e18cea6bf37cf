// The storage key ring as a file in a file_system storage directory, read and written as
// another instance or an operator would, for the key ring, key and process tests.

package signedcookies

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

// readStoredRing reads the key ring object from a file_system storage directory.
func readStoredRing(t testing.TB, dir string) keyring.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey)))
	if err != nil {
		t.Fatal(err)
	}
	var f keyring.File
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func ringOf(t testing.TB, f keyring.File) *cookie.KeyRing {
	t.Helper()
	var s []string
	for _, x := range f.Secrets {
		s = append(s, x.Secret)
	}
	return mustRing(t, s...)
}

// awaitRing polls the storage in dir until its key ring satisfies cond.
func awaitRing(t testing.TB, dir, what string, cond func(keyring.File) bool) keyring.File {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var f keyring.File
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey)))
		if err == nil && json.Unmarshal(b, &f) == nil && len(f.Secrets) > 0 && cond(f) {
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stored key ring never got %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// signer names the stored secret that signed a visitor cookie ("" when none did).
func signer(t testing.TB, f keyring.File, vid string) string {
	t.Helper()
	d, err := cookie.NewCodec(ringOf(t, f), cookie.Options{}).Decode("vid", vid)
	if err != nil {
		return ""
	}
	return f.Secrets[d.Key].Secret
}

// writeRingFile stores f as the key ring of the file_system storage in dir, as another
// instance (or an operator) would.
func writeRingFile(t testing.TB, dir string, f keyring.File) []byte {
	t.Helper()
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	writeRingBytes(t, dir, b)
	return b
}

// writeRingBytes replaces the key ring object of the storage in dir by b, atomically.
func writeRingBytes(t testing.TB, dir string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(keyring.StorageKey))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
}

func ringFileBytes(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
