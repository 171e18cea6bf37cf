// The configuration checks, in one place: Provision runs them on the configuration with its
// defaults, and the Caddyfile adapter runs the same ones, so that `caddy adapt` reports a bad
// value with the same words as `caddy validate` and `caddy run`. Values that hold
// placeholders are checked once resolved, at Provision.

package signedcookies

import (
	"encoding/base64"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

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
)

// check reports the first configuration error, naming the field. It only reads.
func (h *Handler) check() error {
	if err := oneOf("on_invalid", h.OnInvalid, "drop", "reject"); err != nil {
		return err
	}
	// Signatures carry whole seconds: a shorter duration (a JSON number of nanoseconds such as
	// 3600) would silently mean "no expiry".
	if time.Duration(h.MaxAge) < time.Second {
		return fmt.Errorf("max_age: %s is under 1s (JSON durations are nanoseconds or strings like \"30d\")", time.Duration(h.MaxAge))
	}
	if err := checkRealmPlaceholders(h.Realm); err != nil {
		return fmt.Errorf("realm: %v", err)
	}
	if !hasPlaceholder(h.Realm) {
		if err := checkRealm(h.Realm); err != nil {
			return fmt.Errorf("realm: %v", err)
		}
	}
	for i, s := range h.Secrets {
		if hasPlaceholder(s) {
			continue
		}
		if _, _, err := parseSecret(i, s); err != nil {
			return err
		}
	}
	if len(h.Secrets) > 0 {
		if h.Rotate != 0 || h.StorageRaw != nil || h.CheckInterval != 0 {
			return errors.New("rotate, check_interval and storage apply only to the storage key ring, not with secret")
		}
	} else {
		rotate, check := time.Duration(h.Rotate), time.Duration(h.CheckInterval)
		if rotate < time.Second || rotate < 2*check {
			return fmt.Errorf("rotate: %s must be at least 1s and twice check_interval (%s), so a new secret reaches every instance before the next", rotate, check)
		}
	}
	seen := map[string]string{}
	for _, l := range []struct {
		field string
		names []string
	}{{"encrypt", h.Encrypt}, {"sign", h.Sign}} {
		for _, p := range l.names {
			if err := checkPattern(p); err != nil {
				return fmt.Errorf("%s: %v", l.field, err)
			}
			if prev, dup := seen[p]; dup {
				return fmt.Errorf("%s: %q is already listed in %s", l.field, p, prev)
			}
			seen[p] = l.field
		}
	}
	if err := h.checkAdopt(); err != nil {
		return err
	}
	if err := h.checkFormats(); err != nil {
		return err
	}
	for i := range h.Cookie {
		if err := h.checkCookieRule(&h.Cookie[i]); err != nil {
			return fmt.Errorf("cookie %s: %v", strings.Join(h.Cookie[i].Names, " "), err)
		}
	}
	if t := h.Track; t != nil {
		if err := t.check(); err != nil {
			return fmt.Errorf("track: %v", err)
		}
	}
	return nil
}

// parseSecret decodes the configured secret at index i. The first signs and must be strong; a
// later one only verifies, so one that releases before strength checks accepted (base64 of
// at least 32 bytes of anything) is taken, with why it is weak, to keep its cookies valid.
func parseSecret(i int, s string) (b []byte, weak string, err error) {
	if i > 0 {
		if b, weak, err = cookie.ParseOldSecret(s); err == nil {
			return b, weak, nil
		}
		return nil, "", secretError(i, s, err)
	}
	if b, err = cookie.ParseSecret(s); err != nil {
		_, weak, old := cookie.ParseOldSecret(s)
		if old == nil && weak != "" {
			return nil, "", fmt.Errorf("secret 1 %v; to keep the cookies it signed valid, put the new secret first and keep this one second, where it only verifies them until they expire", err)
		}
		if old != nil {
			return nil, "", secretError(i, s, old)
		}
		return nil, "", fmt.Errorf("secret 1 %v", err)
	}
	return b, "", nil
}

// makeSecretHint says how to make a secret and keep it out of the config.
const makeSecretHint = "make one with `caddy signed-cookies secret` (or `head -c32 /dev/urandom | base64`) and give it as {env.NAME} or {file.PATH}, which Caddy reads when the config loads"

