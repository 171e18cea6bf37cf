// The one translation of a handler's configuration into the engine's policy. Provision runs
// it with the handler's keys; the Caddyfile adapter and the load-time walk over a config run
// it with stand-in keys, to check what the configuration means; the CLI runs it with the keys
// it reads from storage. A check that depends on how the parts fit together lives in the
// engine's compile, so that all four see the same answer.

package signedcookies

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/engine"
	"github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"
)

// compileKeys are the keys a compile builds its codecs with.
type compileKeys struct {
	// ring holds the handler's keys (its secrets, or the storage key ring), derived for its
	// realm; nil: stand-in keys, for a compile that only checks the configuration.
	ring *cookie.KeyRing
	// refresh re-reads the storage key ring for a cookie signed by an unknown key.
	refresh func() bool
	// gate loads track's when matchers (nil: none; the configuration is only checked).
	gate func(*Track) (func(*http.Request) bool, error)
	// revocations is the realm's view of the revocation store (nil: none asked).
	revocations engine.Revocations
}

// compiled is a compile's output: the policy, and the codecs that use the handler's key ring
// (they follow its rotations).
type compiled struct {
	policy *engine.Policy
	codecs []*cookie.Codec
}

// standInRing stands in for a handler's keys when a compile only checks the configuration.
var standInRing = func() *cookie.KeyRing {
	sum := sha256.Sum256([]byte("signed_cookies stand-in key: never signs a cookie that leaves"))
	r, err := cookie.NewKeyRing(sum[:])
	if err != nil {
		panic(err)
	}
	return r
}()

// standInFormatKey stands in for an itsdangerous or Flask key (placeholders unresolved).
var standInFormatKey = []byte("signed_cookies stand-in format key, never used to sign")

// compile turns the configuration (defaults set, fields checked) into the engine's policy.
func (h *Handler) compile(k compileKeys) (compiled, error) {
	checkOnly := k.ring == nil
	ring := k.ring
	if checkOnly {
		ring = standInRing
	}
	var out compiled
	cfg := engine.Config{
		Sign:    h.Sign,
		Encrypt: h.Encrypt,
		MaxAge:  time.Duration(h.MaxAge),
		Reject:  h.OnInvalid == "reject",
		Unwrap:  h.Unwrap,
		KeyID:   h.keyID(),
		Name:    h.describe(),
		IsHTTPS: isHTTPS,
		Refresh: k.refresh,
	}
	cfg.Revocations = k.revocations
	codec := func(encrypt bool, maxLength int) *cookie.Codec {
		c := cookie.NewCodec(ring, cookie.Options{Encrypt: encrypt, MaxAge: cfg.MaxAge, MaxLength: maxLength})
		out.codecs = append(out.codecs, c)
		return c
	}
	split := slices.ContainsFunc(h.Cookie, func(c CookieRule) bool { return c.Split })
	if len(h.Sign) > 0 {
		cfg.SignCodec = codec(false, 0)
		if split {
			cfg.LongSignCodec = codec(false, splitMaxLength)
		}
	}
	if len(h.Encrypt) > 0 {
		cfg.EncryptCodec = codec(true, 0)
		if split {
			cfg.LongEncryptCodec = codec(true, splitMaxLength)
		}
	}
	for _, a := range h.Adopt {
		until, _ := parseDeadline(a.Until) // checked
		cfg.Adopt = append(cfg.Adopt, engine.Adoption{Names: a.Cookies, Until: until, Attributes: a.Attributes})
	}
	for _, c := range h.Cookie {
		cfg.Cookies = append(cfg.Cookies, c.engineRule())
	}
	for _, s := range h.SignFormat {
		r, err := s.engineRule(checkOnly)
		if err != nil {
			return out, fmt.Errorf("sign %s: %v", strings.Join(s.Names, " "), err)
		}
		cfg.Formatted = append(cfg.Formatted, r)
	}
	if f := h.FlaskSession; f != nil {
		ef, err := f.engineFlask(checkOnly)
		if err != nil {
			return out, fmt.Errorf("flask_session: %v", err)
		}
		cfg.Flask = ef
	}
	if h.Track != nil {
		v, err := h.visitorConfig(ring, k.gate, checkOnly)
		if err != nil {
			return out, err
		}
		if c, ok := v.Codec.(*cookie.Codec); ok {
			out.codecs = append(out.codecs, c) // the visitor's keys are the handler's key ring
		}
		cfg.Visitor = v
	}
	p, err := engine.New(cfg)
	if err != nil {
		return out, err
	}
	out.policy = p
	return out, nil
}

