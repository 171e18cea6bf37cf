// The shared ring of one storage in a process: the handlers that use it, the keys it gives
// their codecs, and the re-read loop that brings storage up to date under the storage lock
// when something must be written, and only then.

package keyring

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

const (
	// syncTimeout bounds one update of storage (the lock included): a config start or a tick
	// never hangs on a storage module that honours its context.
	syncTimeout = time.Minute
	// errorLogEvery is how often the same storage error is logged again: a storage that stays
	// read-only or full fails at every re-read.
	errorLogEvery = time.Minute
	// idleEvery is how often a ring with no handler left re-reads (until it stops).
	idleEvery = time.Minute
)

// Options are what a Ring reports to.
type Options struct {
	Logger *zap.Logger
	// OnError, when set, is called for every storage operation that failed ("read", "lock",
	// "store"), to count it; logs are rate-limited, counts are not.
	OnError func(op string)
}

// Ring is the key ring of one storage in a process, shared by every handler using that
// storage and outliving config reloads.
type Ring struct {
	storage certmagic.Storage
	logger  *zap.Logger
	onError func(op string)
	now     func() time.Time
	life    context.Context // ends with Destruct
	end     context.CancelFunc

	syncMu sync.Mutex // one update of storage at a time (the loop, a config start)

	mu      sync.Mutex // guards everything below
	users   map[*Use]struct{}
	file    *File             // the ring as this process knows it: stored, or to be stored
	known   map[string]Secret // every secret seen and not yet expired, by secret
	stored  bool              // file is what storage holds (as far as the last read knows)
	changes []string          // what this process's last write of storage changed
	seen    map[string]time.Time
	order   []string // the secrets in use, signer first
	derived map[string]*cookie.KeyRing
	started bool
	failing bool   // the last write storage needed failed
	lastErr string // the last error logged, and when
	lastAt  time.Time

	wake     chan struct{} // asks the loop for an update now
	onDemand onDemand
}

// Use is one handler's use of a ring, with its settings.
type Use struct {
	Realm  string        // the keys are derived for it (cookie.NewRealmKeyRing)
	Rotate time.Duration // how often the ring gets a new signing secret
	Check  time.Duration // how often it is re-read
	Keep   time.Duration // the longest lifetime of the handler's cookies
	ring   *Ring
	codecs []*cookie.Codec
}

// New is the ring of stor; it reads nothing until a handler joins it.
func New(stor certmagic.Storage, o Options) *Ring {
	r := &Ring{storage: stor, logger: o.Logger, onError: o.OnError, now: time.Now,
		users: map[*Use]struct{}{}, known: map[string]Secret{}, seen: map[string]time.Time{},
		derived: map[string]*cookie.KeyRing{}, wake: make(chan struct{}, 1)}
	if r.logger == nil {
		r.logger = zap.NewNop()
	}
	r.life, r.end = context.WithCancel(context.Background())
	r.onDemand.every, r.onDemand.wait, r.onDemand.gap = onDemandEvery, onDemandWait, onDemandEvery
	return r
}

// Join adds a use, reading the ring if this process does not know it yet. It only reads
// storage: a missing ring is stored when a config using it starts (Start), so that validating
// a config has no side effects.
func (r *Ring) Join(ctx context.Context, u *Use) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	u.ring = r
	if r.file == nil {
		f, err := Read(ctx, r.storage)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A candidate, stored when the config starts; if another instance stores a ring
			// first, the candidate is stored beside it (it is remembered like any secret seen),
			// since the HTTP server may start, and sign with it, before the ring is stored.
			r.file = Fresh(r.now(), u.Check)
		case err != nil:
			return err
		default:
			r.file, r.stored = f, true
		}
		r.users[u] = struct{}{}
		r.remember(r.file)
		r.apply("")
		return nil
	}
	r.users[u] = struct{}{}
	return nil
}

// Keys is the key ring of the use's realm for the secrets in use now.
func (u *Use) Keys() *cookie.KeyRing {
	u.ring.mu.Lock()
	defer u.ring.mu.Unlock()
	return u.ring.derive(u.Realm)
}

