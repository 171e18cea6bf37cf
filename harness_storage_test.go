// Storage modules for the key ring's bad days, registered in the test binary only (the Caddy
// processes of asProcess are this binary too): test_failing, a file_system whose writes fail as
// on a read-only or full disk (chmod cannot make one for a test running as root), and
// test_slow, a file_system whose reads are slowed, or held until the test lets them go, deaf
// to their context as some storage modules are.

package signedcookies

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
)

func init() {
	caddy.RegisterModule(failingStorage{})
	caddy.RegisterModule(slowStorage{})
}

// failingStorage is `storage test_failing <root> readonly|full [<read delay>]`: file_system at
// root whose lock and store fail as on a read-only file system (EROFS), or whose store fails
// as on a full disk (ENOSPC; a lock file is small enough to fit), and whose loads take the
// read delay, if any, more.
type failingStorage struct {
	Root      string         `json:"root"`
	Fail      string         `json:"fail"`
	ReadDelay caddy.Duration `json:"read_delay,omitempty"`
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
	if d.NextArg() {
		delay, err := caddy.ParseDuration(d.Val())
		if err != nil {
			return d.Errf("read delay: %v", err)
		}
		s.ReadDelay = caddy.Duration(delay)
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

func (s *failingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	time.Sleep(time.Duration(s.ReadDelay))
	return s.FileStorage.Load(ctx, key)
}

func (s *failingStorage) String() string { return "test_failing:" + s.Fail + ":" + s.Root }

// slowStorage is `storage test_slow <root> <gate>`: file_system at root whose Load waits for
// the gate of that name (see storageGate), ignoring its context. It is no *FileStorage, so the
// key ring reads it with Stat and Load, as any other storage module.
type slowStorage struct {
	Root string `json:"root"`
	Gate string `json:"gate"`
	certmagic.FileStorage
	gate *storageGate
}

func (slowStorage) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "caddy.storage.test_slow", New: func() caddy.Module { return new(slowStorage) }}
}

func (s *slowStorage) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.Args(&s.Root, &s.Gate) {
		return d.ArgErr()
	}
	return nil
}

func (s *slowStorage) CertMagicStorage() (certmagic.Storage, error) {
	g, ok := storageGates.Load(s.Gate)
	if !ok {
		return nil, fmt.Errorf("test_slow: no gate %q", s.Gate)
	}
	s.FileStorage.Path, s.gate = s.Root, g.(*storageGate)
	return s, nil
}

func (s *slowStorage) Load(ctx context.Context, key string) ([]byte, error) {
	defer s.gate.pass()()
	return s.FileStorage.Load(ctx, key)
}

func (s *slowStorage) String() string { return "test_slow:" + s.Root }

// storageGates are the gates of test_slow storages, by name.
var storageGates sync.Map

// storageGate holds the loads of a test_slow storage while closed (hold, release), delays
// them by delay when open, and counts them.
type storageGate struct {
	mu       sync.Mutex
	open     chan struct{} // closed while the gate is open
	delay    atomic.Int64  // a time.Duration
	loads    atomic.Int64  // started
	inFlight atomic.Int64  // started and not returned
}

// newStorageGate makes an open gate with no delay, for the test's duration, and names it.
func newStorageGate(t testing.TB) (string, *storageGate) {
	g := &storageGate{open: make(chan struct{})}
	close(g.open)
	name := fmt.Sprint("gate-", gateNames.Add(1))
	storageGates.Store(name, g)
	t.Cleanup(func() {
		g.release()
		storageGates.Delete(name)
	})
	return name, g
}

var gateNames atomic.Int64

func (g *storageGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
		g.open = make(chan struct{})
	default:
	}
}

func (g *storageGate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

// pass lets a load through once the gate is open and its delay has passed; done is called when
// it returns.
func (g *storageGate) pass() (done func()) {
	g.loads.Add(1)
	g.inFlight.Add(1)
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	<-open
	time.Sleep(time.Duration(g.delay.Load())) // the latency injected
	return func() { g.inFlight.Add(-1) }
}

// Interface guards
var (
	_ caddy.StorageConverter = (*failingStorage)(nil)
	_ caddyfile.Unmarshaler  = (*failingStorage)(nil)
	_ caddy.StorageConverter = (*slowStorage)(nil)
	_ caddyfile.Unmarshaler  = (*slowStorage)(nil)
)