// keyID identifies the handler's keys as configured, without revealing them: equal for
// handlers with the same secrets (as written) and realm, or the same storage and realm.
func (h *Handler) keyID() string {
	sum := sha256.New()
	if len(h.Secrets) > 0 {
		fmt.Fprintf(sum, "secrets %q", h.Secrets)
	} else {
		fmt.Fprintf(sum, "storage %s", h.StorageRaw)
	}
	fmt.Fprintf(sum, " realm %q", h.Realm)
	return hex.EncodeToString(sum.Sum(nil))
}

// formatKeyID identifies an itsdangerous or Flask key list and salt, without revealing them.
func formatKeyID(use string, keys []string, salt string) string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %q %q", use, keys, salt))
	return use + ":" + hex.EncodeToString(sum[:])
}

// visitorConfig is the engine's view of Track.
func (h *Handler) visitorConfig(ring *cookie.KeyRing, gate func(*Track) (func(*http.Request) bool, error), checkOnly bool) (*engine.Visitor, error) {
	t := h.Track
	fingerprint, err := json.Marshal(t) // before loading the matchers, which frees their JSON
	if err != nil {
		return nil, err
	}
	var codec engine.Codec = cookie.NewCodec(ring, cookie.Options{Encrypt: t.Encrypt, MaxAge: time.Duration(t.MaxAge)})
	textID := false
	if t.Format == "itsdangerous" {
		if codec, err = t.itsDangerousCodec(checkOnly); err != nil {
			return nil, err
		}
		textID = true
	}
	v := &engine.Visitor{
		Name:        t.Name,
		Codec:       codec,
		TextID:      textID,
		MaxAge:      time.Duration(t.MaxAge),
		Refresh:     time.Duration(t.Refresh),
		Domain:      t.Domain,
		Path:        t.Path,
		Strip:       t.Forward == "strip",
		Secure:      map[string]engine.Secure{"auto": engine.SecureAuto, "on": engine.SecureOn, "off": engine.SecureOff}[t.Secure],
		HTTPOnly:    *t.HTTPOnly,
		SameSite:    map[string]engine.SameSite{"lax": engine.SameSiteLax, "strict": engine.SameSiteStrict, "none": engine.SameSiteNone}[t.SameSite],
		Partitioned: t.Partitioned,
		HonorGPC:    t.HonorGPC,
		Consent:     t.Consent,
		Fingerprint: string(fingerprint),
	}
	if !strings.EqualFold(t.Header, "off") {
		v.Header = t.Header
	}
	if t.IDFormat == "nginx" {
		v.IDFormat = engine.IDNginx
	}
	if a := t.AdoptNginx; a != nil {
		v.AdoptNginx = a.Name
		v.AdoptNginxUntil, _ = parseDeadline(a.Until) // checked
	}
	if t.WhenRaw != nil && gate != nil {
		if v.Gate, err = gate(t); err != nil {
			return nil, fmt.Errorf("track: when: %v", err)
		}
	}
	return v, nil
}

// splitMaxLength is the longest encoded value a split carries (its most cookies, of 4 KB
// less their names).
const splitMaxLength = engine.MaxSplitCookies * 4000

// engineRule is the engine's view of a cookie rule.
func (c CookieRule) engineRule() engine.CookieRule {
	r := engine.CookieRule{Names: c.Names, Secure: c.Secure, HTTPOnly: c.HTTPOnly, Partitioned: c.Partitioned,
		Prefix: c.Prefix, Split: c.Split, SplitCookies: c.SplitCookies, NeedsConsent: c.NeedsConsent}
	if c.SameSite != "" {
		v := map[string]string{"lax": "Lax", "strict": "Strict", "none": "None", "-": ""}[strings.ToLower(c.SameSite)]
		r.SameSite = &v
	}
	if d := c.Domain; d != nil {
		r.Domain = &engine.Rewrite{From: d.From, To: strings.TrimPrefix(d.To, "-")}
	}
	if p := c.Path; p != nil {
		r.Path = &engine.Rewrite{From: p.From, To: p.To}
	}
	return r
}