// secretError words a secret that does not decode for whoever typed it: a shell variable
// Caddy does not expand, a password where base64 of random bytes belongs, or too few bytes.
// It never shows the value.
func secretError(i int, s string, err error) error {
	t := strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(t, "$"):
		return fmt.Errorf("secret %d looks like a shell variable: Caddy does not expand $NAME; write {env.NAME} to read the environment variable NAME (a secret made with `caddy signed-cookies secret`)", i+1)
	case t != "" && !isBase64(t):
		return fmt.Errorf("secret %d is not valid base64: a secret is not a password but base64 of at least %d random bytes; %s", i+1, cookie.MinSecretBytes, makeSecretHint)
	}
	return fmt.Errorf("secret %d %v; %s", i+1, err, makeSecretHint)
}

// isBase64 reports whether s decodes in one of the alphabets secrets may use.
func isBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.Strict().DecodeString(s); err == nil {
			return true
		}
	}
	return false
}

// checkAdopt checks the rollout settings: names, deadlines and attributes that parse (the
// compile checks that each name is managed).
func (h *Handler) checkAdopt() error {
	if h.Unwrap && len(h.Adopt) > 0 {
		return errors.New("adopt: not with unwrap, which accepts every plain value already")
	}
	for _, a := range h.Adopt {
		if len(a.Cookies) == 0 {
			return errors.New("adopt: no cookie names")
		}
		for _, n := range a.Cookies {
			if err := checkPattern(n); err != nil {
				return fmt.Errorf("adopt: %v", err)
			}
		}
		if _, err := parseDeadline(a.Until); err != nil {
			return fmt.Errorf("adopt: until: %v", err)
		}
		if err := checkAttributes(a.Attributes); err != nil {
			return fmt.Errorf("adopt: attributes: %v", err)
		}
	}
	if h.Unwrap && h.Track != nil && h.Track.AdoptNginx != nil {
		return errors.New("track: adopt_nginx: not with unwrap, which issues no visitor cookie to carry the ID")
	}
	return nil
}

// checkCookieRule checks a cookie rule's fields, and the combinations its prefix forbids (the
// compile checks how it fits the other rules).
func (h *Handler) checkCookieRule(c *CookieRule) error {
	if len(c.Names) == 0 {
		return errors.New("no cookie names")
	}
	if c.Secure == nil && c.HTTPOnly == nil && c.Partitioned == nil && c.SameSite == "" && c.Domain == nil && c.Path == nil &&
		c.Prefix == "" && !c.Split && !c.NeedsConsent {
		return errors.New("no settings: the rule would do nothing")
	}
	for _, n := range c.Names {
		if err := checkPattern(n); err != nil {
			return err
		}
	}
	if c.SameSite != "" {
		if err := oneOf("same_site", strings.ToLower(c.SameSite), "lax", "strict", "none", "-"); err != nil {
			return err
		}
	}
	if c.SplitCookies != 0 && (!c.Split || c.SplitCookies < 2 || c.SplitCookies > engine.MaxSplitCookies) {
		return fmt.Errorf("split: %d cookies: want 2 to %d, with split", c.SplitCookies, engine.MaxSplitCookies)
	}
	removesSecure := c.Secure != nil && !*c.Secure
	if strings.EqualFold(c.SameSite, "none") && removesSecure {
		return errors.New("same_site none with -secure: browsers refuse SameSite=None without Secure")
	}
	if d := c.Domain; d != nil && (d.From == "" || d.To == "" || strings.ContainsAny(d.From+d.To, "; \t\r\n\x00/")) {
		return errors.New("domain: want <from> <to>, or - for <to> to remove it")
	}
	if p := c.Path; p != nil && (!strings.HasPrefix(p.From, "/") || !strings.HasPrefix(p.To, "/") || strings.ContainsAny(p.From+p.To, ";\r\n\x00")) {
		return errors.New("path: want <from-prefix> <to-prefix>, both starting with /")
	}
	switch c.Prefix {
	case "":
	case "__Secure-", "__Host-":
		if removesSecure {
			return fmt.Errorf("prefix %s requires Secure: not with -secure (\"secure\": false)", c.Prefix)
		}
		if c.Prefix == "__Host-" && (c.Domain != nil && c.Domain.To != "-" || c.Path != nil && c.Path.To != "/") {
			return errors.New("prefix __Host- requires Path=/ and no Domain: not with a domain or path rewrite to anything else")
		}
	default:
		return fmt.Errorf("prefix: %q is not __Host- or __Secure-", c.Prefix)
	}
	return nil
}

