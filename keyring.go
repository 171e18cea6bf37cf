// The storage key ring, used when no secret is configured: one small versioned JSON object in
// Caddy's storage that every Caddy instance pointed at the storage shares, so that a cluster
// issues and accepts the same cookies with no other coordination. In each process one shared
// ring per storage serves every handler and outlives config reloads; it re-reads the object on
// a ticker, and whichever instance holds the storage lock creates, restores, merges or rotates
// it. Split from module.go because it is the only part that talks to storage and runs in the
// background.
//
// What the ring promises: every instance accepts a secret's cookies before any instance signs
// with it, and no instance forgets a secret before the cookies it signed can expire.
//
//   - An instance knows a secret once it is in storage: meeting a cookie it cannot verify, it
//     re-reads storage (refreshOnDemand: the read starts after the cookie arrived, at most one
//     a second, shared by the requests waiting) and verifies the cookie again.
//   - A rotated-in secret still waits two of the slowest sharer's re-read intervals (stored as
//     check_interval, the longest any sharer asked for) and two seconds before it signs, so
//     that every instance has it from its own re-reads and no request has to wait for one.
//   - A fresh ring's first secret signs once its config start has stored it: there is nothing
//     else to sign with, and instances meeting its cookies find it in storage. A process that
//     found no ring at Provision may sign with its candidate a moment before that (Caddy starts
//     apps in no fixed order, the HTTP server perhaps first); the candidate is stored either
//     way (the new ring, or verify-only beside a ring another instance stored first), so only
//     another instance meeting such a cookie within that moment rejects it.
//   - A process keeps every secret it has seen until Keep after it retired, and puts back into
//     storage those the stored ring lacks (a ring deleted or replaced under it) at its next
//     re-read, reload, or on-demand re-read. An instance started while the ring is missing
//     makes a fresh one and knows the old secrets only once a running instance put them back.
//   - Pruning after Keep and the cap of maxStoredSecrets (oldest first, logged) are the only
//     ways a secret leaves. A stored ring that fails its checks is never written over.

package signedcookies

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

const (
	keyRingStorageKey = "signed_cookies/keyring.json"
	keyRingLockName   = "signed_cookies_keyring"
	keyRingVersion    = 1
	// maxStoredSecrets bounds the HMACs a forged cookie costs and the work of loading a ring;
	// maxRingFileBytes is far above what that many secrets take (~150 bytes each).
	maxStoredSecrets = 64
	maxRingFileBytes = 64 << 10
	// onDemandEvery is how often a cookie signed by an unknown key may make a shared ring
	// re-read storage before its ticker would; onDemandTimeout bounds such a read.
	onDemandEvery   = time.Second
	onDemandTimeout = 5 * time.Second
	// syncTimeout bounds one update of storage (the lock included): a config start or a tick
	// never hangs on a storage that does not answer.
	syncTimeout = time.Minute
	// errorLogEvery is how often the same refresh error is logged again.
	errorLogEvery = time.Minute
)

// keyRingFile is the stored object. Secrets are newest first; the newest active one signs.
type keyRingFile struct {
	Version int            `json:"version"`
	Secrets []storedSecret `json:"secrets"`
	// Keep is the longest any instance sharing the ring asked to keep retired secrets (the
	// longest cookie lifetime); pruning honours it, so one site's short lifetime cannot
	// invalidate another site's cookies.
	Keep time.Duration `json:"keep,omitempty"`
	// CheckInterval is the longest re-read interval of any instance sharing the ring: a new
	// secret signs only once the slowest reader can have read it.
	CheckInterval time.Duration `json:"check_interval,omitempty"`
}

type storedSecret struct {
	Secret  string    `json:"secret"` // base64 of 32 random bytes
	Created time.Time `json:"created"`
	// Active is when it starts signing: a rotation gives every instance two re-read
	// intervals to learn the new secret (and accept its cookies) before any signs with it.
	// Zero: since Created.
	Active time.Time `json:"active,omitzero"`
	// Retired is when a newer secret took over signing; cookies signed before then stay
	// valid for Keep after it.
	Retired time.Time `json:"retired,omitzero"`
}

