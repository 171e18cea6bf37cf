// The storage key ring: used when no secret is configured. One small versioned JSON object in
// Caddy's storage, created under the storage lock by the first instance, rotated on schedule
// by whichever instance holds the lock, and re-read by every instance on a ticker, so a
// cluster sharing the storage issues and accepts the same cookies with no other coordination.
// Split from module.go because it is the only part that talks to storage and runs in the
// background.
package signedcookies

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
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
	secretBytes       = 32
)

// keyRingFile is the stored object. Secrets are newest first; the first signs.
type keyRingFile struct {
	Version int            `json:"version"`
	Secrets []storedSecret `json:"secrets"`
}

type storedSecret struct {
	Secret  string    `json:"secret"` // base64 of 32 random bytes
	Created time.Time `json:"created"`
	// Retired is when a newer secret took over signing; cookies signed before then stay
	// valid for the longest cookie lifetime after it.
	Retired time.Time `json:"retired,omitzero"`
}

// storedKeys loads, creates and rotates the key ring in storage.
type storedKeys struct {
	storage certmagic.Storage
	rotate  time.Duration
	check   time.Duration
	keep    time.Duration // how long a retired secret can still have valid cookies
	logger  *zap.Logger
	now     func() time.Time
	mu      sync.Mutex
	current []string // secrets of the ring in use, to spot changes
}

func newStoredKeys(stor certmagic.Storage, rotate, check, keep time.Duration, logger *zap.Logger) *storedKeys {
	return &storedKeys{storage: stor, rotate: rotate, check: check, keep: keep, logger: logger, now: time.Now}
}

// load returns the key ring, creating or rotating it under the lock when needed.
func (k *storedKeys) load(ctx context.Context) (*cookie.KeyRing, error) {
	f, err := k.read(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil || k.due(f) {
		if f, err = k.update(ctx); err != nil {
			return nil, err
		}
	}
	return k.ring(f)
}

func (k *storedKeys) read(ctx context.Context) (*keyRingFile, error) {
	b, err := k.storage.Load(ctx, keyRingStorageKey)
	if err != nil {
		return nil, err
	}
	var f keyRingFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is not a key ring (%v); move it away to start a new one", keyRingStorageKey, err)
	}
	if f.Version != keyRingVersion || len(f.Secrets) == 0 {
		return nil, fmt.Errorf("%s: unsupported version %d or no secrets", keyRingStorageKey, f.Version)
	}
	// Check every secret before anything builds on the ring (a rotation would store it again).
	for i, s := range f.Secrets {
		if _, err := cookie.ParseSecret(s.Secret); err != nil {
			return nil, fmt.Errorf("%s: secret %d %v; move it away to start a new one", keyRingStorageKey, i+1, err)
		}
	}
	return &f, nil
}

// due reports whether the signing secret is older than the rotation interval.
func (k *storedKeys) due(f *keyRingFile) bool {
	return k.now().Sub(f.Secrets[0].Created) >= k.rotate
}

// update creates or rotates the ring under the storage lock, re-reading it first: another
// instance may have done the work while this one waited.
func (k *storedKeys) update(ctx context.Context) (*keyRingFile, error) {
	if err := k.storage.Lock(ctx, keyRingLockName); err != nil {
		return nil, fmt.Errorf("locking the key ring: %v", err)
	}
	defer func() {
		if err := k.storage.Unlock(context.WithoutCancel(ctx), keyRingLockName); err != nil {
			k.logger.Error("unlocking the key ring", zap.Error(err))
		}
	}()
	f, err := k.read(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f = &keyRingFile{Version: keyRingVersion}
	case err != nil:
		return nil, err
	case !k.due(f):
		return f, nil
	}
	now := k.now().UTC().Truncate(time.Second)
	secret := make([]byte, secretBytes)
	rand.Read(secret)
	if len(f.Secrets) > 0 {
		f.Secrets[0].Retired = now
	}
	f.Secrets = append([]storedSecret{{Secret: base64.StdEncoding.EncodeToString(secret), Created: now}}, f.Secrets...)
	f.Secrets = slices.DeleteFunc(f.Secrets, func(s storedSecret) bool {
		return !s.Retired.IsZero() && now.Sub(s.Retired) > k.keep
	})
	b, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return nil, err
	}
	if err := k.storage.Store(ctx, keyRingStorageKey, b); err != nil {
		return nil, fmt.Errorf("storing the key ring: %v", err)
	}
	if len(f.Secrets) == 1 {
		k.logger.Info("key ring created", zap.String("key", keyRingStorageKey))
	} else {
		k.logger.Info("key ring rotated", zap.Int("secrets", len(f.Secrets)))
	}
	return f, nil
}

func (k *storedKeys) ring(f *keyRingFile) (*cookie.KeyRing, error) {
	secrets := make([][]byte, len(f.Secrets))
	names := make([]string, len(f.Secrets))
	for i, s := range f.Secrets {
		b, err := cookie.ParseSecret(s.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: secret %d %v", keyRingStorageKey, i+1, err)
		}
		secrets[i], names[i] = b, s.Secret
	}
	r, err := cookie.NewKeyRing(secrets...)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyRingStorageKey, err)
	}
	k.mu.Lock()
	k.current = names
	k.mu.Unlock()
	return r, nil
}

// start re-reads (and when due, rotates) the ring every check interval until ctx is done,
// which is when this module instance is unloaded.
func (k *storedKeys) start(ctx caddy.Context, h *Handler) {
	go func() {
		t := time.NewTicker(k.check)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				k.refresh(ctx, h)
			}
		}
	}()
}

func (k *storedKeys) refresh(ctx context.Context, h *Handler) {
	f, err := k.read(ctx)
	if err == nil && k.due(f) {
		f, err = k.update(ctx)
	}
	if err != nil {
		if ctx.Err() == nil {
			k.logger.Error("reading the key ring; keeping the keys in use", zap.Error(err))
		}
		return
	}
	k.mu.Lock()
	same := len(f.Secrets) == len(k.current)
	for i := 0; same && i < len(f.Secrets); i++ {
		same = f.Secrets[i].Secret == k.current[i]
	}
	k.mu.Unlock()
	if same {
		return
	}
	r, err := k.ring(f)
	if err != nil {
		k.logger.Error("key ring unusable; keeping the keys in use", zap.Error(err))
		return
	}
	h.setKeyRing(r)
	k.logger.Info("key ring reloaded", zap.Int("secrets", r.Len()))
}