// Follow makes the codecs follow the ring's changes.
func (u *Use) Follow(codecs ...*cookie.Codec) {
	r := u.ring
	r.mu.Lock()
	defer r.mu.Unlock()
	u.codecs = append(u.codecs, codecs...)
	k := r.derive(u.Realm)
	for _, c := range codecs {
		c.SetKeyRing(k)
	}
}

// Leave ends the use; the ring keeps running until Destruct.
func (u *Use) Leave() {
	u.ring.mu.Lock()
	defer u.ring.mu.Unlock()
	delete(u.ring.users, u)
}

// Settings are what the ring's sharers ask of it as far as this process knows: its handlers'
// settings, and the keep and check interval stored by the others.
func (r *Ring) Settings() Settings {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.settings()
	if r.file != nil {
		s.Keep, s.Check = max(s.Keep, r.file.Keep), max(s.Check, r.file.CheckInterval)
	}
	return s
}

// settings are this process's handlers' settings. r.mu held.
func (r *Ring) settings() Settings {
	var s Settings
	for u := range r.users {
		s.Keep, s.Check = max(s.Keep, u.Keep), max(s.Check, u.Check)
		if s.Rotate == 0 || u.Rotate < s.Rotate {
			s.Rotate = u.Rotate
		}
		if s.Every == 0 || u.Check < s.Every {
			s.Every = u.Check
		}
	}
	if s.Every <= 0 {
		s.Every = idleEvery
	}
	return s
}

// pace is how often this process re-reads: as often as its handlers ask, and at least as
// often as the stored ring says the slowest sharer does, which rotations wait for. The stored
// interval is shorter only while this process could not record its own (a write storage did
// not take): reading at its own pace then, it would learn a rotated-in secret after others
// sign with it. r.mu held.
func (r *Ring) pace() time.Duration {
	every := r.settings().Every
	if r.file != nil && r.file.CheckInterval > 0 {
		every = min(every, r.file.CheckInterval)
	}
	return every
}

// Start brings storage up to date (create, restore, record this process's settings, rotate
// when due), taking the storage lock only when it must write, and starts the re-reads. Called
// when a config using the ring starts. A ring that cannot be read, or must not be used, fails
// it; a write that fails does not: the keys in memory stay in use, and every re-read retries.
func (r *Ring) Start() (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.logger.Error("key ring start panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("key ring in storage: panic: %v", p)
		}
	}()
	writeErr, err := r.sync(r.life, true)
	if err != nil {
		return fmt.Errorf("key ring in storage: %v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if writeErr != nil {
		r.lastAt = time.Time{} // a config start always says so
		r.logWriteError(writeErr)
	}
	if !r.started {
		r.started = true
		go r.run(r.life)
	}
	return nil
}

// Destruct stops the re-reads; a caddy.UsagePool calls it when the last handler using the
// ring is unloaded.
func (r *Ring) Destruct() error {
	r.end()
	return nil
}

func (r *Ring) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		r.mu.Lock()
		every := r.pace()
		r.mu.Unlock()
		t.Reset(every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
		r.tick(ctx)
	}
}

// tick is one re-read; a panic is logged, not fatal: the keys in use stay.
func (r *Ring) tick(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			r.logger.Error("key ring refresh panicked; keeping the keys in use", zap.Any("panic", err), zap.ByteString("stack", debug.Stack()))
		}
	}()
	writeErr, err := r.sync(ctx, true)
	if ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.logError("key ring refresh failed; keeping the keys in use", err)
	}
	if writeErr != nil {
		r.logWriteError(writeErr)
	}
}

func (r *Ring) wakeLoop() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// count reports a failed storage operation.
func (r *Ring) count(op string) {
	if r.onError != nil {
		r.onError(op)
	}
}