// rings holds one shared ring per storage, across config reloads.
var rings = caddy.NewUsagePool()

// sharedRing is the key ring of one storage in this process.
type sharedRing struct {
	poolKey string
	storage certmagic.Storage
	logger  *zap.Logger
	now     func() time.Time

	syncMu sync.Mutex // one update of storage at a time (the ticker, a config start)

	mu      sync.Mutex // guards everything below
	users   map[*ringUse]struct{}
	file    *keyRingFile            // the ring as this process knows it: stored, or to be stored
	known   map[string]storedSecret // every secret seen and not yet expired, by secret
	stored  bool                    // file is what storage holds (as far as the last read knows)
	changes []string                // what this process's last write of storage changed
	seen    map[string]time.Time    // when a future-dated newest secret was first seen
	order   []string                // the secrets in use, signer first
	derived map[string]*cookie.KeyRing
	started bool
	stop    context.CancelFunc
	lastErr string // the last refresh error logged, and when
	lastAt  time.Time

	wake     chan struct{} // asks the re-read loop for an update now
	onDemand onDemand
}

// onDemand schedules the re-reads that cookies with an unknown key ask for: at most one
// starts per onDemandEvery, and every request waits for one that starts after it asked.
type onDemand struct {
	mu      sync.Mutex
	last    time.Time // when the last read started
	reads   int       // how many have started
	pending *readFlight
}

// readFlight is one scheduled on-demand read and the requests waiting for it.
type readFlight struct {
	done chan struct{}
	ok   bool
}

func newSharedRing(id string, stor certmagic.Storage, logger *zap.Logger) *sharedRing {
	return &sharedRing{poolKey: id, storage: stor, logger: logger, now: time.Now,
		users: map[*ringUse]struct{}{}, known: map[string]storedSecret{}, seen: map[string]time.Time{},
		derived: map[string]*cookie.KeyRing{}, wake: make(chan struct{}, 1)}
}

// ringUse is one handler's use of a shared ring.
type ringUse struct {
	sr     *sharedRing
	realm  string
	rotate time.Duration
	check  time.Duration
	keep   time.Duration
	codecs []*cookie.Codec
}

// loadStorage loads the storage module of a handler's config (its StorageRaw).
func loadStorage(ctx caddy.Context, h *Handler) (certmagic.Storage, error) {
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return nil, err
	}
	return mod.(caddy.StorageConverter).CertMagicStorage()
}

// newRingUse is a handler's use of a shared ring, with its settings.
func newRingUse(sr *sharedRing, h *Handler, realm string) *ringUse {
	return &ringUse{sr: sr, realm: realm, rotate: time.Duration(h.Rotate), check: time.Duration(h.CheckInterval), keep: h.longestLifetime()}
}

// useStorageRing joins the shared ring of the handler's storage. It only reads storage: the
// ring is created, restored or rotated when the config starts (keyRingApp.Start), so that
// `caddy validate` has no side effects.
func useStorageRing(ctx caddy.Context, h *Handler, realm string) (*ringUse, error) {
	stor := ctx.Storage()
	id := "default:" + storageName(stor)
	if h.StorageRaw != nil {
		id = "module:" + string(h.StorageRaw)
		var err error
		if stor, err = loadStorage(ctx, h); err != nil {
			return nil, fmt.Errorf("storage: %v", err)
		}
	}
	v, _, err := rings.LoadOrNew(id, func() (caddy.Destructor, error) {
		return newSharedRing(id, stor, caddy.Log().Named("signed_cookies.keyring")), nil
	})
	if err != nil {
		return nil, err
	}
	sr := v.(*sharedRing)
	u := newRingUse(sr, h, realm)
	if err := sr.join(ctx, u); err != nil {
		_, _ = rings.Delete(id)
		return nil, fmt.Errorf("key ring in storage: %v", err)
	}
	app, err := ctx.App(keyRingAppID)
	if err != nil {
		u.release()
		return nil, err
	}
	app.(*keyRingApp).add(sr)
	h.logger.Info("signing keys from the storage key ring", zap.String("storage", storageName(stor)),
		zap.String("realm", realm), zap.Duration("rotate", u.rotate), zap.Duration("check_interval", u.check))
	return u, nil
}

