// Package signedcookies is a Caddy HTTP handler that keeps every cookie the client holds
// signed (or encrypted) while the upstream keeps reading plain values, and issues a signed
// visitor-ID cookie to requests that lack one.
package signedcookies

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func init() {
	caddy.RegisterModule(Handler{})
}

const (
	day = 24 * time.Hour

	defaultTrackName    = "vid"
	defaultTrackMaxAge  = 365 * day
	maxTrackMaxAge      = 400 * day // browsers cap cookie lifetimes here
	defaultTrackRefresh = 7 * day
	defaultIDHeader     = "X-Visitor-Id"
	defaultMaxAge       = 400 * day
	defaultRotate       = 30 * day
	defaultCheck        = time.Minute
	browserCookieLimit  = 4096 // name + value, what browsers store
)

// Handler signs, verifies and issues cookies. See the README for the Caddyfile syntax.
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

	// Track configures the signed visitor-ID cookie. Absent: no visitor cookie is issued.
	Track *Track `json:"track,omitempty"`

	// Sign lists the upstream cookies (names or path.Match globs) that leave signed: the
	// client can read them but not forge them.
	Sign []string `json:"sign,omitempty"`

	// Encrypt lists the upstream cookies (names or globs) that leave signed and encrypted.
	Encrypt []string `json:"encrypt,omitempty"`

	// MaxAge is the oldest signature accepted on upstream cookies. Default: 400 days.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// OnInvalid is what happens to a request carrying a managed cookie that fails to verify
	// (or a look-alike of one): "drop" (default) forgets it and clears it in the browser (a
	// bad visitor cookie is replaced by a new ID; a valid one is kept even when another
	// cookie is bad); "reject" answers 400 through Caddy's error handling.
	OnInvalid string `json:"on_invalid,omitempty"`

	logger    *zap.Logger
	metrics   *metrics
	jar       *cookie.Jar
	codecs    []*cookie.Codec // every codec, for key ring swaps
	trackRule int             // jar rule of the visitor cookie, -1 without tracking
	track     *trackRuntime
	keys      *storedKeys // nil with configured secrets
	now       func() time.Time
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

	// SameSite is "lax" (default), "strict" or "none".
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

	// WhenRaw issues a new ID only to requests matching this matcher set (for instance not
	// bots). Verification of an existing cookie never depends on it.
	WhenRaw caddy.ModuleMap `json:"when,omitempty" caddy:"namespace=http.matchers"`
}

type trackRuntime struct {
	name         string
	codec        *cookie.Codec
	refresh      int64 // seconds
	header       string
	headerNorm   string // lower case, '_' and '.' as '-'; empty with header off
	strip        bool
	secure       string
	attrs        string // "; Path=/; Max-Age=...; HttpOnly; SameSite=Lax" without Secure
	forceSecure  bool
	consentName  string
	consentValue string
	consentAny   bool
	honorGPC     bool
	when         caddyhttp.MatcherSet
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.signed_cookies",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, loads the keys and prepares everything the hot path needs.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	h.trackRule = -1
	if h.MaxAge == 0 {
		h.MaxAge = caddy.Duration(defaultMaxAge)
	}
	if h.OnInvalid == "" {
		h.OnInvalid = "drop"
	}
	if h.Track != nil {
		h.Track.setDefaults()
	}
	// Checked before anything with side effects (the storage key ring is created on load).
	if err := h.checkConfig(); err != nil {
		return err
	}

	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return err
	}
	h.metrics = m

	ring, err := h.loadKeys(ctx)
	if err != nil {
		return err
	}

	var rules []cookie.Rule
	if t := h.Track; t != nil {
		tr, err := h.provisionTrack(ctx, ring)
		if err != nil {
			return err
		}
		h.track = tr
		h.trackRule = len(rules)
		// Stripped by the jar: serve.go forwards the ID once it knows it is well formed.
		rules = append(rules, cookie.Rule{Pattern: t.Name, Codec: tr.codec, Strip: true})
		h.codecs = append(h.codecs, tr.codec)
	}
	if len(h.Encrypt) > 0 {
		c := cookie.NewCodec(ring, cookie.Options{Encrypt: true, MaxAge: time.Duration(h.MaxAge)})
		h.codecs = append(h.codecs, c)
		for _, p := range h.Encrypt {
			rules = append(rules, cookie.Rule{Pattern: p, Codec: c})
		}
	}
	if len(h.Sign) > 0 {
		c := cookie.NewCodec(ring, cookie.Options{MaxAge: time.Duration(h.MaxAge)})
		h.codecs = append(h.codecs, c)
		for _, p := range h.Sign {
			rules = append(rules, cookie.Rule{Pattern: p, Codec: c})
		}
	}
	h.jar, err = cookie.NewJar(rules...)
	if err != nil {
		return err
	}
	if h.keys != nil {
		h.keys.start(ctx, h)
	}
	return nil
}

