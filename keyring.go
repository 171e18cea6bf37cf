// The storage key ring, used when no secret is configured: one small versioned JSON object in
// Caddy's storage that every Caddy instance pointed at the storage shares, so that a cluster
// issues and accepts the same cookies with no other coordination. In each process one shared
// ring per storage serves every handler and outlives config reloads; it re-reads the object on
// a ticker, and whichever instance holds the storage lock creates, restores, merges or rotates
// it. Split from module.go because it is the only part that talks to storage and runs in the
// background.

package signedcookies

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
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
	// re-read storage before its ticker would.
	onDemandEvery = time.Second
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

	mu      sync.Mutex
	users   map[*ringUse]struct{}
	file    *keyRingFile            // the ring as this process knows it: stored, or to be stored
	known   map[string]storedSecret // every secret seen and not yet expired, by secret
	stored  bool                    // file is what storage holds (as far as the last read knows)
	seen    map[string]time.Time    // when a future-dated newest secret was first seen
	order   []string                // the secrets in use, signer first
	derived map[string]*cookie.KeyRing
	started bool
	stop    context.CancelFunc
	lastOn  time.Time // last on-demand refresh
	onMu    sync.Mutex
}

func newSharedRing(id string, stor certmagic.Storage, logger *zap.Logger) *sharedRing {
	return &sharedRing{poolKey: id, storage: stor, logger: logger, now: time.Now,
		users: map[*ringUse]struct{}{}, known: map[string]storedSecret{}, seen: map[string]time.Time{},
		derived: map[string]*cookie.KeyRing{}}
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

// useStorageRing joins the shared ring of the handler's storage. It only reads storage: the
// ring is created, restored or rotated when the config starts (keyRingApp.Start), so that
// `caddy validate` has no side effects.
func useStorageRing(ctx caddy.Context, h *Handler, realm string) (*ringUse, error) {
	stor := ctx.Storage()
	id := "default:" + storageName(stor)
	if h.StorageRaw != nil {
		id = "module:" + string(h.StorageRaw)
		mod, err := ctx.LoadModule(h, "StorageRaw")
		if err != nil {
			return nil, fmt.Errorf("storage: %v", err)
		}
		if stor, err = mod.(caddy.StorageConverter).CertMagicStorage(); err != nil {
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
	u := &ringUse{sr: sr, realm: realm, rotate: time.Duration(h.Rotate), check: time.Duration(h.CheckInterval), keep: h.longestLifetime()}
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

// id is equal for the handlers that use the same keys.
func (u *ringUse) id() string { return "storage:" + u.sr.poolKey + "\x00realm:" + u.realm }

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

// refreshOnDemand re-reads the ring when a cookie failed with keys that may be stale (a
// secret another instance created a moment ago), at most once per onDemandEvery. It reports
// whether the keys in use changed.
func (u *ringUse) refreshOnDemand() bool {
	sr := u.sr
	sr.onMu.Lock()
	defer sr.onMu.Unlock()
	if sr.now().Sub(sr.lastOn) < onDemandEvery {
		return false
	}
	sr.lastOn = sr.now()
	return sr.refresh(context.Background())
}

// join adds a use, reading the ring if this process does not know it yet.
func (sr *sharedRing) join(ctx context.Context, u *ringUse) error {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.file == nil {
		f, err := sr.read(ctx)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// A candidate, stored when the config starts unless another instance stores one
			// first: the keys do not change between here and then in the usual case.
			sr.file = sr.fresh()
		case err != nil:
			return err
		default:
			sr.file, sr.stored = f, true
			sr.remember(f)
		}
		sr.reorder()
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
func (sr *sharedRing) start() error {
	ctx := context.Background()
	if _, err := sr.sync(ctx, false); err != nil {
		return fmt.Errorf("key ring in storage: %v", err)
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if !sr.started {
		sr.started = true
		ctx, sr.stop = context.WithCancel(ctx)
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
	for {
		sr.mu.Lock()
		_, _, _, every := sr.settings()
		sr.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
			sr.tick(ctx)
		}
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
		sr.logger.Error("key ring refresh failed; keeping the keys in use", zap.Error(err))
	}
	return changed
}

// sync updates storage (see update) and swaps the keys of every codec when they changed.
func (sr *sharedRing) sync(ctx context.Context, readFirst bool) (bool, error) {
	sr.mu.Lock()
	before := slices.Clone(sr.order)
	sr.mu.Unlock()
	err := sr.update(ctx, readFirst)
	sr.mu.Lock()
	defer sr.mu.Unlock()
	sr.reorder()
	if slices.Equal(before, sr.order) {
		return false, err
	}
	clear(sr.derived)
	for u := range sr.users {
		r := sr.derive(u.realm)
		for _, c := range u.codecs {
			c.SetKeyRing(r)
		}
	}
	sr.logger.Info("key ring reloaded", zap.Int("secrets", len(sr.order)))
	return true, err
}

// update reads storage and, when it must change, writes it under the storage lock, reading
// it again once locked (another instance may have done the work). readOnly-first keeps the
// lock off the usual tick, where nothing changes.
func (sr *sharedRing) update(ctx context.Context, readFirst bool) error {
	if readFirst {
		f, err := sr.read(ctx)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		sr.mu.Lock()
		needed := err != nil || sr.mustWrite(f)
		if !needed {
			sr.file, sr.stored = f, true
			sr.remember(f)
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
	defer sr.mu.Unlock()
	switch {
	case missing && sr.stored:
		sr.logger.Warn("key ring missing from storage; restoring it from the keys in use", zap.String("key", keyRingStorageKey))
		f = sr.file
	case missing:
		f = sr.file // this process's candidate: a new ring
	}
	merged, why := sr.merge(f)
	if !missing && len(why) == 0 {
		sr.file, sr.stored = f, true
		sr.remember(f)
		return nil
	}
	if missing {
		why = append(why, "created")
	}
	b, err := json.MarshalIndent(merged, "", "\t")
	if err != nil {
		return err
	}
	if err := sr.store(ctx, b); err != nil {
		return fmt.Errorf("storing the key ring: %v", err)
	}
	sr.file, sr.stored = merged, true
	sr.remember(merged)
	sr.logger.Info("key ring stored", zap.String("key", keyRingStorageKey), zap.Strings("changes", why), zap.Int("secrets", len(merged.Secrets)))
	return nil
}

// mustWrite reports whether the stored ring f lacks something: secrets this process still
// needs, the users' settings, or a rotation that is due.
func (sr *sharedRing) mustWrite(f *keyRingFile) bool {
	_, why := sr.merge(f)
	return len(why) > 0
}

// merge returns f with what this process adds: secrets it knows that f lacks and whose
// cookies may still be valid (a ring deleted or replaced under running instances must not log
// anyone out), its users' settings, and a rotation when one is due. why lists the changes.
func (sr *sharedRing) merge(f *keyRingFile) (*keyRingFile, []string) {
	now := sr.now().UTC().Truncate(time.Second)
	keep, slowest, rotate, _ := sr.settings()
	m := &keyRingFile{Version: keyRingVersion, Secrets: slices.Clone(f.Secrets), Keep: f.Keep, CheckInterval: f.CheckInterval}
	var why []string
	if keep > m.Keep {
		m.Keep, why = keep, append(why, "keep")
	}
	if slowest > m.CheckInterval {
		m.CheckInterval, why = slowest, append(why, "check_interval")
	}
	inFile := map[string]bool{}
	for _, s := range m.Secrets {
		inFile[s.Secret] = true
	}
	for _, s := range sr.knownNewestFirst() {
		if inFile[s.Secret] || !s.Retired.IsZero() && now.Sub(s.Retired) > m.Keep {
			continue
		}
		if s.Retired.IsZero() {
			s.Retired = now // it signed here; the stored ring's signer takes over
		}
		m.Secrets = append(m.Secrets, s) // older than the stored ones: they verify only
	}
	if sr.due(m, rotate, now) {
		fresh := storedSecret{Secret: cookie.NewSecret(), Created: now}
		// the others may have the old ring for up to one re-read interval: sign only after two
		fresh.Active = now.Add(2 * max(m.CheckInterval, slowest)).Add(time.Second)
		for i := range m.Secrets {
			if m.Secrets[i].Retired.IsZero() {
				m.Secrets[i].Retired = fresh.Active
			}
		}
		m.Secrets = append([]storedSecret{fresh}, m.Secrets...)
		why = append(why, "rotated")
	}
	before := len(m.Secrets)
	m.Secrets = slices.DeleteFunc(m.Secrets, func(s storedSecret) bool {
		return !s.Retired.IsZero() && now.Sub(s.Retired) > m.Keep
	})
	if len(m.Secrets) > maxStoredSecrets {
		m.Secrets = m.Secrets[:maxStoredSecrets] // the oldest go, even if cookies they signed live on
	}
	restored := 0
	for _, s := range m.Secrets {
		if !inFile[s.Secret] && sr.known[s.Secret].Secret != "" {
			restored++ // a secret this process knew, kept past the prune and the cap
		}
	}
	if restored > 0 {
		why = append(why, fmt.Sprintf("restored %d secrets", restored))
	}
	if len(m.Secrets) != before && len(why) > 0 {
		why = append(why, "pruned")
	}
	return m, why
}

// due reports whether the signing secret is older than the rotation interval. A newest
// secret dated in the future (a clock that jumped) would stall rotation until that date: it
// counts from when this process first saw it instead, and says so.
func (sr *sharedRing) due(f *keyRingFile, rotate time.Duration, now time.Time) bool {
	if len(f.Secrets) == 0 {
		return true
	}
	newest := f.Secrets[0]
	created := newest.Created
	if created.After(now.Add(time.Minute)) {
		first, ok := sr.seen[newest.Secret]
		if !ok {
			first = now
			sr.seen[newest.Secret] = now
			sr.logger.Warn("the key ring's newest secret is dated in the future (a clock jumped?); rotation counts from now instead",
				zap.Time("created", created), zap.Time("now", now))
		}
		created = first
	}
	return now.Sub(created) >= rotate
}

// remember adds f's secrets to those this process knows, and forgets those whose cookies
// cannot be valid any more.
func (sr *sharedRing) remember(f *keyRingFile) {
	now := sr.now()
	for _, s := range f.Secrets {
		sr.known[s.Secret] = s
	}
	for k, s := range sr.known {
		if !s.Retired.IsZero() && now.Sub(s.Retired) > f.Keep && !slices.ContainsFunc(f.Secrets, func(x storedSecret) bool { return x.Secret == k }) {
			delete(sr.known, k)
		}
	}
}

func (sr *sharedRing) knownNewestFirst() []storedSecret {
	out := make([]storedSecret, 0, len(sr.known))
	for _, s := range sr.known {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b storedSecret) int { return b.Created.Compare(a.Created) })
	return out
}

// reorder computes the secrets in use from the ring and the other known secrets: first the
// newest stored one already active (it signs), then all the others (they verify).
func (sr *sharedRing) reorder() {
	now := sr.now()
	f := sr.file
	signer := len(f.Secrets) - 1
	for i, s := range f.Secrets {
		if s.Active.IsZero() || !s.Active.After(now) {
			signer = i
			break
		}
	}
	order := []string{f.Secrets[signer].Secret}
	for i, s := range f.Secrets {
		if i != signer {
			order = append(order, s.Secret)
		}
	}
	for _, s := range sr.knownNewestFirst() {
		if !slices.Contains(order, s.Secret) && len(order) < maxStoredSecrets {
			order = append(order, s.Secret)
		}
	}
	sr.order = order
}

// derive returns the key ring of a realm for the secrets in use.
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

func readRing(ctx context.Context, stor certmagic.Storage) (*keyRingFile, error) {
	if info, err := stor.Stat(ctx, keyRingStorageKey); err == nil && info.Size > maxRingFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than a key ring can be (%d): refusing to read it; move it away to start a new one", keyRingStorageKey, info.Size, maxRingFileBytes)
	}
	b, err := stor.Load(ctx, keyRingStorageKey)
	if err != nil {
		return nil, err
	}
	if len(b) > maxRingFileBytes {
		return nil, fmt.Errorf("%s is %d bytes, more than a key ring can be (%d); move it away to start a new one", keyRingStorageKey, len(b), maxRingFileBytes)
	}
	var f keyRingFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is not a key ring (%v); move it away to start a new one", keyRingStorageKey, err)
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("%s: %v; move it away to start a new one", keyRingStorageKey, err)
	}
	return &f, nil
}

func (f *keyRingFile) check() error {
	if f.Version != keyRingVersion {
		return fmt.Errorf("unsupported version %d", f.Version)
	}
	if len(f.Secrets) == 0 || len(f.Secrets) > maxStoredSecrets {
		return fmt.Errorf("%d secrets, want 1 to %d", len(f.Secrets), maxStoredSecrets)
	}
	seen := make(map[[32]byte]int, len(f.Secrets))
	for i, s := range f.Secrets {
		b, err := cookie.ParseSecret(s.Secret)
		if err != nil {
			return fmt.Errorf("secret %d %v", i+1, err)
		}
		if j, dup := seen[sha256.Sum256(b)]; dup {
			return fmt.Errorf("secret %d duplicates secret %d", i+1, j+1)
		}
		seen[sha256.Sum256(b)] = i
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
		p := filepath.Join(fsys.Path, filepath.FromSlash(keyRingStorageKey))
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(p)
			if err != nil {
				return fmt.Errorf("%s is a symbolic link that does not resolve: %v", p, err)
			}
			return writeFileAtomic(target, b)
		}
	}
	return sr.storage.Store(ctx, keyRingStorageKey, b)
}

func writeFileAtomic(name string, b []byte) error {
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
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}

// keyRingAppID is the app that starts the storage key rings: Caddy starts apps only when a
// config runs, not when it is validated.
const keyRingAppID = "signed_cookies"

func init() {
	caddy.RegisterModule(keyRingApp{})
}

// keyRingApp starts the storage key rings of a config when it runs. Handlers load it; it
// needs no configuration.
// A config's handlers are provisioned one at a time, and the app starts after them: no lock.
type keyRingApp struct {
	rings []*sharedRing
}

// CaddyModule returns the Caddy module information.
func (keyRingApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: keyRingAppID, New: func() caddy.Module { return new(keyRingApp) }}
}

func (a *keyRingApp) add(sr *sharedRing) {
	if !slices.Contains(a.rings, sr) {
		a.rings = append(a.rings, sr)
	}
}

// Start brings each ring's storage up to date and starts its re-reads.
func (a *keyRingApp) Start() error {
	var errs []string
	for _, sr := range a.rings {
		if err := sr.start(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Stop does nothing: the rings live as long as a handler uses them.
func (a *keyRingApp) Stop() error { return nil }

// Interface guards
var (
	_ caddy.App        = (*keyRingApp)(nil)
	_ caddy.Destructor = (*sharedRing)(nil)
)