// storageName names a storage in logs and pool keys (certmagic's storages are Stringers).
func storageName(s certmagic.Storage) string {
	if st, ok := s.(fmt.Stringer); ok {
		return st.String()
	}
	return fmt.Sprintf("%T", s)
}

// longestLifetime is how long a cookie signed with a retired secret can still be valid.
func (h *Handler) longestLifetime() time.Duration {
	d := time.Duration(h.MaxAge)
	if h.Track != nil && time.Duration(h.Track.MaxAge) > d {
		d = time.Duration(h.Track.MaxAge)
	}
	return d
}

func (u *ringUse) ring() *cookie.KeyRing {
	u.sr.mu.Lock()
	defer u.sr.mu.Unlock()
	return u.sr.derive(u.realm)
}

// follow makes the codecs follow the ring's rotations.
func (u *ringUse) follow(codecs ...*cookie.Codec) {
	u.sr.mu.Lock()
	defer u.sr.mu.Unlock()
	u.codecs = append(u.codecs, codecs...)
	r := u.sr.derive(u.realm)
	for _, c := range codecs {
		c.SetKeyRing(r)
	}
}

// release ends the use; the last one stops the ring.
func (u *ringUse) release() {
	u.sr.mu.Lock()
	delete(u.sr.users, u)
	u.sr.mu.Unlock()
	_, _ = rings.Delete(u.sr.poolKey)
}

// refreshOnDemand is asked when a cookie failed its MAC: the keys may be stale (a secret
// another instance stored a moment ago). It waits for a re-read of storage that starts after
// this call (at most one starts per onDemandEvery, shared by every request waiting, so
// forged cookies cost at most one storage read a second and a request at most about a second)
// and reports whether the keys in use now reflect it: true even when this read changed
// nothing, because another may have changed them after the cookie failed; the cookie is then
// verified again.
func (u *ringUse) refreshOnDemand() bool { return u.sr.readOnDemand() }

func (sr *sharedRing) readOnDemand() bool {
	od := &sr.onDemand
	od.mu.Lock()
	f := od.pending
	lead := f == nil
	var wait time.Duration
	if lead {
		f = &readFlight{done: make(chan struct{})}
		od.pending = f
		if !od.last.IsZero() {
			wait = time.Until(od.last.Add(onDemandEvery))
		}
	}
	od.mu.Unlock()
	if !lead {
		<-f.done
		return f.ok
	}
	defer close(f.done) // also when adopt panics: no request waits forever
	if wait > 0 {
		time.Sleep(wait)
	}
	od.mu.Lock()
	od.pending = nil // requests from now on wait for the next read
	od.last = time.Now()
	od.reads++
	od.mu.Unlock()
	f.ok = sr.adopt()
	return f.ok
}

// adopt reads storage and takes the secrets it holds into use, without locking or writing:
// when storage lacks something this process must add, the re-read loop is woken to do it.
func (sr *sharedRing) adopt() (ok bool) {
	defer func() {
		if err := recover(); err != nil {
			sr.logger.Error("key ring re-read panicked; keeping the keys in use", zap.Any("panic", err), zap.ByteString("stack", debug.Stack()))
			ok = false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), onDemandTimeout)
	defer cancel()
	f, err := sr.read(ctx)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		sr.wakeLoop() // to restore it
		return true
	case err != nil:
		sr.logError("key ring re-read failed; keeping the keys in use", err)
		return false
	}
	sr.remember(f)
	if sr.mustWrite(f) {
		sr.wakeLoop()
	} else {
		sr.file, sr.stored = f, true
	}
	sr.apply("a cookie signed with a key not in use")
	return true
}

func (sr *sharedRing) wakeLoop() {
	select {
	case sr.wake <- struct{}{}:
	default:
	}
}