func (t *Track) setDefaults() {
	if t.Name == "" {
		t.Name = defaultTrackName
	}
	if t.MaxAge == 0 {
		t.MaxAge = caddy.Duration(defaultTrackMaxAge)
	}
	if t.Refresh == 0 {
		t.Refresh = caddy.Duration(defaultTrackRefresh)
	}
	if t.Path == "" {
		t.Path = "/"
	}
	if t.Header == "" {
		t.Header = defaultIDHeader
	}
	if t.Forward == "" {
		t.Forward = "plain"
	}
	if t.Secure == "" {
		t.Secure = "auto"
	}
	if t.HTTPOnly == nil {
		on := true
		t.HTTPOnly = &on
	}
	if t.SameSite == "" {
		t.SameSite = "lax"
	}
}

// checkConfig reports the first configuration error, naming the field.
func (h *Handler) checkConfig() error {
	if h.Track == nil && len(h.Sign) == 0 && len(h.Encrypt) == 0 {
		return errors.New("signed_cookies: nothing to do: configure track, sign or encrypt")
	}
	if h.OnInvalid != "drop" && h.OnInvalid != "reject" {
		return fmt.Errorf("signed_cookies: on_invalid: %q is not drop or reject", h.OnInvalid)
	}
	// Signatures carry whole seconds: a shorter duration (a JSON number of nanoseconds such as
	// 3600) would silently mean "no expiry".
	if time.Duration(h.MaxAge) < time.Second {
		return fmt.Errorf("signed_cookies: max_age: %s is under 1s (JSON durations are nanoseconds or strings like \"30d\")", time.Duration(h.MaxAge))
	}
	if err := checkRealmPlaceholders(h.Realm); err != nil {
		return fmt.Errorf("signed_cookies: realm: %v", err)
	}
	if len(h.Secrets) > 0 && (h.Rotate != 0 || h.StorageRaw != nil || h.CheckInterval != 0) {
		return errors.New("signed_cookies: rotate, check_interval and storage apply only to the storage key ring, not with secret")
	}
	if h.Rotate < 0 || h.CheckInterval < 0 {
		return errors.New("signed_cookies: rotate and check_interval must be positive")
	}
	rotate, check := cmp.Or(time.Duration(h.Rotate), defaultRotate), cmp.Or(time.Duration(h.CheckInterval), defaultCheck)
	if rotate < time.Second || rotate < 2*check {
		return fmt.Errorf("signed_cookies: rotate: %s must be at least 1s and twice check_interval (%s), so a new secret reaches every instance before the next", rotate, check)
	}
	seen := map[string]string{}
	for _, l := range []struct {
		field string
		names []string
	}{{"encrypt", h.Encrypt}, {"sign", h.Sign}} {
		for _, p := range l.names {
			if err := checkPattern(p); err != nil {
				return fmt.Errorf("signed_cookies: %s: %v", l.field, err)
			}
			if prev, dup := seen[p]; dup {
				return fmt.Errorf("signed_cookies: %s: %q is already listed in %s", l.field, p, prev)
			}
			seen[p] = l.field
		}
	}
	if t := h.Track; t != nil {
		if err := t.check(); err != nil {
			return fmt.Errorf("signed_cookies: track: %v", err)
		}
		if field, dup := seen[t.Name]; dup {
			return fmt.Errorf("signed_cookies: %s: %q is the tracking cookie's name", field, t.Name)
		}
		for _, p := range append(append([]string{}, h.Sign...), h.Encrypt...) {
			if ok, _ := path.Match(p, t.Name); ok {
				return fmt.Errorf("signed_cookies: pattern %q matches the tracking cookie %q; the tracking cookie is managed by track", p, t.Name)
			}
		}
	}
	return nil
}

