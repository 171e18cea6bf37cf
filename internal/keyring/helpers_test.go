// Test helpers: fixed secrets, a ring written as another instance (or an operator) would, and
// storages that count, fail or stall.

package keyring

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// fixedSecret is a 32-byte secret that looks random, the same on every run.
func fixedSecret(label string) string {
	sum := sha256.Sum256([]byte(label))
	return base64.StdEncoding.EncodeToString(sum[:])
}

var testSecret = fixedSecret("test secret")

// writeRingFile stores f as the key ring of the file_system storage in dir, atomically.
func writeRingFile(t testing.TB, dir string, f File) []byte {
	t.Helper()
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.FromSlash(StorageKey))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".tmp", p); err != nil {
		t.Fatal(err)
	}
	return b
}

func ringFileBytes(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(StorageKey)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func storedRing(t testing.TB, stor certmagic.Storage) *File {
	t.Helper()
	f, err := Read(context.Background(), stor)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func secretsOf(f *File) []string {
	var out []string
	for _, s := range f.Secrets {
		out = append(out, s.Secret)
	}
	return out
}

// observed is a logger whose entries the test reads.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(core), logs
}

// countingStorage counts the calls a key ring makes, and can make its lock or store fail.
type countingStorage struct {
	certmagic.Storage
	loads, stats, stores, locks atomic.Int64
	lockErr, storeErr           error
	size                        int64 // reported by Stat when not 0
}

func (s *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.loads.Add(1)
	return s.Storage.Load(ctx, key)
}

func (s *countingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	s.stats.Add(1)
	info, err := s.Storage.Stat(ctx, key)
	if err == nil && s.size != 0 {
		info.Size = s.size
	}
	return info, err
}

func (s *countingStorage) Store(ctx context.Context, key string, b []byte) error {
	s.stores.Add(1)
	if s.storeErr != nil {
		return s.storeErr
	}
	return s.Storage.Store(ctx, key, b)
}

func (s *countingStorage) Lock(ctx context.Context, name string) error {
	s.locks.Add(1)
	if s.lockErr != nil {
		return s.lockErr
	}
	return s.Storage.Lock(ctx, name)
}

func (s *countingStorage) String() string { return "counting storage" }
