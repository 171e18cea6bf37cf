// Package revoke answers how a cluster of Caddy instances revokes signed cookies before they
// expire: through one small file in the storage they share, beside the key ring. An entry
// names a subject (a visitor ID, a managed cookie's plain value, a Flask session's field, or
// a whole realm) and a time: what was signed at or before it no longer verifies. Writers take
// the storage lock and write the union of what storage and they hold; every instance re-reads
// the file on the key ring's schedule and keeps its last good copy when storage fails it. The
// request path asks a View, which answers from an immutable snapshot and costs one atomic
// load when the realm has no entry.
package revoke

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

const (
	// writeTimeout bounds one write (the lock included) and one re-read.
	writeTimeout = time.Minute
	// errorLogEvery is how often the same storage error is logged again.
	errorLogEvery = time.Minute
	// defaultEvery is how often a store with no use asking otherwise re-reads.
	defaultEvery = time.Minute
)

// ErrFull is the error of a revocation that would take the store past MaxEntries.
var ErrFull = errors.New("the revocation store is full")

// Options are what a Store reports to.
type Options struct {
	Logger *zap.Logger
	// OnError, when set, is called for every operation that failed ("read", "lock", "store",
	// "full"), to count it.
	OnError func(op string)
	// OnChange, when set, is called with the number of entries in force whenever this
	// process's copy was read or written.
	OnChange func(entries int)
}

// Store is the revocations of one storage in a process, shared by every handler using that
// storage and outliving config reloads.
type Store struct {
	storage  certmagic.Storage
	logger   *zap.Logger
	onError  func(op string)
	onChange func(int)
	now      func() time.Time
	life     context.Context // ends with Destruct
	end      context.CancelFunc

	writeMu sync.Mutex // one write at a time in this process; the storage lock is for the others

	mu      sync.Mutex // guards what follows
	file    *File      // the last good copy: what storage held, with what this process wrote
	views   map[string]*View
	uses    map[*Use]struct{}
	started bool
	lastErr string
	lastAt  time.Time
}

// Use is one handler's use of a store: the view of its realm, and how often it asks for a
// re-read.
type Use struct {
	View  *View
	every time.Duration
	store *Store
}

// New is the store of stor; it reads nothing until a handler joins it or Add writes.
func New(stor certmagic.Storage, o Options) *Store {
	s := &Store{storage: stor, logger: o.Logger, onError: o.OnError, onChange: o.OnChange, now: time.Now,
		views: map[string]*View{}, uses: map[*Use]struct{}{}}
	if s.logger == nil {
		s.logger = zap.NewNop()
	}
	s.life, s.end = context.WithCancel(context.Background())
	return s
}

// Join adds a use of realm's revocations, re-read every every (0: a minute). The first use
// reads storage: a store that cannot be read, or is damaged, fails it (with no copy in
// memory, serving would let revoked cookies back in), and a missing one is empty. It only
// reads, so that validating a config has no side effects.
func (s *Store) Join(ctx context.Context, realm string, every time.Duration) (*Use, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.file == nil {
		f, err := Read(ctx, s.storage, s.now())
		switch {
		case errors.Is(err, fs.ErrNotExist):
			f = &File{Version: Version}
		case err != nil:
			s.count("read")
			return nil, fmt.Errorf("revocations in storage: %v", err)
		}
		s.file = f
		s.publish()
	}
	v := s.views[realm]
	if v == nil {
		v = &View{realm: realm}
		s.views[realm] = v
		v.cur.Store(buildSet(s.file.Realms[realm], s.now()))
	}
	u := &Use{View: v, every: every, store: s}
	s.uses[u] = struct{}{}
	return u, nil
}

// Leave ends the use; the store keeps running until Destruct.
func (u *Use) Leave() {
	u.store.mu.Lock()
	defer u.store.mu.Unlock()
	delete(u.store.uses, u)
}

// Start starts the re-reads, once.
func (s *Store) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		go s.run(s.life)
	}
}

// Destruct stops the re-reads; a caddy.UsagePool calls it when the last handler using the
// store is unloaded.
func (s *Store) Destruct() error {
	s.end()
	return nil
}

// Storage is the storage the store keeps its file in.
func (s *Store) Storage() certmagic.Storage { return s.storage }

// pace is how often the store re-reads: as often as its most demanding use asks. s.mu held.
func (s *Store) pace() time.Duration {
	every := time.Duration(0)
	for u := range s.uses {
		if u.every > 0 && (every == 0 || u.every < every) {
			every = u.every
		}
	}
	if every == 0 {
		every = defaultEvery
	}
	return every
}