// resolveKeys resolves the placeholders of itsdangerous or Flask secret keys; checkOnly gives
// stand-ins instead, one per key.
func resolveKeys(field string, keys []string, checkOnly bool) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if checkOnly {
		for i := range keys {
			out[i] = standInFormatKey
		}
		return out, nil
	}
	repl := caddy.NewReplacer()
	for i, k := range keys {
		v, err := repl.ReplaceOrErr(k, true, true)
		if err != nil {
			return nil, fmt.Errorf("%s %d: %v", field, i+1, err)
		}
		out[i] = []byte(v)
	}
	return out, nil
}

func (s SignFormat) engineRule(checkOnly bool) (engine.FormattedRule, error) {
	keys, err := resolveKeys("secret_key", s.SecretKey, checkOnly)
	if err != nil {
		return engine.FormattedRule{}, err
	}
	for i, k := range keys {
		if err := checkFormatKey(k); err != nil {
			return engine.FormattedRule{}, fmt.Errorf("secret_key %d %v", i+1, err)
		}
	}
	salt := cmpOr(s.Salt, "itsdangerous")
	c, err := itsdangerous.New(keys, salt, 0)
	if err != nil {
		return engine.FormattedRule{}, err
	}
	return engine.FormattedRule{Names: s.Names, Codec: c, KeyID: formatKeyID("itsdangerous", s.SecretKey, salt)}, nil
}

func (f *FlaskSession) engineFlask(checkOnly bool) (*engine.Flask, error) {
	keys, err := resolveKeys("secret_key", f.SecretKey, checkOnly)
	if err != nil {
		return nil, err
	}
	c, err := itsdangerous.NewSession(keys, f.Salt, time.Duration(f.MaxAge))
	if err != nil {
		return nil, err
	}
	ef := &engine.Flask{Name: f.Name, Codec: c, Expose: f.Expose, KeyID: formatKeyID("flask", f.SecretKey, f.Salt),
		OnInvalid: map[string]engine.FlaskInvalid{"drop": engine.FlaskDrop, "reject": engine.FlaskReject, "pass": engine.FlaskPass}[f.OnInvalid]}
	if !strings.EqualFold(f.HeaderPrefix, "off") {
		ef.HeaderPrefix = f.HeaderPrefix
	}
	return ef, nil
}

// itsDangerousCodec is the codec of a visitor cookie in the itsdangerous format.
func (t *Track) itsDangerousCodec(checkOnly bool) (*itsdangerous.Codec, error) {
	keys, err := resolveKeys("track: secret_key", t.SecretKey, checkOnly)
	if err != nil {
		return nil, err
	}
	for i, k := range keys {
		if err := checkFormatKey(k); err != nil {
			return nil, fmt.Errorf("track: secret_key %d %v", i+1, err)
		}
	}
	return itsdangerous.New(keys, cmpOr(t.Salt, "itsdangerous"), time.Duration(t.MaxAge))
}

// describe names the handler in errors and logs by what it manages.
func (h *Handler) describe() string {
	var parts []string
	if h.Track != nil {
		parts = append(parts, "track "+h.Track.Name)
	}
	if len(h.Sign) > 0 {
		parts = append(parts, "sign "+strings.Join(h.Sign, " "))
	}
	if len(h.Encrypt) > 0 {
		parts = append(parts, "encrypt "+strings.Join(h.Encrypt, " "))
	}
	for _, s := range h.SignFormat {
		parts = append(parts, "sign "+strings.Join(s.Names, " ")+" ("+s.Format+")")
	}
	if f := h.FlaskSession; f != nil {
		parts = append(parts, "flask_session "+f.Name)
	}
	if len(parts) == 0 && len(h.Cookie) > 0 {
		for _, c := range h.Cookie {
			parts = append(parts, "cookie "+strings.Join(c.Names, " "))
		}
	}
	return "signed_cookies {" + strings.Join(parts, "; ") + "}"
}
