// Revocation in Caddy: one shared revocation store (internal/revoke) per storage in the
// process, kept across config reloads in a caddy.UsagePool, each handler's view of its realm,
// and the one translation of a revocation asked for (by the admin route or the CLI) into
// stored entries: which handlers it concerns and how long their cookies could verify.
// Split from module.go because it is the module's second tie to storage.

package signedcookies

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

// revocationStores holds one shared store per storage, across config reloads.
var revocationStores = caddy.NewUsagePool()

// revokeSkew is added to an entry's lifetime: an instance whose clock is behind still
// verifies a cookie that long after the writer's clock says it expired.
const revokeSkew = time.Hour

// revokeUse is one handler's use of a shared store: its realm's view, and what the handler's
// cookies can be revoked by.
type revokeUse struct {
	*revoke.Use
	store   *revoke.Store
	poolKey string
	spec    revocable
	every   time.Duration // how often the store is re-read: the key ring's check_interval
}

// live are the uses of the handlers provisioned and not cleaned up: what the admin route
// revokes for.
var live struct {
	sync.Mutex
	uses map[*revokeUse]struct{}
}

// useRevocations joins the revocation store of the handler's storage: the key ring's
// storage, or with configured secrets Caddy's configured storage. It only reads storage. A
// handler provisioned outside a config (tests, benchmarks) has none: nil.
func useRevocations(ctx caddy.Context, h *Handler, realm string) (*revokeUse, error) {
	if len(ctx.Modules()) == 0 {
		return nil, nil
	}
	stor, id := ctx.Storage(), "default:"+keyring.StorageName(ctx.Storage())
	every := defaultCheck
	if h.keys != nil {
		stor, id, every = h.keys.storage, h.keys.poolKey, time.Duration(h.CheckInterval)
	}
	if err := registerRevocationMetrics(ctx.GetMetricsRegistry()); err != nil {
		return nil, err
	}
	v, _, err := revocationStores.LoadOrNew(id, func() (caddy.Destructor, error) {
		s := revoke.New(stor, revoke.Options{Logger: caddy.Log().Named("signed_cookies.revocations"), OnError: countRevocationError})
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	s := v.(*revoke.Store)
	u, err := s.Join(ctx, realm, every)
	if err != nil {
		_, _ = revocationStores.Delete(id)
		return nil, err
	}
	ru := &revokeUse{Use: u, store: s, poolKey: id, spec: h.revocable(realm), every: every}
	app, err := ctx.App(keyRingAppID)
	if err != nil {
		ru.release()
		return nil, err
	}
	app.(*keyRingApp).addStore(s)
	live.Lock()
	if live.uses == nil {
		live.uses = map[*revokeUse]struct{}{}
	}
	live.uses[ru] = struct{}{}
	live.Unlock()
	return ru, nil
}

// release ends the use; the last one stops the store's re-reads.
func (u *revokeUse) release() {
	live.Lock()
	delete(live.uses, u)
	live.Unlock()
	u.Leave()
	_, _ = revocationStores.Delete(u.poolKey)
}

// liveTargets are the targets of the handlers running now, one per store and realm.
func liveTargets() []revokeTarget {
	live.Lock()
	defer live.Unlock()
	var out []revokeTarget
	for u := range live.uses {
		out = append(out, revokeTarget{store: u.store, spec: u.spec, every: u.every})
	}
	return out
}

// revocable is what one handler's cookies can be revoked by, and how long each could verify.
type revocable struct {
	realm   string
	handler string        // describe(), for messages
	visitor time.Duration // the visitor cookie's max_age; 0 without one
	// signed are the patterns of sign and encrypt (max_age long), timed the names signed in
	// a format with a signing time, untimed those without one (never revocable).
	signed, untimed []string
	maxAge          time.Duration
	flaskFields     []string // exposed by flask_session
	flask           time.Duration
}

// revocable is the handler's revocable (its defaults set) in realm.
func (h *Handler) revocable(realm string) revocable {
	r := revocable{realm: realm, handler: h.describe(), maxAge: time.Duration(h.MaxAge)}
	if t := h.Track; t != nil {
		r.visitor = time.Duration(t.MaxAge)
	}
	r.signed = append(append(r.signed, h.Sign...), h.Encrypt...)
	for _, s := range h.SignFormat {
		r.untimed = append(r.untimed, s.Names...) // URLSafeSerializer: no timestamp
	}
	if f := h.FlaskSession; f != nil {
		r.flaskFields, r.flask = f.Expose, time.Duration(f.MaxAge)
	}
	return r
}

// lifetime is the longest any of the handler's revocable cookies verifies: what an entry
// revoking everything of the realm must outlive.
func (r revocable) lifetime() time.Duration {
	d := r.visitor
	if len(r.signed) > 0 {
		d = max(d, r.maxAge)
	}
	return max(d, r.flask)
}

// revokeTarget is a handler's revocable with the store its realm's entries go to.
type revokeTarget struct {
	store *revoke.Store
	spec  revocable
	every time.Duration
}

// revokeRequest is one revocation asked for: one of Visitor, Cookie (with Value), Flask (with
// Value) or All, and Before (default: now).
type revokeRequest struct {
	// Visitor is a visitor ID: a UUID, or 32 hex digits (id_format nginx).
	Visitor string `json:"visitor,omitempty"`
	// Cookie is the name of a cookie managed by sign or encrypt; Value its plain value, as
	// the upstream sets it.
	Cookie string `json:"cookie,omitempty"`
	// Flask is a field that flask_session exposes; Value its value as exposed (strings as
	// they are, numbers as JSON text: "42"). A JSON number is taken as its text.
	Flask string          `json:"flask,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	// All revokes everything of the realms concerned (the emergency brake).
	All bool `json:"all,omitempty"`
	// Before: cookies signed at or before it are revoked: a date (its first second, UTC) or
	// an RFC 3339 time, at most a day ahead. Default: now.
	Before string `json:"before,omitempty"`

	value string // Value, read
}

// revokedEntry is what a revocation stored, as the admin route and the CLI report it:
// never the value.
type revokedEntry struct {
	Storage string    `json:"storage"`
	Realm   string    `json:"realm"`
	Kind    string    `json:"kind"`
	Name    string    `json:"name,omitempty"`
	Subject string    `json:"subject,omitempty"`
	Before  time.Time `json:"before"`
	Until   time.Time `json:"until"`
}

// errNothingToRevoke: every cookie the revocation concerns has expired already.
var errNothingToRevoke = errors.New("nothing to revoke")

// notManagedError: no handler has the cookie, field or visitor cookie named.
type notManagedError struct{ msg string }

func (e *notManagedError) Error() string { return e.msg }

func notManaged(format string, args ...any) error {
	return &notManagedError{fmt.Sprintf(format, args...)}
}

// parse checks the request: exactly one choice, its value, and the time.
func (rq *revokeRequest) parse(now time.Time) (time.Time, error) {
	n := 0
	for _, set := range []bool{rq.Visitor != "", rq.Cookie != "", rq.Flask != "", rq.All} {
		if set {
			n++
		}
	}
	if n != 1 {
		return time.Time{}, errors.New("want exactly one of visitor, cookie (with value), flask (with value) and all (--visitor, --cookie, --flask, --all)")
	}
	if len(rq.Value) > 0 {
		var s string
		var num json.Number
		switch {
		case json.Unmarshal(rq.Value, &s) == nil:
			rq.value = s
		case json.Unmarshal(rq.Value, &num) == nil:
			rq.value = num.String()
		default:
			return time.Time{}, errors.New("value: want a string (or a number, taken as its text)")
		}
	}
	switch {
	case rq.Visitor != "" || rq.All:
		if len(rq.Value) > 0 {
			return time.Time{}, errors.New("value goes with cookie and flask only")
		}
	case rq.value == "":
		return time.Time{}, errors.New("value: empty; name the value whose cookies to revoke")
	case len(rq.value) > 4096:
		return time.Time{}, errors.New("value: longer than any cookie holds (4096 bytes)")
	}
	before := now
	if rq.Before != "" {
		t, err := parseDeadline(rq.Before)
		if err != nil {
			return time.Time{}, fmt.Errorf("before: %v", err)
		}
		if t.After(now.Add(revoke.MaxAhead)) {
			return time.Time{}, fmt.Errorf("before: %s is more than a day ahead: a revocation covers cookies already issued (and those issued until then)", rq.Before)
		}
		before = t
	}
	return before.Truncate(time.Second), nil
}

// visitorIDArg reads a visitor ID as an operator copies it: from the X-Visitor-Id header (a
// UUID) or, with id_format nginx, 32 hex digits.
func visitorIDArg(s string) ([cookie.VisitorIDLen]byte, error) {
	if id, ok := cookie.ParseUUID(strings.ToLower(s)); ok {
		return id, nil
	}
	var id [cookie.VisitorIDLen]byte
	if b, err := hex.DecodeString(s); err == nil && len(b) == len(id) {
		copy(id[:], b)
		return id, nil
	}
	return id, fmt.Errorf("visitor: %q is not a visitor ID (a UUID, or 32 hex digits)", s)
}

// planRevocation turns a revocation into entries for each store, one per realm concerned, each
// lasting as long as the cookies it revokes could verify. It refuses a revocation no handler
// can apply (a *notManagedError) and one whose cookies have all expired (errNothingToRevoke).
func planRevocation(rq *revokeRequest, targets []revokeTarget, now time.Time) (map[*revoke.Store]*revoke.File, []revokedEntry, error) {
	before, err := rq.parse(now)
	if err != nil {
		return nil, nil, err
	}
	kind, name, subject := revoke.All, "", ""
	switch {
	case rq.Visitor != "":
		id, err := visitorIDArg(rq.Visitor)
		if err != nil {
			return nil, nil, err
		}
		kind, subject = revoke.Visitor, revoke.SubjectOf(revoke.Visitor, "", id[:]).String()
	case rq.Cookie != "":
		kind, name, subject = revoke.Cookie, rq.Cookie, revoke.SubjectOf(revoke.Cookie, rq.Cookie, rq.value).String()
	case rq.Flask != "":
		kind, name, subject = revoke.Flask, rq.Flask, revoke.SubjectOf(revoke.Flask, rq.Flask, rq.value).String()
	}
	type realmKey struct {
		store *revoke.Store
		realm string
	}
	lives := map[realmKey]time.Duration{}
	var order []realmKey
	untimed := ""
	for _, t := range targets {
		life := t.spec.lifeOf(kind, name)
		if life < 0 && untimed == "" {
			untimed = t.spec.handler
		}
		if life <= 0 {
			continue
		}
		k := realmKey{t.store, t.spec.realm}
		if _, ok := lives[k]; !ok {
			order = append(order, k)
		}
		lives[k] = max(lives[k], life)
	}
	if len(order) == 0 {
		switch {
		case untimed != "":
			return nil, nil, notManaged("%s signs cookie %q in the itsdangerous format without a timestamp: its values carry no signing time, so nothing tells one issued before the revocation from one issued after, and none can be revoked", untimed, name)
		case kind == revoke.Visitor:
			return nil, nil, notManaged("no signed_cookies handler tracks visitors")
		case kind == revoke.Cookie:
			return nil, nil, notManaged("no signed_cookies handler signs or encrypts cookie %q", name)
		case kind == revoke.Flask:
			return nil, nil, notManaged("no flask_session exposes the field %q (revocation is by an exposed field)", name)
		}
		return nil, nil, notManaged("no signed_cookies handler has cookies to revoke")
	}
	plan := map[*revoke.Store]*revoke.File{}
	var report []revokedEntry
	for _, k := range order {
		until := before.Add(lives[k] + revokeSkew)
		if until.Before(now) {
			continue
		}
		f := plan[k.store]
		if f == nil {
			f = &revoke.File{Version: revoke.Version, Realms: map[string][]revoke.Entry{}}
			plan[k.store] = f
		}
		f.Realms[k.realm] = append(f.Realms[k.realm], revoke.Entry{Kind: kind, Name: name, Subject: subject, Before: before.UTC(), Until: until.UTC()})
		report = append(report, revokedEntry{Storage: keyring.StorageName(k.store.Storage()), Realm: k.realm, Kind: string(kind), Name: name,
			Subject: subject, Before: before.UTC(), Until: until.UTC()})
	}
	if len(report) == 0 {
		return nil, nil, fmt.Errorf("%w: every cookie signed at or before %s has expired already", errNothingToRevoke, before.UTC().Format(time.RFC3339))
	}
	return plan, report, nil
}

// lifeOf is how long the handler's cookies that an entry of kind and name revokes could
// verify: 0 when it has none, -1 when they carry no signing time.
func (r revocable) lifeOf(kind revoke.Kind, name string) time.Duration {
	switch kind {
	case revoke.Visitor:
		return r.visitor
	case revoke.Cookie:
		for _, p := range r.signed {
			if ok, _ := path.Match(p, name); ok {
				return r.maxAge
			}
		}
		if slices.Contains(r.untimed, name) {
			return -1
		}
	case revoke.Flask:
		if slices.Contains(r.flaskFields, name) {
			return r.flask
		}
	case revoke.All:
		return r.lifetime()
	}
	return 0
}

// storeRevocations writes the plan, store by store; the stores of this process apply it at
// once.
func storeRevocations(ctx context.Context, plan map[*revoke.Store]*revoke.File) error {
	for s, f := range plan {
		if _, err := s.Add(ctx, f); err != nil {
			return fmt.Errorf("revocations in %s: %w", keyring.StorageName(s.Storage()), err)
		}
	}
	return nil
}

// revokedFields log what a revocation stored: kinds, names, realms and times, never a
// value or its hash.
func revokedFields(report []revokedEntry) []zap.Field {
	var realms []string
	for _, e := range report {
		realms = append(realms, e.Realm)
	}
	e := report[0]
	return []zap.Field{zap.String("kind", e.Kind), zap.String("name", e.Name), zap.Strings("realms", realms),
		zap.Time("before", e.Before), zap.Time("until", e.Until)}
}

// Metrics of the revocation stores: they outlive configs, so they count on the process's
// metrics, registered again on each Provision like the others.
var revocationMetrics = struct {
	once    sync.Once
	entries prometheus.GaugeFunc
	errors  *prometheus.CounterVec
}{}

func registerRevocationMetrics(reg *prometheus.Registry) error {
	m := &revocationMetrics
	m.once.Do(func() {
		m.entries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "caddy", Subsystem: "signed_cookies", Name: "revocations",
			Help: "Revocation entries in force that this process holds, every store and realm together."}, heldRevocations)
		m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "caddy", Subsystem: "signed_cookies", Name: "revocation_errors_total",
			Help: "Revocation store operations that failed, by operation (read, lock, store; full: a revocation refused because the store holds its most entries); the revocations in memory stay in force."}, []string{"op"})
	})
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.entries, m.errors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// countRevocationError counts a failed operation of a revocation store.
func countRevocationError(op string) {
	_ = registerRevocationMetrics(nil)
	revocationMetrics.errors.WithLabelValues(op).Inc()
}

// heldRevocations is how many entries the live stores hold.
func heldRevocations() float64 {
	live.Lock()
	stores := map[*revoke.Store]bool{}
	for u := range live.uses {
		stores[u.store] = true
	}
	live.Unlock()
	n := 0
	for s := range stores {
		n += s.Held().Count()
	}
	return float64(n)
}

// revocationStorageKey names the storage of a handler's revocation store as useRevocations
// picks it, for the CLI, which does not run the config: the key ring's, or the config's.
func revocationStorageKey(h *Handler) string {
	if len(h.Secrets) == 0 && h.StorageRaw != nil {
		return "module:" + string(h.StorageRaw)
	}
	return "default"
}