// join adds a use, reading the ring if this process does not know it yet.
func (sr *sharedRing) join(ctx context.Context, u *ringUse) error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.file == nil {
		f, err := sr.read(ctx)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A candidate, stored when the config starts; if another instance stores a ring
			// first, the candidate is stored beside it (it is remembered like any secret seen),
			// since the HTTP server may start, and sign with it, before the ring is stored.
			sr.file = sr.fresh()
		case err != nil:
			return err
		default:
			sr.file, sr.stored = f, true
		}
		sr.users[u] = struct{}{}
		sr.remember(sr.file)
		sr.apply("")
		return nil
	}
	sr.users[u] = struct{}{}
	return nil
}

func (sr *sharedRing) fresh() *keyRingFile {
	now := sr.now().UTC().Truncate(time.Second)
	return &keyRingFile{Version: keyRingVersion, Secrets: []storedSecret{{Secret: cookie.NewSecret(), Created: now, Active: now}}}
}

// settings are the longest lifetime, slowest re-read, shortest rotation and fastest re-read
// of the ring's users.
func (sr *sharedRing) settings() (keep, slowest, rotate, fastest time.Duration) {
	for u := range sr.users {
		keep, slowest = max(keep, u.keep), max(slowest, u.check)
		if rotate == 0 || u.rotate < rotate {
			rotate = u.rotate
		}
		if fastest == 0 || u.check < fastest {
			fastest = u.check
		}
	}
	return keep, slowest, cmpOr(rotate, defaultRotate), cmpOr(fastest, defaultCheck)
}

// start brings storage up to date (create, restore, record this process's settings, rotate
// when due) and starts the re-reads. Called when a config using the ring starts.
func (sr *sharedRing) start() (err error) {
	defer func() {
		if p := recover(); p != nil {
			sr.logger.Error("key ring start panicked", zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("key ring in storage: panic: %v", p)
		}
	}()
	if _, err := sr.sync(context.Background(), false); err != nil {
		return fmt.Errorf("key ring in storage: %v", err)
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if !sr.started {
		sr.started = true
		var ctx context.Context
		ctx, sr.stop = context.WithCancel(context.Background())
		go sr.run(ctx)
	}
	return nil
}

// Destruct stops the re-reads when the last handler using the ring is unloaded.
func (sr *sharedRing) Destruct() error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.stop != nil {
		sr.stop()
	}
	return nil
}

func (sr *sharedRing) run(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		sr.mu.Lock()
		_, _, _, every := sr.settings()
		sr.mu.Unlock()
		t.Reset(every)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-sr.wake:
		}
		sr.tick(ctx)
	}
}

// tick is one re-read; a panic is logged, not fatal: the keys in use stay.
func (sr *sharedRing) tick(ctx context.Context) {
	defer func() {
		if err := recover(); err != nil {
			sr.logger.Error("key ring refresh panicked; keeping the keys in use", zap.Any("panic", err), zap.ByteString("stack", debug.Stack()))
		}
	}()
	sr.refresh(ctx)
}

// refresh re-reads storage, writes it when it is missing, lacks secrets this process still
// needs, lacks this process's settings or is due for rotation, and swaps the keys when they
// changed. It reports whether they did.
func (sr *sharedRing) refresh(ctx context.Context) bool {
	changed, err := sr.sync(ctx, true)
	if err != nil && ctx.Err() == nil {
		sr.mu.Lock()
		sr.logError("key ring refresh failed; keeping the keys in use", err)
		sr.mu.Unlock()
	}
	return changed
}

// logError logs a refresh error, the same one again only after errorLogEvery. sr.mu held.
func (sr *sharedRing) logError(msg string, err error) {
	now := time.Now()
	if e := err.Error(); e != sr.lastErr || now.Sub(sr.lastAt) >= errorLogEvery {
		sr.lastErr, sr.lastAt = e, now
		sr.logger.Error(msg, zap.Error(err))
	}
}

// sync updates storage (see update) and swaps the keys of every codec when they changed.
func (sr *sharedRing) sync(ctx context.Context, readFirst bool) (bool, error) {
	sr.syncMu.Lock()
	defer sr.syncMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	err := sr.update(ctx, readFirst)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if err == nil {
		sr.lastErr = ""
	}
	return sr.apply("re-read"), err
}