// checkFormatKey refuses an itsdangerous key anyone could guess: shorter than 24 bytes, or
// one byte or a short pattern repeated. Such keys are text (Flask's SECRET_KEY), so the
// securecookie secrets' test for text does not apply.
func checkFormatKey(k []byte) error {
	if len(k) < 24 {
		return fmt.Errorf("is %d bytes, need at least 24 (python3 -c 'import secrets; print(secrets.token_hex())' makes one)", len(k))
	}
	for p := 1; p <= len(k)/2; p++ {
		periodic := true
		for i := p; i < len(k) && periodic; i++ {
			periodic = k[i] == k[i-p]
		}
		if periodic {
			return errors.New("repeats a short pattern (python3 -c 'import secrets; print(secrets.token_hex())' makes one)")
		}
	}
	return nil
}

// checkFormats checks the cookies signed in another format and the Flask session settings.
func (h *Handler) checkFormats() error {
	for _, s := range h.SignFormat {
		field := "sign " + strings.Join(s.Names, " ")
		if len(s.Names) == 0 {
			return errors.New("sign: no cookie names")
		}
		for _, n := range s.Names {
			if err := checkPattern(n); err != nil {
				return fmt.Errorf("%s: %v", field, err)
			}
		}
		// itsdangerous signs no cookie name: the salt is what keeps one cookie's value from
		// verifying as another's, so each name needs its own block and salt.
		if len(s.Names) > 1 || strings.ContainsAny(s.Names[0], `*?[\`) {
			return fmt.Errorf("%s: format itsdangerous signs no cookie name, so one value would verify as any of these names: give each cookie its own block with its own salt", field)
		}
		if s.Format != "itsdangerous" {
			return fmt.Errorf("%s: format: %q is not itsdangerous", field, s.Format)
		}
		if len(s.SecretKey) == 0 {
			return fmt.Errorf("%s: secret_key: the format's own key is needed (the Python side's)", field)
		}
		for i, k := range s.SecretKey {
			if !hasPlaceholder(k) {
				if err := checkFormatKey([]byte(k)); err != nil {
					return fmt.Errorf("%s: secret_key %d %v", field, i+1, err)
				}
			}
		}
	}
	seen := map[string]string{}
	uses := func(field string, keys []string, salt string) error {
		id := formatKeyID("itsdangerous", keys, cmpOr(salt, "itsdangerous"))
		if prev, dup := seen[id]; dup {
			return fmt.Errorf("%s: the same secret_key and salt as %s: a value of one would verify as the other; give each its own salt", field, prev)
		}
		seen[id] = field
		return nil
	}
	if t := h.Track; t != nil && t.Format == "itsdangerous" {
		if err := uses("track "+t.Name, t.SecretKey, t.Salt); err != nil {
			return err
		}
	}
	for _, s := range h.SignFormat {
		if err := uses("sign "+strings.Join(s.Names, " "), s.SecretKey, s.Salt); err != nil {
			return err
		}
	}
	if f := h.FlaskSession; f != nil {
		if err := checkToken(f.Name); err != nil {
			return fmt.Errorf("flask_session: name: %v", err)
		}
		if len(f.SecretKey) == 0 {
			return errors.New("flask_session: secret_key: Flask's SECRET_KEY is needed")
		}
		if time.Duration(f.MaxAge) < time.Second {
			return fmt.Errorf("flask_session: max_age: %s is under 1s", time.Duration(f.MaxAge))
		}
		if err := oneOf("flask_session: on_invalid", f.OnInvalid, "drop", "reject", "pass"); err != nil {
			return err
		}
		for _, k := range f.Expose {
			if k == "" || strings.ContainsAny(k, "\r\n\x00") {
				return fmt.Errorf("flask_session: expose: %q is not a key", k)
			}
			// it names a header: X-Flask-Session-<key>
			if !strings.EqualFold(f.HeaderPrefix, "off") && checkToken(k) != nil {
				return fmt.Errorf("flask_session: expose: %q cannot be part of a header name; use header_prefix off and the placeholder", k)
			}
		}
		if !strings.EqualFold(f.HeaderPrefix, "off") {
			if err := checkToken(f.HeaderPrefix); err != nil {
				return fmt.Errorf("flask_session: header_prefix: %v", err)
			}
		}
	}
	return nil
}

// parseDeadline reads a date (its first second, UTC) or an RFC 3339 time.
func parseDeadline(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (2027-01-31) or an RFC 3339 time (2027-01-31T18:00:00Z)", s)
	}
	return t, nil
}

// checkAttributes checks Set-Cookie attributes given in the config: parts separated by ';',
// no control bytes, no Expires (a fixed date would outlive the config) and no Max-Age that
// deletes.
func checkAttributes(attrs string) error {
	for a := range strings.SplitSeq(attrs, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(a), "=")
		switch {
		case strings.ContainsAny(a, "\r\n\x00"):
			return errors.New("control characters")
		case strings.EqualFold(k, "expires"):
			return errors.New("an Expires attribute: give Max-Age instead")
		case strings.EqualFold(k, "max-age"):
			if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
				return fmt.Errorf("Max-Age %q is not a positive number of seconds", v)
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
	if !strings.EqualFold(t.Header, "off") {
		if err := checkToken(t.Header); err != nil {
			return fmt.Errorf("header: %v", err)
		}
		switch strings.ToLower(t.Header) {
		case "cookie", "host", "connection", "content-length", "transfer-encoding", "trailer":
			return fmt.Errorf("header: %q cannot carry the visitor ID", t.Header)
		}
	}
	for _, e := range []struct {
		field, v string
		allowed  []string
	}{
		{"forward", t.Forward, []string{"plain", "strip"}},
		{"secure", t.Secure, []string{"auto", "on", "off"}},
		{"same_site", t.SameSite, []string{"lax", "strict", "none"}},
	} {
		if err := oneOf(e.field, e.v, e.allowed...); err != nil {
			return err
		}
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
	if err := oneOf("id_format", t.IDFormat, "uuid", "nginx"); err != nil {
		return err
	}
	switch t.Format {
	case "":
		if len(t.SecretKey) > 0 || t.Salt != "" {
			return errors.New("secret_key and salt go with format itsdangerous")
		}
	case "itsdangerous":
		if t.Encrypt {
			return errors.New("format itsdangerous: values are signed, not encrypted")
		}
		if len(t.SecretKey) == 0 {
			return errors.New("format itsdangerous: secret_key: the format's own key is needed (the Python side's)")
		}
		for i, k := range t.SecretKey {
			if !hasPlaceholder(k) {
				if err := checkFormatKey([]byte(k)); err != nil {
					return fmt.Errorf("secret_key %d %v", i+1, err)
				}
			}
		}
	default:
		return fmt.Errorf("format: %q is not itsdangerous", t.Format)
	}
	if a := t.AdoptNginx; a != nil {
		if err := checkToken(a.Name); err != nil {
			return fmt.Errorf("adopt_nginx: %v", err)
		}
		if a.Name == t.Name {
			return fmt.Errorf("adopt_nginx: %q is the visitor cookie's own name", a.Name)
		}
		if _, err := parseDeadline(a.Until); err != nil {
			return fmt.Errorf("adopt_nginx: until: %v", err)
		}
	}
	return nil
}

// oneOf checks an enumerated value (already lower case).
func oneOf(field, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: %q is not one of %s", field, v, strings.Join(allowed, ", "))
}

func hasPlaceholder(s string) bool { return strings.Contains(s, "{") }

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

// resolveRealm resolves the realm's placeholders and checks the result.
func resolveRealm(realm string) (string, error) {
	v, err := caddy.NewReplacer().ReplaceOrErr(realm, true, true)
	if err == nil {
		err = checkRealm(v)
	}
	return v, err
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

func isTokenChar(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune(`"(),/:;<=>?@[\]{}`, rune(c))
}

func checkToken(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if !isTokenChar(s[i]) {
			return fmt.Errorf("%q has a character not allowed in a name", s)
		}
	}
	return nil
}

// checkPattern accepts a cookie name or a path.Match glob over cookie-name characters.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty cookie name")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q: %v", p, err)
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !isTokenChar(c) && !strings.ContainsRune(`*?[]\`, rune(c)) {
			return fmt.Errorf("%q has a character not allowed in a cookie name", p)
		}
	}
	return nil
}
