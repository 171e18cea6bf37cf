// The admin API's revocation routes, so that an app or an ops tool can log a user out
// everywhere on a password change: POST /signed_cookies/revoke stores a revocation for the
// handlers this instance runs and applies it at once; GET /signed_cookies/revocations lists
// what this instance holds.

package signedcookies

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

func init() {
	caddy.RegisterModule(adminRevoke{})
}

// maxRevokeBody bounds a revocation request's body.
const maxRevokeBody = 16 << 10

// adminRevoke serves the revocation routes on Caddy's admin API (module
// admin.api.signed_cookies, loaded with every config as Caddy's own admin routes are).
type adminRevoke struct{}

// CaddyModule returns the Caddy module information.
func (adminRevoke) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.signed_cookies", New: func() caddy.Module { return new(adminRevoke) }}
}

// Routes are the revocation routes.
func (a *adminRevoke) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/signed_cookies/revoke", Handler: caddy.AdminHandlerFunc(a.revoke)},
		{Pattern: "/signed_cookies/revocations", Handler: caddy.AdminHandlerFunc(a.list)},
	}
}

// revokeResponse is the answer to a revocation.
type revokeResponse struct {
	Revoked []revokedEntry `json:"revoked"`
	// OthersWithin is how long the other instances sharing the storage take at most to apply
	// it (their re-read interval); this one applied it before answering.
	OthersWithin string `json:"others_within"`
}

func (a *adminRevoke) revoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: POST a revocation")}
	}
	var rq revokeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRevokeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rq); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the revocation: %v", err)}
	}
	targets := liveTargets()
	plan, report, err := planRevocation(&rq, targets, time.Now())
	var nm *notManagedError
	switch {
	case errors.As(err, &nm):
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
	}
	if err := storeRevocations(r.Context(), plan); err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, revoke.ErrFull) {
			status = http.StatusInsufficientStorage
		}
		return caddy.APIError{HTTPStatus: status, Err: err}
	}
	var within time.Duration
	for _, t := range targets {
		if plan[t.store] != nil {
			within = max(within, t.every)
		}
	}
	caddy.Log().Named("signed_cookies.revocations").Info("revoked through the admin API", revokedFields(report)...)
	return writeJSON(w, revokeResponse{Revoked: report, OthersWithin: cliDuration(within)})
}

// revocationList is the answer to a listing.
type revocationList struct {
	Revocations []revokedEntry `json:"revocations"`
}

func (a *adminRevoke) list(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: errors.New("method not allowed: GET the revocations")}
	}
	out := revocationList{Revocations: []revokedEntry{}}
	var seen []*revoke.Store
	for _, t := range liveTargets() {
		if slices.Contains(seen, t.store) {
			continue
		}
		seen = append(seen, t.store)
		out.Revocations = append(out.Revocations, listEntries(keyring.StorageName(t.store.Storage()), t.store.Held())...)
	}
	return writeJSON(w, out)
}

// listEntries are a file's entries as reported, realm by realm.
func listEntries(storage string, f *revoke.File) []revokedEntry {
	var out []revokedEntry
	if f == nil {
		return out
	}
	realms := make([]string, 0, len(f.Realms))
	for realm := range f.Realms {
		realms = append(realms, realm)
	}
	slices.Sort(realms)
	for _, realm := range realms {
		for _, e := range f.Realms[realm] {
			out = append(out, revokedEntry{Storage: storage, Realm: realm, Kind: string(e.Kind), Name: e.Name, Subject: e.Subject,
				Before: e.Before.UTC(), Until: e.Until.UTC()})
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = (*adminRevoke)(nil)