func (t *Track) check() error {
	if err := checkToken(t.Name); err != nil {
		return fmt.Errorf("name: %v", err)
	}
	if time.Duration(t.MaxAge) < time.Second || time.Duration(t.MaxAge) > maxTrackMaxAge {
		return fmt.Errorf("max_age: %s is not between 1s and 400 days (browsers cap cookies at 400 days)", time.Duration(t.MaxAge))
	}
	if time.Duration(t.Refresh) < time.Second || t.Refresh > t.MaxAge {
		return fmt.Errorf("refresh: %s must be at least 1s and at most max_age", time.Duration(t.Refresh))
	}
	if !strings.HasPrefix(t.Path, "/") || strings.ContainsAny(t.Path, ";\r\n\x00") {
		return fmt.Errorf("path: %q must start with / and hold no ';' or control characters", t.Path)
	}
	if t.Domain != "" && (strings.ContainsAny(t.Domain, "; \t\r\n\x00/") || strings.Trim(t.Domain, ".") == "") {
		return fmt.Errorf("domain: %q is not a domain", t.Domain)
	}
	if t.Header != "off" {
		if err := checkToken(t.Header); err != nil {
			return fmt.Errorf("header: %v", err)
		}
		switch strings.ToLower(t.Header) {
		case "cookie", "host", "connection", "content-length", "transfer-encoding":
			return fmt.Errorf("header: %q cannot carry the visitor ID", t.Header)
		}
	}
	switch t.Forward {
	case "plain", "strip":
	default:
		return fmt.Errorf("forward: %q is not plain or strip", t.Forward)
	}
	switch t.Secure {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("secure: %q is not auto, on or off", t.Secure)
	}
	switch t.SameSite {
	case "lax", "strict", "none":
	default:
		return fmt.Errorf("same_site: %q is not lax, strict or none", t.SameSite)
	}
	needSecure := ""
	switch {
	case strings.HasPrefix(t.Name, "__Host-"):
		if t.Path != "/" || t.Domain != "" {
			return fmt.Errorf("name: a __Host- cookie needs path / and no domain")
		}
		needSecure = "a __Host- name"
	case strings.HasPrefix(t.Name, "__Secure-"):
		needSecure = "a __Secure- name"
	case t.SameSite == "none":
		needSecure = "same_site none"
	case t.Partitioned:
		needSecure = "partitioned"
	}
	if needSecure != "" && t.Secure == "off" {
		return fmt.Errorf("secure: %s requires Secure; secure off is not allowed", needSecure)
	}
	if t.Consent != "" {
		name, _, _ := strings.Cut(t.Consent, "=")
		if err := checkToken(name); err != nil {
			return fmt.Errorf("consent: %v", err)
		}
	}
	return nil
}

func (h *Handler) provisionTrack(ctx caddy.Context, ring *cookie.KeyRing) (*trackRuntime, error) {
	t := h.Track
	tr := &trackRuntime{
		name:     t.Name,
		codec:    cookie.NewCodec(ring, cookie.Options{Encrypt: t.Encrypt, MaxAge: time.Duration(t.MaxAge)}),
		refresh:  int64(time.Duration(t.Refresh) / time.Second),
		strip:    t.Forward == "strip",
		secure:   t.Secure,
		honorGPC: t.HonorGPC,
	}
	if t.Header != "off" {
		tr.header = http.CanonicalHeaderKey(t.Header)
		tr.headerNorm = normalizeHeaderName(t.Header)
	}
	tr.forceSecure = strings.HasPrefix(t.Name, "__Host-") || strings.HasPrefix(t.Name, "__Secure-") ||
		t.SameSite == "none" || t.Partitioned
	if t.Consent != "" {
		name, value, hasValue := strings.Cut(t.Consent, "=")
		tr.consentName, tr.consentValue, tr.consentAny = name, value, !hasValue
	}
	var b strings.Builder
	b.WriteString("; Path=" + t.Path)
	if t.Domain != "" {
		b.WriteString("; Domain=" + t.Domain)
	}
	fmt.Fprintf(&b, "; Max-Age=%d", int64(time.Duration(t.MaxAge)/time.Second))
	if *t.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	b.WriteString("; SameSite=" + map[string]string{"lax": "Lax", "strict": "Strict", "none": "None"}[t.SameSite])
	if t.Partitioned {
		b.WriteString("; Partitioned")
	}
	tr.attrs = b.String()
	if t.WhenRaw != nil {
		mods, err := ctx.LoadModule(t, "WhenRaw")
		if err != nil {
			return nil, fmt.Errorf("signed_cookies: track: when: %v", err)
		}
		for _, m := range mods.(map[string]any) {
			tr.when = append(tr.when, m)
		}
	}
	return tr, nil
}

// Validate only reads: the configuration checks, with the defaults Provision set.
func (h *Handler) Validate() error {
	return h.checkConfig()
}

