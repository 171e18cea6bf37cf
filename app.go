// The per-config app: Caddy starts apps only when a config runs (not when it is validated)
// and drops them with the config, so what belongs to one config lives here, never in package
// state.

package signedcookies

import (
	"errors"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

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
	rings  []*keyring.Ring
	stores []*revoke.Store
	// checked are the HTTP apps of this config whose handlers' composition was checked.
	checked []*caddyhttp.App
}

// firstCheck reports whether the composition of the HTTP app is to be checked now: the first
// time one of its handlers asks.
func (a *keyRingApp) firstCheck(app *caddyhttp.App) bool {
	if slices.Contains(a.checked, app) {
		return false
	}
	a.checked = append(a.checked, app)
	return true
}

// CaddyModule returns the Caddy module information.
func (keyRingApp) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: keyRingAppID, New: func() caddy.Module { return new(keyRingApp) }}
}

func (a *keyRingApp) add(r *keyring.Ring) {
	if !slices.Contains(a.rings, r) {
		a.rings = append(a.rings, r)
	}
}

func (a *keyRingApp) addStore(s *revoke.Store) {
	if !slices.Contains(a.stores, s) {
		a.stores = append(a.stores, s)
	}
}

// Start brings each ring's storage up to date and starts its re-reads, and those of the
// revocation stores. Only a ring that cannot be read or used fails it: one storage does not
// take is served from memory (keyring.Ring.Start).
func (a *keyRingApp) Start() error {
	var errs []string
	for _, r := range a.rings {
		if err := r.Start(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	for _, s := range a.stores {
		s.Start()
	}
	return nil
}

// Stop does nothing: the rings live as long as a handler uses them.
func (a *keyRingApp) Stop() error { return nil }

// Interface guards
var _ caddy.App = (*keyRingApp)(nil)