// logError logs a storage error, the same one again only after errorLogEvery. r.mu held.
func (r *Ring) logError(msg string, err error, fields ...zap.Field) {
	now := time.Now()
	if e := msg + err.Error(); e != r.lastErr || now.Sub(r.lastAt) >= errorLogEvery {
		r.lastErr, r.lastAt = e, now
		r.logger.Error(msg, append(fields, zap.Error(err))...)
	}
}

// logWriteError logs a write storage needed and did not take. r.mu held.
func (r *Ring) logWriteError(err error) {
	if !r.stored {
		r.logError("no key ring in storage, and storing one failed: signing with a key ring held in memory only; "+
			"other instances sharing the storage do not accept its cookies, and a restart forgets it (visitors get new IDs); retrying at every re-read",
			err, zap.String("key", StorageKey), zap.String("storage", StorageName(r.storage)))
		return
	}
	r.logError("key ring update not stored; keeping the keys in use and retrying at every re-read", err,
		zap.Strings("pending", r.pending()), zap.String("storage", StorageName(r.storage)))
}

// pending is what storage lacks. r.mu held.
func (r *Ring) pending() []string {
	_, why, _ := r.merge(r.file)
	return why
}

// sync updates storage (see update) and gives the codecs the new keys when they changed.
func (r *Ring) sync(ctx context.Context, readFirst bool) (writeErr, err error) {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	writeErr, err = r.update(ctx, readFirst)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && writeErr == nil {
		r.lastErr = ""
	}
	r.apply("re-read")
	return writeErr, err
}

// apply computes the secrets in use and, when they changed, gives every codec the new keys.
// r.mu held.
func (r *Ring) apply(trigger string) bool {
	before := r.order
	r.order = Reorder(r.file, NewestFirst(r.known), r.now())
	if slices.Equal(before, r.order) {
		return false
	}
	clear(r.derived)
	for u := range r.users {
		k := r.derive(u.Realm)
		for _, c := range u.codecs {
			c.SetKeyRing(k)
		}
	}
	if trigger != "" {
		r.logger.Info("key ring reloaded", zap.Int("secrets", len(r.order)), zap.String("trigger", trigger))
	}
	return true
}

// derive returns the key ring of a realm for the secrets in use. r.mu held.
func (r *Ring) derive(realm string) *cookie.KeyRing {
	if k, ok := r.derived[realm]; ok {
		return k
	}
	secrets := make([][]byte, len(r.order))
	for i, s := range r.order {
		secrets[i], _ = cookie.ParseSecret(s) // checked when read
	}
	k, err := cookie.NewRealmKeyRing(realm, secrets...)
	if err != nil {
		panic("signed_cookies: key ring checked when read is unusable: " + err.Error())
	}
	r.derived[realm] = k
	return k
}

