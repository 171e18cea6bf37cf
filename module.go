// Package signedcookies is a Caddy HTTP handler that keeps every cookie the client holds
// signed (or encrypted) while the upstream keeps reading plain values, and issues a signed
// visitor-ID cookie to requests that lack one.
package signedcookies

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler signs, verifies and issues cookies (module http.handlers.signed_cookies; Caddyfile
// directive signed_cookies, ordered before header).
//
// On every request it sets the placeholders {http.signed_cookies.visitor_id} (the verified or
// new visitor ID, a UUID; empty without one), {http.signed_cookies.visitor_new} (true when
// the ID was issued on this request) and {http.signed_cookies.invalid} (names of the cookies
// dropped, comma separated). With Caddy's metrics enabled it counts, on Caddy's registry:
// caddy_signed_cookies_issued_total, _verified_total, _resigned_total, _signed_total,
// _invalid_total{reason} (request cookies not forwarded) and _dropped_total{reason} (upstream
// Set-Cookie lines not sent). Logs and metrics carry cookie names and reasons, never values.
//
// A handler with neither track, sign nor encrypt tracks visitors with the defaults.
type Handler struct {
	// Secrets are base64 strings of at least 32 random bytes. The first signs; all verify,
	// which is how a secret is rotated. Placeholders ({env.X}, {file.X}) are resolved at
	// Provision, so the config shows the placeholder, never the key. Empty: the key ring is
	// kept in Caddy's storage and rotated automatically.
	Secrets []string `json:"secrets,omitempty"`

	// Realm separates this handler's keys from those of other handlers that share its secrets
	// or storage key ring: the keys are derived from the secrets and the realm, so a cookie
	// signed in one realm is invalid in another. Handlers (and Caddy instances) that must
	// accept each other's cookies use the same realm (compared byte for byte). At most 128
	// printable ASCII bytes, no space at either end; {env.*} and {file.*} placeholders are
	// resolved at Provision (no others: a realm must not vary between instances or reloads).
	// Default: none (every handler with the same secrets accepts the same cookies). Changing
	// it invalidates every cookie already issued.
	Realm string `json:"realm,omitempty"`

	// Rotate is how often the storage key ring gets a new signing secret. Only without
	// Secrets. Default: 30 days.
	Rotate caddy.Duration `json:"rotate,omitempty"`

	// CheckInterval is how often the storage key ring is re-read, so that a rotation made
	// by one Caddy instance reaches all that share the storage. Only without Secrets.
	// Default: 1 minute.
	CheckInterval caddy.Duration `json:"check_interval,omitempty"`

	// StorageRaw is the storage module holding the key ring. Only without Secrets.
	// Default: Caddy's configured storage.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=caddy.storage inline_key=module"`

	// Track configures the signed visitor-ID cookie. Absent: no visitor cookie is issued,
	// unless Sign and Encrypt are empty too (then the defaults apply).
	Track *Track `json:"track,omitempty"`

	// Sign lists the upstream cookies (names or path.Match globs) that leave signed: the
	// client can read them but not forge them.
	Sign []string `json:"sign,omitempty"`

	// Encrypt lists the upstream cookies (names or globs) that leave signed and encrypted.
	Encrypt []string `json:"encrypt,omitempty"`

	// SignFormat lists upstream cookies signed in another format than securecookie's, with
	// that format's own keys: itsdangerous, so that a Python service verifies them with
	// itsdangerous alone. On the way in they are verified and decoded like any managed cookie.
	SignFormat []SignFormat `json:"sign_format,omitempty"`

	// FlaskSession verifies the upstream's own Flask session cookie at the edge.
	FlaskSession *FlaskSession `json:"flask_session,omitempty"`

	// MaxAge is the oldest signature accepted on upstream cookies; a cookie the upstream sets
	// with a shorter Max-Age or Expires verifies only that long. Default: 400 days.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Cookie changes how the upstream's cookies (managed or not) are set and read: attributes
	// added or removed, Domain and Path rewritten, a transparent __Host-/__Secure- prefix,
	// values split over several cookies, cookies held back until consent. Where several
	// match a name, the most specific wins (a name before a glob, a glob with more literal
	// characters before one with fewer), then the first.
	Cookie []CookieRule `json:"cookie,omitempty"`

	// Adopt eases the rollout in front of an app that already has users: until each
	// deadline, a managed cookie whose value is not in encoded form (set before the module
	// was there) reaches the upstream as received; an encoded value must still verify. Counted
	// in caddy_signed_cookies_adopted_total{cookie}.
	Adopt []Adoption `json:"adopt,omitempty"`

	// Unwrap is the way back: encoded values still verify and reach the upstream plain, plain
	// values pass, the upstream's Set-Cookie lines leave as written, and no visitor ID is
	// issued or re-signed. After the longest cookie lifetime the module can be removed.
	Unwrap bool `json:"unwrap,omitempty"`

	// OnInvalid is what happens to a request carrying a managed cookie that fails to verify
	// (or a look-alike of one): "drop" (default) forgets it and clears it in the browser (a
	// bad visitor cookie is replaced by a new ID; a valid one is kept even when another
	// cookie is bad); "reject" answers 400 through Caddy's error handling and clears it too.
	OnInvalid string `json:"on_invalid,omitempty"`

	logger  *zap.Logger
	warn    *warner // bounds the warnings about requests
	metrics *metrics
	policy  *engine.Policy
	keys    *ringUse // the storage key ring in use; nil with configured secrets
	// flaskWatch notices a flask_session whose keys are not the app's; nil without one.
	flaskWatch *flaskWatch
	revoked    *revokeUse
	now        func() time.Time
	clock      func() int64 // now, in Unix seconds: made once, so that no request allocates it
}

// SignFormat signs cookies in another format (Caddyfile: sign <names> { format … }).
type SignFormat struct {
	// Names are cookie names or globs.
	Names []string `json:"names,omitempty"`

	// Format is "itsdangerous": URLSafeSerializer(secret_key, salt).dumps(value).
	Format string `json:"format,omitempty"`

	// SecretKey lists the keys, newest first: the first signs, all verify (as with secret;
	// itsdangerous itself lists them oldest first and signs with the last). At least 24 bytes
	// each. Placeholders ({env.X}, {file.X}) are resolved at Provision.
	SecretKey []string `json:"secret_key,omitempty"`

	// Salt is itsdangerous' salt. Default: "itsdangerous".
	Salt string `json:"salt,omitempty"`
}

// FlaskSession verifies a Flask app's session cookie (itsdangerous URLSafeTimedSerializer,
// the "hmac" key derivation, tagged JSON, optionally zlib-compressed), as Flask 2.x and 3.x
// write it. A valid one reaches the upstream untouched; its exposed keys become request
// headers and the placeholders {http.signed_cookies.flask.<key>}. Client copies of those
// headers are always removed.
type FlaskSession struct {
	// Name of the cookie. Default: "session".
	Name string `json:"name,omitempty"`

	// SecretKey is Flask's SECRET_KEY, then its SECRET_KEY_FALLBACKS. Placeholders are
	// resolved at Provision.
	SecretKey []string `json:"secret_key,omitempty"`

	// Salt is Flask's session salt. Default: "cookie-session".
	Salt string `json:"salt,omitempty"`

	// MaxAge is PERMANENT_SESSION_LIFETIME: older sessions are expired. Default: 31 days.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Expose lists the session's top-level keys made available downstream. Strings are
	// passed as they are, other values as JSON.
	Expose []string `json:"expose,omitempty"`

	// HeaderPrefix names the headers the exposed keys reach the upstream in: user_id becomes
	// X-Flask-Session-User-Id. "off": none. Default: "X-Flask-Session-".
	HeaderPrefix string `json:"header_prefix,omitempty"`

	// OnInvalid is what happens to a forged, expired or malformed session: "drop" (default:
	// not forwarded, cleared in the browser), "reject" (400) or "pass" (forwarded as it is,
	// with nothing exposed: the app decides). Logged and counted as any invalid cookie.
	OnInvalid string `json:"on_invalid,omitempty"`
}

// CookieRule is a rule for the upstream's cookies whose names match Names.
type CookieRule struct {
	// Names are cookie names or path.Match globs.
	Names []string `json:"names,omitempty"`

	// Secure: true adds the attribute to every Set-Cookie line of these cookies, false
	// removes it; absent leaves it as the upstream set it. HTTPOnly and Partitioned alike.
	Secure      *bool `json:"secure,omitempty"`
	HTTPOnly    *bool `json:"http_only,omitempty"`
	Partitioned *bool `json:"partitioned,omitempty"`

	// SameSite sets the attribute: "lax", "strict" or "none"; "-" removes it.
	SameSite string `json:"same_site,omitempty"`

	// Domain rewrites a Domain attribute equal to From (case and a leading dot aside) to To,
	// or removes it when To is "-" (nginx's proxy_cookie_domain).
	Domain *Rewrite `json:"domain,omitempty"`

	// Path rewrites a Path attribute starting with From: that prefix becomes To (nginx's
	// proxy_cookie_path).
	Path *Rewrite `json:"path,omitempty"`

	// Prefix is "__Host-" or "__Secure-": the browser holds the prefixed name, with what the
	// prefix requires (Secure; for __Host-, Path=/ and no Domain), while the upstream sets and
	// reads the name without it. A client-sent cookie of the unprefixed name is dropped, so a
	// sibling subdomain cannot toss one in.
	Prefix string `json:"prefix,omitempty"`

	// Split carries a value whose encoded form exceeds what a browser keeps of one cookie in
	// several cookies (name, name__1, …), joined and verified whole on the way in. Managed
	// cookies (sign, encrypt) only.
	Split bool `json:"split,omitempty"`

	// SplitCookies is the most cookies a split value takes, 2 to 8. Default: 3, which keeps
	// a request under Caddy's default max_header_size (16 KB) and what browsers send over
	// HTTP/2; raise it only with max_header_size, and mind the upstream's own header limit.
	SplitCookies int `json:"split_cookies,omitempty"`

	// NeedsConsent holds these cookies back (their Set-Cookie lines dropped, their values not
	// forwarded) unless the visitor cookie's consent gates (consent, honor_gpc) allow.
	NeedsConsent bool `json:"needs_consent,omitempty"`
}

// Rewrite is an attribute rewrite, From → To.
type Rewrite struct {
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Adoption accepts managed cookies in plain form until a deadline.
type Adoption struct {
	// Cookies are names or globs, each managed by sign or encrypt.
	Cookies []string `json:"cookies,omitempty"`

	// Until is the deadline: a date (2027-01-31, meaning its first second, UTC) or an RFC
	// 3339 time. Adoption stops by itself then, with no reload.
	Until string `json:"until,omitempty"`

	// Attributes are those the upstream sets these cookies with ("Path=/; HttpOnly;
	// Max-Age=2592000"; no Expires). When given, an adopted cookie is set again in encoded
	// form on the same response; without them it passes until the upstream sets it again.
	Attributes string `json:"attributes,omitempty"`
}

// AdoptNginx keeps the IDs of nginx userid's cookie during a migration.
type AdoptNginx struct {
	// Name of nginx's cookie (userid_name), such as "uid".
	Name string `json:"name,omitempty"`

	// Until is the deadline, as in Adoption.
	Until string `json:"until,omitempty"`
}

// Track configures the visitor-ID cookie.
type Track struct {
	// Name of the cookie. Default: "vid". __Host- and __Secure- names are checked.
	Name string `json:"name,omitempty"`

	// MaxAge is the cookie's lifetime and the oldest signature accepted. Default: 365 days;
	// at most 400 days.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// Refresh re-signs (same ID) a cookie whose signature is older than this, which also
	// extends its lifetime. Default: 7 days.
	Refresh caddy.Duration `json:"refresh,omitempty"`

	// Domain attribute of the cookie. Default: none (host-only).
	Domain string `json:"domain,omitempty"`

	// Path attribute of the cookie. Default: "/".
	Path string `json:"path,omitempty"`

	// Header is the request header carrying the verified ID to the upstream; client copies
	// of it are always removed. "off" sends none. Default: "X-Visitor-Id".
	Header string `json:"header,omitempty"`

	// Forward is what the upstream's Cookie header carries for this cookie: "plain" (default)
	// the verified ID as a UUID, "strip" nothing.
	Forward string `json:"forward,omitempty"`

	// Secure is "auto" (default: when the request came over HTTPS, or through a trusted
	// proxy saying https), "on" or "off". Prefixed names, SameSite=None and Partitioned
	// always get Secure unless it is "off", which they reject.
	Secure string `json:"secure,omitempty"`

	// HTTPOnly hides the cookie from JavaScript. Default: true.
	HTTPOnly *bool `json:"http_only,omitempty"`

	// SameSite is "lax" (default), "strict" or "none" (any case).
	SameSite string `json:"same_site,omitempty"`

	// Partitioned sets the CHIPS Partitioned attribute.
	Partitioned bool `json:"partitioned,omitempty"`

	// Encrypt encrypts the ID too. Default: signed only.
	Encrypt bool `json:"encrypt,omitempty"`

	// HonorGPC issues no new ID to requests with Sec-GPC: 1. A valid cookie is still read.
	HonorGPC bool `json:"honor_gpc,omitempty"`

	// Consent issues a new ID only when the request carries this cookie: "name" (any value)
	// or "name=value".
	Consent string `json:"consent,omitempty"`

	// AdoptNginx: until its deadline, a request with nginx userid's cookie (base64 of four
	// 32-bit words, as nginx 1.22 writes it) and no valid visitor cookie keeps nginx's ID: it
	// is issued as a signed visitor cookie and nginx's cookie is cleared. A malformed one gets
	// a new ID. Counted in caddy_signed_cookies_adopted_total{cookie}.
	AdoptNginx *AdoptNginx `json:"adopt_nginx,omitempty"`

	// Format, SecretKey and Salt sign the visitor cookie in another format, as for
	// sign_format: "itsdangerous" makes it URLSafeTimedSerializer(secret_key, salt).dumps(id)
	// (the ID as UUID text; loads takes max_age), which a Python service verifies alone.
	// Default: securecookie's, with the handler's keys.
	Format    string   `json:"format,omitempty"`
	SecretKey []string `json:"secret_key,omitempty"`
	Salt      string   `json:"salt,omitempty"`

	// IDFormat is how the upstream and the placeholders read the ID: "uuid" (default) or
	// "nginx": 32 upper-case hex digits, as nginx's $uid_got and $uid_set print them (which
	// add "name=" in front).
	IDFormat string `json:"id_format,omitempty"`

	// WhenRaw issues a new ID only to requests matching this matcher set (for instance not
	// bots). Verification of an existing cookie never depends on it.
	WhenRaw caddy.ModuleMap `json:"when,omitempty" caddy:"namespace=http.matchers"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.signed_cookies",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, checks the configuration, loads the keys and compiles the policy.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.warn = &warner{limit: rate.NewLimiter(warningRate, warningBurst)}
	h.now = time.Now
	h.clock = func() int64 { return h.now().Unix() }
	h.setDefaults()
	if err := h.check(); err != nil {
		return err
	}
	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	h.metrics = m

	realm, err := resolveRealm(h.Realm)
	if err != nil {
		return fmt.Errorf("realm: %v", err)
	}
	k := compileKeys{gate: func(t *Track) (func(*http.Request) bool, error) { return loadGate(ctx, t) }}
	if len(h.Secrets) > 0 {
		k.ring, err = h.configuredKeys(realm)
	} else if h.keys, err = useStorageRing(ctx, h, realm); err == nil {
		k.ring, k.refresh = h.keys.ring(), h.keys.refreshOnDemand
	}
	if err != nil {
		return err
	}
	if h.revoked, err = useRevocations(ctx, h, realm); err != nil {
		return err
	}
	if h.revoked != nil {
		k.revocations = h.revoked.View
	}
	c, err := h.compile(k)
	if err != nil {
		return err
	}
	if h.keys != nil {
		h.keys.follow(c.codecs...)
	}
	h.policy = c.policy
	if h.FlaskSession != nil {
		h.flaskWatch = &flaskWatch{name: h.FlaskSession.Name}
	}
	h.logLoadWarnings()
	return checkComposition(ctx, h)
}

// loadGate loads track's when matchers.
func loadGate(ctx caddy.Context, t *Track) (func(*http.Request) bool, error) {
	mods, err := ctx.LoadModule(t, "WhenRaw")
	if err != nil {
		return nil, err
	}
	var when caddyhttp.MatcherSet
	for _, m := range mods.(map[string]any) {
		when = append(when, m)
	}
	return func(r *http.Request) bool {
		ok, err := when.MatchWithError(r)
		return err == nil && ok
	}, nil
}

// logLoadWarnings logs what the configuration does that its author may not expect.
func (h *Handler) logLoadWarnings() {
	for _, w := range h.policy.Warnings() {
		h.logger.Warn(w, zap.String("handler", h.describe()))
	}
	for _, a := range h.Adopt {
		until, _ := parseDeadline(a.Until) // checked
		h.warnPast("adopt", a.Until, until)
		h.warnLongWindow("adopt "+strings.Join(a.Cookies, " "), a.Until, until, h.adoptLifetime(a))
	}
	if t := h.Track; t != nil && t.AdoptNginx != nil {
		until, _ := parseDeadline(t.AdoptNginx.Until) // checked
		h.warnPast("track: adopt_nginx", t.AdoptNginx.Until, until)
		// nginx's own userid_expires is not known here; no browser keeps a cookie longer
		h.warnLongWindow("track: adopt_nginx "+t.AdoptNginx.Name, t.AdoptNginx.Until, until, lifetime{maxTrackMaxAge, "the 400 days browsers keep a cookie at most"})
	}
	for _, s := range h.SignFormat {
		h.logger.Info("itsdangerous values carry no timestamp (URLSafeSerializer): max_age and the upstream's Max-Age or Expires do not bound them", zap.Strings("cookies", s.Names))
	}
	if f := h.FlaskSession; f != nil {
		keys, err := resolveKeys("secret_key", f.SecretKey, false)
		for i, k := range keys {
			if err == nil && checkFormatKey(k) != nil {
				h.logger.Warn("the Flask app's secret key is weak: anyone who guesses it can forge sessions, for the app and for this check alike", zap.Int("secret_key", i+1))
			}
		}
	}
}

// Cleanup releases the storage key ring and the revocation store.
func (h *Handler) Cleanup() error {
	if h.keys != nil {
		h.keys.release()
	}
	if h.revoked != nil {
		h.revoked.release()
	}
	return nil
}

func (h *Handler) setDefaults() {
	// A handler that only has cookie rules hardens the app's cookies; it does not track.
	if h.Track == nil && len(h.Sign) == 0 && len(h.Encrypt) == 0 && len(h.SignFormat) == 0 && h.FlaskSession == nil && len(h.Cookie) == 0 {
		h.Track = new(Track)
	}
	if h.MaxAge == 0 {
		h.MaxAge = caddy.Duration(defaultMaxAge)
	}
	h.OnInvalid = cmpOr(strings.ToLower(h.OnInvalid), "drop")
	if len(h.Secrets) == 0 {
		h.Rotate = cmpOr(h.Rotate, caddy.Duration(defaultRotate))
		h.CheckInterval = cmpOr(h.CheckInterval, caddy.Duration(defaultCheck))
	}
	if t := h.Track; t != nil {
		t.Name = cmpOr(t.Name, defaultTrackName)
		t.MaxAge = cmpOr(t.MaxAge, caddy.Duration(defaultTrackMaxAge))
		t.Refresh = cmpOr(t.Refresh, caddy.Duration(defaultTrackRefresh))
		t.Path = cmpOr(t.Path, "/")
		t.Header = cmpOr(t.Header, defaultIDHeader)
		t.Forward = cmpOr(strings.ToLower(t.Forward), "plain")
		t.Secure = cmpOr(strings.ToLower(t.Secure), "auto")
		t.SameSite = cmpOr(strings.ToLower(t.SameSite), "lax")
		t.IDFormat = cmpOr(strings.ToLower(t.IDFormat), "uuid")
		if t.HTTPOnly == nil {
			on := true
			t.HTTPOnly = &on
		}
	}
	if f := h.FlaskSession; f != nil {
		f.Name = cmpOr(f.Name, "session")
		f.Salt = cmpOr(f.Salt, "cookie-session")
		f.MaxAge = cmpOr(f.MaxAge, caddy.Duration(31*day))
		f.HeaderPrefix = cmpOr(f.HeaderPrefix, "X-Flask-Session-")
		f.OnInvalid = cmpOr(strings.ToLower(f.OnInvalid), "drop")
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// configuredKeys resolves the configured secrets into a key ring.
func (h *Handler) configuredKeys(realm string) (*cookie.KeyRing, error) {
	repl := caddy.NewReplacer()
	secrets := make([][]byte, len(h.Secrets))
	for i, s := range h.Secrets {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			// the error names the placeholder, never a value
			return nil, fmt.Errorf("secret %d: %v: set it in Caddy's environment (or file) before Caddy starts; %s", i+1, err, makeSecretHint)
		}
		var weak string
		if secrets[i], weak, err = parseSecret(i, v); err != nil {
			return nil, err
		}
		if weak != "" {
			// It verifies only; its cookies were signed before this start, at the latest.
			until := h.now().Add(h.longestLifetime()).UTC().Format(time.DateOnly)
			h.logger.Warn(fmt.Sprintf("secret %d %s: it only verifies the cookies it signed, which expire by %s; remove it then", i+1, weak, until),
				zap.Int("secret", i+1), zap.String("remove_after", until))
		}
	}
	ring, err := cookie.NewRealmKeyRing(realm, secrets...)
	if err != nil {
		return nil, err
	}
	if err := selfTest(ring); err != nil {
		return nil, err
	}
	h.logger.Info("signing keys from configured secrets", zap.Int("secrets", ring.Len()), zap.String("realm", realm))
	return ring, nil
}

// warnPast says so when a deadline has passed already: the setting then does nothing.
func (h *Handler) warnPast(field, text string, until time.Time) {
	if !until.After(h.now()) {
		h.logger.Warn("deadline in the past: this setting has no effect any more", zap.String("field", field), zap.String("until", text))
	}
}

// lifetime is how long a cookie can live, and what says so.
type lifetime struct {
	d   time.Duration
	why string
}

// adoptLifetime is how long a plain cookie adopted by a can still arrive: the Max-Age its
// attributes give, else the oldest signature the handler accepts, and never more than
// browsers keep a cookie.
func (h *Handler) adoptLifetime(a Adoption) lifetime {
	lt := lifetime{time.Duration(h.MaxAge), "max_age " + formatDays(time.Duration(h.MaxAge))}
	for attr := range strings.SplitSeq(a.Attributes, ";") {
		if k, v, _ := strings.Cut(strings.TrimSpace(attr), "="); strings.EqualFold(k, "max-age") {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 && n < int64(maxTrackMaxAge/time.Second) {
				lt = lifetime{time.Duration(n) * time.Second, "its attributes' Max-Age=" + v}
			}
		}
	}
	if lt.d > maxTrackMaxAge {
		lt = lifetime{maxTrackMaxAge, "the 400 days browsers keep a cookie at most"}
	}
	return lt
}

// warnLongWindow says so when a rollout window ends later than the cookies it is for can
// live: by then every plain cookie set before the rollout has expired or been set again
// signed, and the rest of the window only accepts plain values no browser holds any more
// (forged ones, that is). A deadline years out is a typo or a placeholder.
func (h *Handler) warnLongWindow(field, text string, until time.Time, lt lifetime) {
	now := h.now()
	if until.Sub(now) <= lt.d {
		return
	}
	h.logger.Warn("rollout window longer than the cookies' lifetime: after "+lt.why+" every plain cookie set before the rollout has expired or been set again signed, "+
		"and until the deadline plain values, forged or not, are still accepted; end the window sooner",
		zap.String("field", field), zap.String("until", text), zap.String("lifetime", formatDays(lt.d)),
		zap.String("suggested_until", now.Add(lt.d).UTC().Format(time.DateOnly)))
}

// formatDays writes a duration in days when it is whole days (365d), else as Go does.
func formatDays(d time.Duration) string {
	if d >= day && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}

// selfTest round-trips a value through the signing key so that a broken key fails the config
// load, not the first request.
func selfTest(ring *cookie.KeyRing) error {
	for _, enc := range []bool{false, true} {
		c := cookie.NewCodec(ring, cookie.Options{Encrypt: enc})
		v, err := c.Encode("probe", []byte("probe"))
		if err != nil {
			return fmt.Errorf("key self-test: %v", err)
		}
		if d, err := c.Decode("probe", v); err != nil || string(d.Value) != "probe" {
			return fmt.Errorf("key self-test failed")
		}
	}
	return nil
}

// isHTTPS reports whether the client's connection is HTTPS, directly or through a trusted
// proxy that says so.
func isHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		return strings.EqualFold(strings.TrimSpace(r.Header.Get("X-Forwarded-Proto")), "https")
	}
	return false
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