func (s *Store) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		every := s.pace()
		s.mu.Unlock()
		t.Reset(every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Reread(ctx)
	}
}

// Reread reads storage and takes what it holds into use. A store that cannot be read or is
// damaged leaves the copy in memory in use (logged and counted); one that lacks entries this
// process holds (deleted, or an older copy put back) is written again, under the lock, with
// them. A panic is logged, not fatal.
func (s *Store) Reread(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("revocation store re-read panicked; keeping the revocations in memory", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	now := s.now()
	f, err := Read(ctx, s.storage, now)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		if ctx.Err() != nil && s.life.Err() != nil {
			return
		}
		s.count("read")
		s.mu.Lock()
		s.logError("revocation store re-read failed; keeping the revocations in memory", err, zap.Int("entries", s.file.Count()))
		s.mu.Unlock()
		return
	}
	s.mu.Lock()
	if covers(f, s.file, now) {
		if f == nil {
			f = &File{Version: Version}
		}
		s.file, _ = Merge(now, f)
		s.lastErr = ""
		s.publish()
		s.mu.Unlock()
		return
	}
	held := s.file.Count()
	s.mu.Unlock()
	s.logger.Warn("the revocation store in storage lacks revocations this instance holds (deleted, or an older copy put back); storing them again",
		zap.String("key", StorageKey), zap.String("storage", keyring.StorageName(s.storage)), zap.Int("held", held))
	if _, err := s.Add(ctx, nil); err != nil {
		s.mu.Lock()
		s.logError("restoring the revocation store failed; keeping the revocations in memory and retrying at every re-read", err)
		s.mu.Unlock()
	}
}

// Add stores the entries of adds (nil: only what this process holds), under the storage
// lock: the union of what storage holds, what this process holds and adds, less what
// expired, so that no revocation is lost to a concurrent one or to a store that lost
// entries. It refuses to write over a damaged store, and past MaxEntries (ErrFull). The
// views see the result at once. It reports the store as written.
func (s *Store) Add(ctx context.Context, adds *File) (*File, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	if err := s.storage.Lock(ctx, LockName); err != nil {
		s.count("lock")
		return nil, fmt.Errorf("taking the storage lock %q: %v", LockName, err)
	}
	defer func() {
		if err := s.storage.Unlock(context.WithoutCancel(ctx), LockName); err != nil {
			s.logger.Error("releasing the storage lock", zap.String("lock", LockName), zap.Error(err))
		}
	}()
	now := s.now()
	f, err := Read(ctx, s.storage, now)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.count("read")
		return nil, err
	}
	if adds != nil {
		if err := adds.Check(now); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	held := s.file
	s.mu.Unlock()
	merged, n := Merge(now, f, held, adds)
	if n > MaxEntries {
		s.count("full")
		return nil, fmt.Errorf("%w: it would hold %d entries, %d at most (an entry lasts as long as the cookies it revokes could verify): "+
			"revoke everything of the realm instead (all: one entry), or wait for entries to expire", ErrFull, n, MaxEntries)
	}
	if err := merged.Check(now); err != nil {
		return nil, fmt.Errorf("refusing to store revocations that would not load: %v", err)
	}
	b, err := json.MarshalIndent(merged, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := keyring.StoreBytes(ctx, s.storage, StorageKey, b); err != nil {
		s.count("store")
		return nil, fmt.Errorf("storing the revocations: %v", err)
	}
	s.mu.Lock()
	s.file = merged
	s.lastErr = ""
	s.publish()
	s.mu.Unlock()
	return merged, nil
}

// Held is this process's copy of the revocations (nil before the first read).
func (s *Store) Held() *File {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file
}

// publish gives every view its realm's entries in force. s.mu held.
func (s *Store) publish() {
	now := s.now()
	for realm, v := range s.views {
		v.cur.Store(buildSet(s.file.Realms[realm], now))
	}
	if s.onChange != nil {
		s.onChange(s.file.Count())
	}
}

func (s *Store) count(op string) {
	if s.onError != nil {
		s.onError(op)
	}
}

// logError logs a storage error, the same one again only after errorLogEvery. s.mu held.
func (s *Store) logError(msg string, err error, fields ...zap.Field) {
	now := time.Now()
	if e := msg + err.Error(); e != s.lastErr || now.Sub(s.lastAt) >= errorLogEvery {
		s.lastErr, s.lastAt = e, now
		s.logger.Error(msg, append(fields, zap.String("storage", keyring.StorageName(s.storage)), zap.Error(err))...)
	}
}