// update reads storage and, when it must change, writes it under the storage lock, reading
// it again once locked (another instance may have done the work). readFirst keeps the lock
// away when nothing is to be written, so that a read-only storage holding a good ring serves.
// err is a ring that cannot be read or must not be used (never written over); writeErr a
// write that failed (lock or store): the keys known stay in use.
func (r *Ring) update(ctx context.Context, readFirst bool) (writeErr, err error) {
	defer func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if err == nil && writeErr == nil {
			r.failing = false
		} else if writeErr != nil {
			r.failing = true
		}
	}()
	if readFirst {
		f, err := Read(ctx, r.storage)
		missing := errors.Is(err, fs.ErrNotExist)
		if err != nil && !missing {
			r.count("read")
			return nil, err
		}
		r.mu.Lock()
		needed := missing
		if !missing {
			r.remember(f) // its secrets verify here even if the write below fails
			if needed = r.mustWrite(f); !needed {
				r.file, r.stored = f, true
			}
		}
		r.mu.Unlock()
		if !needed {
			return nil, nil
		}
	}
	if err := r.storage.Lock(ctx, LockName); err != nil {
		r.count("lock")
		return fmt.Errorf("taking the storage lock %q: %v", LockName, err), nil
	}
	defer func() {
		if err := r.storage.Unlock(context.WithoutCancel(ctx), LockName); err != nil {
			r.logger.Error("releasing the storage lock", zap.String("lock", LockName), zap.Error(err))
		}
	}()
	f, err := Read(ctx, r.storage)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		r.count("read")
		return nil, err
	}
	r.mu.Lock()
	base, restoring := f, missing && r.stored
	if missing {
		base = r.file // what this process holds: the ring it used, or its candidate
	} else {
		r.remember(f)
	}
	merged, why, dropped := r.merge(base)
	if !missing && len(why) == 0 {
		r.file, r.stored = f, true
		r.mu.Unlock()
		return nil, nil
	}
	wasFailing := r.failing
	r.mu.Unlock()
	switch {
	case restoring:
		r.logger.Warn("key ring missing from storage; restoring it from the keys in use", zap.String("key", StorageKey))
		why = append(why, "restored")
	case missing:
		why = append(why, "created")
	}
	if err := merged.Check(); err != nil {
		return nil, fmt.Errorf("refusing to store a key ring that would not load: %v", err)
	}
	if err := store(ctx, r.storage, merged); err != nil {
		r.count("store")
		return fmt.Errorf("storing the key ring: %v", err), nil
	}
	r.mu.Lock()
	r.file, r.stored, r.changes = merged, true, why
	r.remember(merged)
	r.mu.Unlock()
	if dropped > 0 {
		r.logger.Warn("key ring full: dropped its oldest secrets although cookies they signed may still be valid; rotate less often",
			zap.Int("dropped", dropped), zap.Int("max_secrets", MaxSecrets))
	}
	if wasFailing {
		r.logger.Info("storage takes the key ring again", zap.String("storage", StorageName(r.storage)))
	}
	r.logger.Info("key ring stored", zap.String("key", StorageKey), zap.Strings("changes", why), zap.Int("secrets", len(merged.Secrets)))
	return nil, nil
}

// mustWrite reports whether the stored ring f lacks something (see Merge). r.mu held.
func (r *Ring) mustWrite(f *File) bool {
	_, why, _ := r.merge(f)
	return len(why) > 0
}

// merge is Merge with this process's secrets and settings, warning once about a newest secret
// dated in the future. r.mu held.
func (r *Ring) merge(f *File) (*File, []string, int) {
	now := r.now()
	s := r.settings()
	firstSeen := now
	if FutureDated(f, s, now) {
		newest := f.Secrets[0]
		if first, ok := r.seen[newest.Secret]; ok {
			firstSeen = first
		} else {
			r.seen[newest.Secret] = now
			r.logger.Warn("the key ring's newest secret is dated in the future (a clock jumped?); rotation counts from now instead",
				zap.Time("created", newest.Created), zap.Time("active", newest.Active), zap.Time("now", now))
		}
	}
	return Merge(f, NewestFirst(r.known), s, now, firstSeen)
}

// remember takes f's secrets into those this process knows (see Remember). r.mu held.
func (r *Ring) remember(f *File) {
	r.known = Remember(r.known, f, r.file, r.settings().Keep, r.now())
	for k := range r.seen {
		if _, ok := r.known[k]; !ok {
			delete(r.seen, k)
		}
	}
}

// RotateNow adds a new signing secret to the ring in stor now, under the storage lock, as a
// running instance whose rotation is due does, with the settings of uses (a rotation interval
// that has always passed). It reports the ring as stored after, and whether this update added
// a secret (not while one waits to sign, also when another instance rotated a moment before
// the lock was taken).
func RotateNow(ctx context.Context, stor certmagic.Storage, logger *zap.Logger, uses ...Use) (*File, bool, error) {
	r := New(stor, Options{Logger: logger})
	defer r.Destruct()
	for _, u := range uses {
		u.Rotate = time.Nanosecond
		if err := r.Join(ctx, &u); err != nil {
			return nil, false, err
		}
	}
	writeErr, err := r.sync(ctx, false)
	if err = cmp.Or(err, writeErr); err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.file, slices.Contains(r.changes, "rotated"), nil
}