// apply computes the secrets in use and, when they changed, gives every codec the new keys.
// sr.mu held.
func (sr *sharedRing) apply(trigger string) bool {
	before := sr.order
	sr.reorder()
	if slices.Equal(before, sr.order) {
		return false
	}
	clear(sr.derived)
	for u := range sr.users {
		r := sr.derive(u.realm)
		for _, c := range u.codecs {
			c.SetKeyRing(r)
		}
	}
	if trigger != "" {
		sr.logger.Info("key ring reloaded", zap.Int("secrets", len(sr.order)), zap.String("trigger", trigger))
	}
	return true
}

// update reads storage and, when it must change, writes it under the storage lock, reading
// it again once locked (another instance may have done the work). readFirst keeps the lock
// off the usual tick, where nothing changes. A ring that fails its checks is never written.
func (sr *sharedRing) update(ctx context.Context, readFirst bool) error {
	if readFirst {
		f, err := sr.read(ctx)
		missing := errors.Is(err, fs.ErrNotExist)
		if err != nil && !missing {
			return err
		}
		sr.mu.Lock()
		needed := missing
		if !missing {
			sr.remember(f) // its secrets verify here even if the write below fails
			if needed = sr.mustWrite(f); !needed {
				sr.file, sr.stored = f, true
			}
		}
		sr.mu.Unlock()
		if !needed {
			return nil
		}
	}
	if err := sr.storage.Lock(ctx, keyRingLockName); err != nil {
		return fmt.Errorf("taking the storage lock %q: %v", keyRingLockName, err)
	}
	defer func() {
		if err := sr.storage.Unlock(context.WithoutCancel(ctx), keyRingLockName); err != nil {
			sr.logger.Error("releasing the storage lock", zap.String("lock", keyRingLockName), zap.Error(err))
		}
	}()
	f, err := sr.read(ctx)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return err
	}
	sr.mu.Lock()
	base, restoring := f, missing && sr.stored
	if missing {
		base = sr.file // what this process holds: the ring it used, or its candidate
	} else {
		sr.remember(f)
	}
	merged, why, dropped := sr.merge(base)
	if !missing && len(why) == 0 {
		sr.file, sr.stored = f, true
		sr.mu.Unlock()
		return nil
	}
	sr.mu.Unlock()
	switch {
	case restoring:
		sr.logger.Warn("key ring missing from storage; restoring it from the keys in use", zap.String("key", keyRingStorageKey))
		why = append(why, "restored")
	case missing:
		why = append(why, "created")
	}
	if err := merged.check(); err != nil {
		return fmt.Errorf("refusing to store a key ring that would not load: %v", err)
	}
	b, err := json.MarshalIndent(merged, "", "\t")
	if err != nil {
		return err
	}
	if err := sr.store(ctx, b); err != nil {
		return fmt.Errorf("storing the key ring: %v", err)
	}
	sr.mu.Lock()
	sr.file, sr.stored, sr.changes = merged, true, why
	sr.remember(merged)
	sr.mu.Unlock()
	if dropped > 0 {
		sr.logger.Warn("key ring full: dropped its oldest secrets although cookies they signed may still be valid; rotate less often",
			zap.Int("dropped", dropped), zap.Int("max_secrets", maxStoredSecrets))
	}
	sr.logger.Info("key ring stored", zap.String("key", keyRingStorageKey), zap.Strings("changes", why), zap.Int("secrets", len(merged.Secrets)))
	return nil
}

// mustWrite reports whether the stored ring f lacks something: secrets this process still
// needs, the users' settings, or a rotation that is due. sr.mu held.
func (sr *sharedRing) mustWrite(f *keyRingFile) bool {
	_, why, _ := sr.merge(f)
	return len(why) > 0
}

