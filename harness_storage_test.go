// Storage modules for the key ring's bad days, registered in the test binary only (the Caddy
// processes of asProcess are this binary too): test_failing, a file_system whose writes fail as
// on a read-only or full disk (chmod cannot make one for a test running as root).

package signedcookies

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
)

func init() {
	caddy.RegisterModule(failingStorage{})
}

// failingStorage is `storage test_failing <root> readonly|full`: file_system at root whose
// lock and store fail as on a read-only file system (EROFS), or whose store fails as on a full
// disk (ENOSPC; a lock file is small enough to fit).
type failingStorage struct {
	Root string `json:"root"`
	Fail string `json:"fail"`
	certmagic.FileStorage
}

func (failingStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.test_failing", New: func() caddy.Module { return new(failingStorage) }}
}

func (s *failingStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.Args(&s.Root, &s.Fail) {
		return d.ArgErr()
	}
	return nil
}

func (s *failingStorage) CertMagicStorage() (certmagic.Storage, error) {
	if s.Fail != "readonly" && s.Fail != "full" {
		return nil, fmt.Errorf("test_failing: fail %q, want readonly or full", s.Fail)
	}
	s.FileStorage.Path = s.Root
	return s, nil
}

func (s *failingStorage) err(op, key string) error {
	errno := map[string]error{"readonly": syscall.EROFS, "full": syscall.ENOSPC}[s.Fail]
	return &fs.PathError{Op: op, Path: filepath.Join(s.Root, filepath.FromSlash(key)), Err: errno}
}

func (s *failingStorage) Lock(ctx context.Context, name string) error {
	if s.Fail == "readonly" {
		return fmt.Errorf("creating lock file: %w", s.err("open", "locks/"+name+".lock"))
	}
	return s.FileStorage.Lock(ctx, name)
}

func (s *failingStorage) Store(_ context.Context, key string, _ []byte) error {
	return s.err("write", key)
}

func (s *failingStorage) String() string { return "test_failing:" + s.Fail + ":" + s.Root }

// Interface guards
var (
	_ caddy.StorageConverter = (*failingStorage)(nil)
	_ caddyfile.Unmarshaler  = (*failingStorage)(nil)
)
