// The storage key ring in Caddy: one shared ring (internal/keyring) per storage in the
// process, kept across config reloads in a caddy.UsagePool, and each handler's use of it.
// Split from module.go because it is the module's only tie to storage; what the ring promises
// and how it keeps it is internal/keyring's.

package signedcookies

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

// rings holds one shared ring per storage, across config reloads.
var rings = caddy.NewUsagePool()

// ringUse is one handler's use of a shared ring.
type ringUse struct {
	*keyring.Use
	poolKey string            // its ring in rings
	storage certmagic.Storage // where the ring is kept (and the revocations, beside it)
}

// loadStorage loads the storage module of a handler's config (its StorageRaw).
func loadStorage(ctx caddy.Context, h *Handler) (certmagic.Storage, error) {
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return nil, err
	}
	return mod.(caddy.StorageConverter).CertMagicStorage()
}

// newRingUse is a handler's use of the ring kept in rings under poolKey, with its settings.
func newRingUse(poolKey string, h *Handler, realm string) *ringUse {
	return &ringUse{poolKey: poolKey, Use: &keyring.Use{Realm: realm, Rotate: time.Duration(h.Rotate),
		Check: time.Duration(h.CheckInterval), Keep: h.longestLifetime()}}
}

// useStorageRing joins the shared ring of the handler's storage. It only reads storage: the
// ring is created, restored or rotated when the config starts (keyRingApp.Start), so that
// `caddy validate` has no side effects.
func useStorageRing(ctx caddy.Context, h *Handler, realm string) (*ringUse, error) {
	stor := ctx.Storage()
	id := "default:" + keyring.StorageName(stor)
	if h.StorageRaw != nil {
		id = "module:" + string(h.StorageRaw)
		var err error
		if stor, err = loadStorage(ctx, h); err != nil {
			return nil, fmt.Errorf("storage: %v", err)
		}
	}
	v, _, err := rings.LoadOrNew(id, func() (caddy.Destructor, error) {
		return keyring.New(stor, keyring.Options{Logger: caddy.Log().Named("signed_cookies.keyring"), OnError: countKeyringError}), nil
	})
	if err != nil {
		return nil, err
	}
	r := v.(*keyring.Ring)
	u := newRingUse(id, h, realm)
	u.storage = stor
	if err := r.Join(ctx, u.Use); err != nil {
		_, _ = rings.Delete(id)
		return nil, fmt.Errorf("key ring in storage: %v", err)
	}
	app, err := ctx.App(keyRingAppID)
	if err != nil {
		u.release()
		return nil, err
	}
	app.(*keyRingApp).add(r)
	h.logger.Info("signing keys from the storage key ring", zap.String("storage", keyring.StorageName(stor)),
		zap.String("realm", realm), zap.Duration("rotate", u.Rotate), zap.Duration("check_interval", u.Check))
	warnShortRotate(h.logger, u.Rotate, r.Settings())
	return u, nil
}

// warnShortRotate warns when rotate is so short that the ring, capped at keyring.MaxSecrets,
// would drop secrets whose cookies are still valid, given the longest lifetime and slowest
// re-read of the handlers sharing it (stored ones included: both only grow).
func warnShortRotate(logger *zap.Logger, rotate time.Duration, s keyring.Settings) {
	if safe := keyring.ShortestSafeRotate(s.Keep, s.Check); rotate < safe {
		logger.Warn("rotate is too short for the longest cookie lifetime: the key ring holds at most 64 secrets and would drop "+
			"secrets whose cookies are still valid (visitors get new IDs, signed cookies stop verifying); set rotate to the shortest safe interval or more",
			zap.String("rotate", cliDuration(rotate)), zap.String("longest_lifetime", cliDuration(s.Keep)),
			zap.String("check_interval", cliDuration(s.Check)), zap.String("shortest_safe_rotate", cliDuration(safe)))
	}
}

// longestLifetime is how long a cookie signed with a retired secret can still be valid.
func (h *Handler) longestLifetime() time.Duration {
	d := time.Duration(h.MaxAge)
	if h.Track != nil && time.Duration(h.Track.MaxAge) > d {
		d = time.Duration(h.Track.MaxAge)
	}
	return d
}

// ring is the use's key ring now.
func (u *ringUse) ring() *cookie.KeyRing { return u.Keys() }

// follow makes the codecs follow the ring's rotations.
func (u *ringUse) follow(codecs ...*cookie.Codec) { u.Follow(codecs...) }

// release ends the use; the last one stops the ring.
func (u *ringUse) release() {
	u.Leave()
	_, _ = rings.Delete(u.poolKey)
}

// refreshOnDemand is asked when a cookie failed its MAC: the keys may be stale (a secret
// another instance stored a moment ago). It waits 1.25 s at most, whatever the storage, and
// reports whether the cookie should be verified again (keyring.Use.ReadOnDemand).
func (u *ringUse) refreshOnDemand() bool { return u.ReadOnDemand() }