// merge returns f with what this process adds: secrets it knows that f lacks and whose
// cookies may still be valid (a ring deleted or replaced under running instances must not log
// anyone out), its users' settings, and a rotation when one is due. why lists the changes;
// dropped counts secrets within Keep that the cap pushed out. sr.mu held.
func (sr *sharedRing) merge(f *keyRingFile) (m *keyRingFile, why []string, dropped int) {
	now := sr.now().UTC()
	keep, slowest, rotate, _ := sr.settings()
	m = &keyRingFile{Version: keyRingVersion, Secrets: slices.Clone(f.Secrets), Keep: f.Keep, CheckInterval: f.CheckInterval}
	if keep > m.Keep {
		m.Keep, why = keep, append(why, "keep")
	}
	if slowest > m.CheckInterval {
		m.CheckInterval, why = slowest, append(why, "check_interval")
	}
	inFile := make(map[string]bool, len(m.Secrets))
	for _, s := range m.Secrets {
		inFile[s.Secret] = true
	}
	expired := func(s storedSecret) bool { return !s.Retired.IsZero() && now.Sub(s.Retired) > m.Keep }
	restored := 0
	for _, s := range sr.knownNewestFirst() {
		if inFile[s.Secret] || expired(s) || len(m.Secrets) >= maxStoredSecrets {
			continue
		}
		if s.Retired.IsZero() {
			s.Retired = now.Truncate(time.Second) // it signed here; the stored ring's signer takes over
		}
		m.Secrets = append(m.Secrets, s) // after the stored ones: they verify only
		restored++
	}
	if restored > 0 {
		why = append(why, fmt.Sprintf("kept %d secrets this process knows", restored))
	}
	if sr.due(m, rotate, now) {
		created := now.Truncate(time.Second)
		// Every instance re-reads within CheckInterval: two of them, and the margin that keeps
		// on-demand re-reads from missing it, pass before it signs.
		active := now.Add(satDouble(max(m.CheckInterval, slowest)) + 2*onDemandEvery)
		fresh := storedSecret{Secret: cookie.NewSecret(), Created: created, Active: active.Add(time.Second - 1).Truncate(time.Second)}
		for i := range m.Secrets {
			if m.Secrets[i].Retired.IsZero() {
				m.Secrets[i].Retired = fresh.Active
			}
		}
		m.Secrets = append([]storedSecret{fresh}, m.Secrets...)
		why = append(why, "rotated")
	}
	before := len(m.Secrets)
	m.Secrets = slices.DeleteFunc(m.Secrets, expired)
	if len(m.Secrets) > maxStoredSecrets {
		for _, s := range m.Secrets[maxStoredSecrets:] {
			if !expired(s) {
				dropped++
			}
		}
		m.Secrets = m.Secrets[:maxStoredSecrets] // the oldest go, even if cookies they signed live on
	}
	if len(m.Secrets) != before && len(why) > 0 {
		why = append(why, "pruned")
	}
	return m, why, dropped
}

// satDouble is 2*d without overflowing.
func satDouble(d time.Duration) time.Duration {
	if d > (1<<63-1)/2 {
		return 1<<63 - 1
	}
	return 2 * d
}

// due reports whether the ring must get a new signing secret: its newest one is older than
// the rotation interval and already signs (rotating while it still waits would pile up
// secrets nobody signs with, when a sharer re-reads slowly). A newest secret dated in the
// future (a clock that jumped) would stall rotation until that date: it counts from when this
// process first saw it instead, and says so. sr.mu held.
func (sr *sharedRing) due(f *keyRingFile, rotate time.Duration, now time.Time) bool {
	if len(f.Secrets) == 0 {
		return true
	}
	newest := f.Secrets[0]
	_, slowest, _, _ := sr.settings()
	signsAt := newest.Created
	if newest.Active.After(signsAt) {
		signsAt = newest.Active
	}
	// a rotation's own wait is at most two check intervals and a few seconds
	if horizon := satDouble(max(f.CheckInterval, slowest)) + time.Minute; signsAt.Sub(now) > horizon {
		first, ok := sr.seen[newest.Secret]
		if !ok {
			first = now
			sr.seen[newest.Secret] = now
			sr.logger.Warn("the key ring's newest secret is dated in the future (a clock jumped?); rotation counts from now instead",
				zap.Time("created", newest.Created), zap.Time("active", newest.Active), zap.Time("now", now))
		}
		return now.Sub(first) >= rotate
	}
	if signsAt.After(now) {
		return false
	}
	return now.Sub(newest.Created) >= rotate
}