// checkRealmPlaceholders allows {env.*} and {file.*} only: a realm must be the same on every
// instance and after every reload ({system.hostname} or {time.*} would silently invalidate
// every cookie).
func checkRealmPlaceholders(realm string) error {
	for rest := realm; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil
		}
		key := rest[i+1 : i+j]
		if !strings.HasPrefix(key, "env.") && !strings.HasPrefix(key, "file.") {
			return fmt.Errorf("placeholder {%s} is not allowed: only {env.*} and {file.*}, which stay the same across instances and reloads", key)
		}
		rest = rest[i+j+1:]
	}
}

// checkRealm checks a resolved realm: printable ASCII without spaces at either end, so that a
// realm reads the same in every config format and log line, and a stray space in an
// environment variable does not make a different realm. Realms compare byte for byte.
func checkRealm(realm string) error {
	if len(realm) > 128 {
		return fmt.Errorf("%d bytes, at most 128", len(realm))
	}
	for i := 0; i < len(realm); i++ {
		if realm[i] < 0x20 || realm[i] > 0x7e {
			return fmt.Errorf("byte %d is not printable ASCII", i+1)
		}
	}
	if strings.TrimSpace(realm) != realm {
		return errors.New("begins or ends with a space")
	}
	return nil
}

// loadKeys resolves the realm and the configured secrets, or opens the storage key ring.
func (h *Handler) loadKeys(ctx caddy.Context) (*cookie.KeyRing, error) {
	repl := caddy.NewReplacer()
	realm, err := repl.ReplaceOrErr(h.Realm, true, true)
	if err == nil {
		err = checkRealm(realm)
	}
	if err != nil {
		return nil, fmt.Errorf("signed_cookies: realm: %v", err)
	}
	if len(h.Secrets) == 0 {
		stor := ctx.Storage()
		if h.StorageRaw != nil {
			mod, err := ctx.LoadModule(h, "StorageRaw")
			if err != nil {
				return nil, fmt.Errorf("signed_cookies: storage: %v", err)
			}
			stor, err = mod.(caddy.StorageConverter).CertMagicStorage()
			if err != nil {
				return nil, fmt.Errorf("signed_cookies: storage: %v", err)
			}
		}
		rotate, check := cmp.Or(time.Duration(h.Rotate), defaultRotate), cmp.Or(time.Duration(h.CheckInterval), defaultCheck)
		h.keys = newStoredKeys(stor, realm, rotate, check, h.longestLifetime(), h.logger)
		ring, err := h.keys.load(ctx)
		if err == nil {
			err = selfTest(ring)
		}
		if err != nil {
			return nil, fmt.Errorf("signed_cookies: key ring in storage: %v", err)
		}
		h.logger.Info("signing keys from the storage key ring", zap.Int("secrets", ring.Len()),
			zap.String("realm", realm), zap.Duration("rotate", rotate), zap.Duration("check_interval", check))
		return ring, nil
	}
	secrets := make([][]byte, len(h.Secrets))
	for i, s := range h.Secrets {
		v, err := repl.ReplaceOrErr(s, true, true)
		if err != nil {
			// the error names the placeholder, never a value
			return nil, fmt.Errorf("signed_cookies: secret %d: %v", i+1, err)
		}
		if secrets[i], err = cookie.ParseSecret(v); err != nil {
			return nil, fmt.Errorf("signed_cookies: secret %d %v", i+1, err)
		}
	}
	ring, err := cookie.NewRealmKeyRing(realm, secrets...)
	if err != nil {
		return nil, fmt.Errorf("signed_cookies: %v", err)
	}
	if err := selfTest(ring); err != nil {
		return nil, fmt.Errorf("signed_cookies: %v", err)
	}
	h.logger.Info("signing keys from configured secrets", zap.Int("secrets", ring.Len()), zap.String("realm", realm))
	return ring, nil
}

// selfTest round-trips a value through every key so that a broken key fails the config load,
// not the first request.
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

// longestLifetime is how long a cookie signed with a retired secret can still be valid.
func (h *Handler) longestLifetime() time.Duration {
	d := time.Duration(h.MaxAge)
	if h.Track != nil && time.Duration(h.Track.MaxAge) > d {
		d = time.Duration(h.Track.MaxAge)
	}
	return d
}

// setKeyRing swaps the keys of every codec (storage key ring rotation).
func (h *Handler) setKeyRing(r *cookie.KeyRing) {
	for _, c := range h.codecs {
		c.SetKeyRing(r)
	}
}

func (h *Handler) logInvalid(name, reason string) {
	if c := h.logger.Check(zapcore.WarnLevel, "invalid cookie dropped"); c != nil {
		c.Write(zap.String("cookie", name), zap.String("reason", reason))
	}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
