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
	maxStoredSecrets  = 64 // bounds the HMACs a forged cookie costs, whatever the intervals
	keyRingStorageKey = "signed_cookies/keyring.json"
	keyRingLockName   = "signed_cookies_keyring"
	keyRingVersion    = 1
	secretBytes       = 32
)

// keyRingFile is the stored object. Secrets are newest first; the first signs.
type keyRingFile struct {
	Version int            `json:"version"`
	Secrets []storedSecret `json:"secrets"`
	// Keep is the longest any instance sharing the ring asked to keep retired secrets (the
	// longest cookie lifetime); pruning honours it, so one site's short lifetime cannot
	// invalidate another site's cookies.
	Keep time.Duration `json:"keep,omitempty"`
}

type storedSecret struct {
	Secret  string    `json:"secret"` // base64 of 32 random bytes
	Created time.Time `json:"created"`
	// Active is when it starts signing: a rotation gives every instance two re-read
	// intervals to learn the new secret (and accept its cookies) before any signs with it.
	// Zero: since Created.
	Active time.Time `json:"active,omitzero"`
	// Retired is when a newer secret took over signing; cookies signed before then stay
	// valid for the longest cookie lifetime after it.
	Retired time.Time `json:"retired,omitzero"`
}

// storedKeys loads, creates and rotates the key ring in storage.
type storedKeys struct {
	storage certmagic.Storage
	realm   string // the keys are derived for it (cookie.NewRealmKeyRing)
	rotate  time.Duration
	check   time.Duration
	keep    time.Duration // how long a retired secret can still have valid cookies
	logger  *zap.Logger
	now     func() time.Time
	mu      sync.Mutex
	current []string // secrets of the ring in use, to spot changes
}

func newStoredKeys(stor certmagic.Storage, realm string, rotate, check, keep time.Duration, logger *zap.Logger) *storedKeys {
	return &storedKeys{storage: stor, realm: realm, rotate: rotate, check: check, keep: keep, logger: logger, now: time.Now}
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
	fresh := storedSecret{Secret: base64.StdEncoding.EncodeToString(secret), Created: now, Active: now}
	if len(f.Secrets) > 0 {
		// the others may have the old ring for up to one check interval: sign only after two
		fresh.Active = now.Add(2 * k.check).Truncate(time.Second).Add(time.Second)
		for i := range f.Secrets {
			if f.Secrets[i].Retired.IsZero() {
				f.Secrets[i].Retired = fresh.Active
			}
		}
	}
	f.Secrets = append([]storedSecret{fresh}, f.Secrets...)
	f.Keep = max(f.Keep, k.keep)
	f.Secrets = slices.DeleteFunc(f.Secrets, func(s storedSecret) bool {
		return !s.Retired.IsZero() && now.Sub(s.Retired) > f.Keep
	})
	if len(f.Secrets) > maxStoredSecrets {
		f.Secrets = f.Secrets[:maxStoredSecrets]
	}
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
	order := k.order(f)
	secrets := make([][]byte, len(order))
	for i, s := range order {
		b, err := cookie.ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%s: secret %d %v", keyRingStorageKey, i+1, err)
		}
		secrets[i] = b
	}
	r, err := cookie.NewRealmKeyRing(k.realm, secrets...)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", keyRingStorageKey, err)
	}
	k.mu.Lock()
	k.current = order
	k.mu.Unlock()
	return r, nil
}

// order lists the stored secrets as the key ring uses them: first the newest one already
// active (it signs), then all the others, newest first (they verify).
func (k *storedKeys) order(f *keyRingFile) []string {
	now := k.now()
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
	return order
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
	same := slices.Equal(k.order(f), k.current) // also changes when a new secret activates
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