// remember adds f's secrets to those this process knows, and forgets those whose cookies
// cannot be valid any more. Beyond the secrets in f and in the ring in use, it keeps at most
// maxStoredSecrets, the newest: no more could be used or stored. sr.mu held.
func (sr *sharedRing) remember(f *keyRingFile) {
	now := sr.now()
	keep, _, _, _ := sr.settings()
	keep = max(keep, f.Keep)
	inFile := make(map[string]bool, len(f.Secrets))
	for _, s := range f.Secrets {
		sr.known[s.Secret] = s
		inFile[s.Secret] = true
	}
	if sr.file != nil {
		for _, s := range sr.file.Secrets {
			inFile[s.Secret] = true // the ring in use may not be f yet (see adopt)
		}
	}
	var extra []storedSecret
	for k, s := range sr.known {
		switch {
		case inFile[k]:
		case !s.Retired.IsZero() && now.Sub(s.Retired) > keep:
			delete(sr.known, k)
		default:
			extra = append(extra, s)
		}
	}
	if len(extra) > maxStoredSecrets {
		slices.SortFunc(extra, func(a, b storedSecret) int { return b.Created.Compare(a.Created) })
		for _, s := range extra[maxStoredSecrets:] {
			delete(sr.known, s.Secret)
		}
	}
	for k := range sr.seen {
		if _, ok := sr.known[k]; !ok {
			delete(sr.seen, k)
		}
	}
}

func (sr *sharedRing) knownNewestFirst() []storedSecret {
	out := make([]storedSecret, 0, len(sr.known))
	for _, s := range sr.known {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b storedSecret) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Secret, b.Secret)
	})
	return out
}

// reorder computes the secrets in use: first the newest secret of the ring already active (it
// signs), then every other secret this process knows, newest first (they verify), at most
// maxStoredSecrets in all. sr.mu held.
func (sr *sharedRing) reorder() {
	f := sr.file
	signer := f.signer(sr.now())
	order := make([]string, 0, min(len(sr.known)+1, maxStoredSecrets))
	order = append(order, f.Secrets[signer].Secret)
	for _, s := range sr.knownNewestFirst() {
		if len(order) == maxStoredSecrets {
			break
		}
		if s.Secret != order[0] {
			order = append(order, s.Secret)
		}
	}
	sr.order = order
}

// signer is the index of the secret that signs at now: the newest one already active (one
// stored without an activation time always is), else the oldest, for want of any other.
func (f *keyRingFile) signer(now time.Time) int {
	for i, s := range f.Secrets {
		if !s.Active.After(now) {
			return i
		}
	}
	return len(f.Secrets) - 1
}

// derive returns the key ring of a realm for the secrets in use. sr.mu held.
func (sr *sharedRing) derive(realm string) *cookie.KeyRing {
	if r, ok := sr.derived[realm]; ok {
		return r
	}
	secrets := make([][]byte, len(sr.order))
	for i, s := range sr.order {
		secrets[i], _ = cookie.ParseSecret(s) // checked when read
	}
	r, err := cookie.NewRealmKeyRing(realm, secrets...)
	if err != nil {
		panic("signed_cookies: key ring checked when read is unusable: " + err.Error())
	}
	sr.derived[realm] = r
	return r
}

// read loads and checks the stored ring, whole, before anything builds on it (a rotation
// would store it again): size, version, count, each secret, duplicates.
func (sr *sharedRing) read(ctx context.Context) (*keyRingFile, error) {
	return readRing(ctx, sr.storage)
}

// moveAway ends every error about a stored ring that cannot be used: what to do about it.
const moveAway = "move it away: running instances then store the secrets they hold again, and with none running the next start makes a new ring"

func readRing(ctx context.Context, stor certmagic.Storage) (*keyRingFile, error) {
	b, err := loadBounded(ctx, stor)
	if err != nil {
		return nil, err
	}
	var f keyRingFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s in %s is not a key ring (%v); %s", keyRingStorageKey, storageName(stor), err, moveAway)
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("%s in %s: %v; %s", keyRingStorageKey, storageName(stor), err, moveAway)
	}
	for i := range f.Secrets {
		// one spelling per secret, so that secrets compare as strings
		b, _ := cookie.ParseSecret(f.Secrets[i].Secret)
		f.Secrets[i].Secret = base64.StdEncoding.EncodeToString(b)
	}
	return &f, nil
}

// loadBounded loads the stored ring, refusing one larger than maxRingFileBytes without
// reading it: from a file_system storage it reads at most that much, from others it asks the
// size first.
func loadBounded(ctx context.Context, stor certmagic.Storage) ([]byte, error) {
	tooBig := func(size int64) error {
		return fmt.Errorf("%s in %s is %d bytes, more than a key ring can be (%d at most): refusing to read it; %s",
			keyRingStorageKey, storageName(stor), size, maxRingFileBytes, moveAway)
	}
	if fsys, ok := stor.(*certmagic.FileStorage); ok {
		fh, err := os.Open(fsys.Filename(keyRingStorageKey))
		if err != nil {
			return nil, err
		}
		defer fh.Close()
		fi, err := fh.Stat()
		if err != nil {
			return nil, err
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("%s in %s is not a regular file (mode %s); %s", keyRingStorageKey, storageName(stor), fi.Mode(), moveAway)
		}
		if fi.Size() > maxRingFileBytes {
			return nil, tooBig(fi.Size())
		}
		b, err := io.ReadAll(io.LimitReader(fh, maxRingFileBytes+1))
		if err == nil && len(b) > maxRingFileBytes {
			return nil, tooBig(int64(len(b)))
		}
		return b, err
	}
	if info, err := stor.Stat(ctx, keyRingStorageKey); err == nil && info.Size > maxRingFileBytes {
		return nil, tooBig(info.Size)
	}
	b, err := stor.Load(ctx, keyRingStorageKey)
	if err == nil && len(b) > maxRingFileBytes {
		return nil, tooBig(int64(len(b)))
	}
	return b, err
}

// check validates the whole ring, in time linear in its size.
func (f *keyRingFile) check() error {
	if f.Version != keyRingVersion {
		return fmt.Errorf("unsupported version %d", f.Version)
	}
	if len(f.Secrets) == 0 || len(f.Secrets) > maxStoredSecrets {
		return fmt.Errorf("%d secrets, want 1 to %d", len(f.Secrets), maxStoredSecrets)
	}
	seen := make(map[string]int, len(f.Secrets))
	for i, s := range f.Secrets {
		b, err := cookie.ParseSecret(s.Secret)
		if err != nil {
			return fmt.Errorf("secret %d %v", i+1, err)
		}
		if j, dup := seen[string(b)]; dup {
			return fmt.Errorf("secret %d duplicates secret %d", i+1, j+1)
		}
		seen[string(b)] = i
		if s.Created.IsZero() {
			return fmt.Errorf("secret %d has no creation time", i+1)
		}
	}
	if f.Keep < 0 || f.CheckInterval < 0 {
		return errors.New("negative keep or check_interval")
	}
	return nil
}

// store writes the ring. A file_system storage replaces a file by renaming a new one over
// it, which would turn a symbolic link into a file and leave the link's target stale: the
// link is written through instead.
func (sr *sharedRing) store(ctx context.Context, b []byte) error {
	if fsys, ok := sr.storage.(*certmagic.FileStorage); ok {
		p := fsys.Filename(keyRingStorageKey)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s is a symbolic link that does not resolve (%v): make it point to an existing file, or replace it with the key ring itself", p, err)
			}
			return writeFileAtomic(target, b)
		}
	}
	return sr.storage.Store(ctx, keyRingStorageKey, b)
}

// writeFileAtomic replaces name by a new file, keeping its permissions (0600 for a new one).
func writeFileAtomic(name string, b []byte) error {
	mode := os.FileMode(0o600)
	if fi, err := os.Stat(name); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// Interface guards
var _ caddy.Destructor = (*sharedRing)(nil)
