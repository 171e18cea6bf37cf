// Package engine decides what happens to a request's cookies and a response's Set-Cookie
// lines: which pairs reach the upstream and in what form, the visitor ID, and how each line
// leaves. It knows nothing of Caddy: the module compiles a handler's configuration into a
// Policy once (New, which refuses a configuration that would not mean what it says), runs it
// on each request (Request), and hands the response's headers to the Pass it returned.
package engine

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// Verifier checks values in one wire format: securecookie's (cookie.Codec), itsdangerous's
// or Flask's (internal/itsdangerous). On error it returns one of the cookie package's
// reasons.
type Verifier interface {
	AppendDecodeAt(dst []byte, name, value string, now int64) (cookie.Decoded, error)
	// IsEncoded reports whether value has the format's shape, whatever its MAC says.
	IsEncoded(value string) bool
	// KeyCount is how many keys verify: a forged value costs one MAC each.
	KeyCount() int
	MaxLength() int
}

// Codec also signs, and says what signing costs.
type Codec interface {
	Verifier
	AppendEncodeAt(dst []byte, name string, value []byte, ts int64) ([]byte, error)
	EncodedLen(n int) int
	Encrypted() bool
}

// Config is a configuration checked field by field (names are cookie tokens, patterns valid
// globs, durations at least a second). New checks how its parts fit together.
type Config struct {
	// Visitor configures the visitor cookie; nil issues none.
	Visitor *Visitor
	// Sign and Encrypt list the upstream cookies (names or path.Match globs) that leave
	// signed, or signed and encrypted.
	Sign, Encrypt []string
	// SignCodec and EncryptCodec encode them; MaxAge is their codecs' max age.
	SignCodec, EncryptCodec Codec
	// LongSignCodec and LongEncryptCodec, the same with room for a split value (see
	// CookieRule.Split; needed only then).
	LongSignCodec, LongEncryptCodec Codec
	// Cookies are the rules for the upstream's cookies, managed or not.
	Cookies []CookieRule
	// Formatted lists upstream cookies signed in another wire format (itsdangerous), each
	// with its codec and keys.
	Formatted []FormattedRule
	// Flask verifies the app's own Flask session cookie at the edge.
	Flask  *Flask
	MaxAge time.Duration
	// Reject answers a request carrying a bad managed cookie with ErrInvalidCookie instead of
	// dropping the cookie.
	Reject bool
	// KeyID is equal for policies whose codecs use the same keys (as configured: secrets and
	// realm, or one storage and realm), and must not reveal them.
	KeyID string
	// Name names the policy in errors and logs ("signed_cookies {sign session; track vid}").
	Name string
	// IsHTTPS reports whether the client's connection is HTTPS; asked only when a cookie is
	// set on the response.
	IsHTTPS func(*http.Request) bool
	// Adopt accepts managed cookies in plain form (never signed: what the app saw before the
	// module) until a deadline.
	Adopt []Adoption
	// Unwrap is the way back: encoded values still verify and reach the upstream plain, plain
	// values pass, Set-Cookie lines leave as the upstream wrote them, and no visitor ID is
	// issued or re-signed.
	Unwrap bool
	// Refresh, when set, is asked at most once per request when a cookie fails its MAC: the
	// keys may be stale (another instance has just added one). It may block for about a
	// second at most and reports whether the cookie should be verified again.
	Refresh func() bool
	// Revocations, when set, is asked about every value that verifies (see Revocations).
	Revocations Revocations
}

// FormattedRule signs upstream cookies in the format of its codec (itsdangerous.New).
type FormattedRule struct {
	Names []string
	Codec Codec
	// KeyID is equal for rules with the same format, salt and keys, and must not reveal them.
	KeyID string
}

// Flask verifies a Flask session cookie: a valid one reaches the upstream untouched and its
// exposed fields become request headers (and placeholders); an invalid one is dropped,
// refused, or passed to the app.
type Flask struct {
	Name  string
	Codec Verifier // itsdangerous.NewSession
	// Expose lists the session's top-level keys made available; HeaderPrefix ("" for none)
	// names the request headers carrying them: X-Flask-Session-User-Id for user_id.
	Expose       []string
	HeaderPrefix string
	OnInvalid    FlaskInvalid
	KeyID        string
}

// FlaskInvalid is what happens to an invalid Flask session cookie.
type FlaskInvalid uint8

const (
	FlaskDrop   FlaskInvalid = iota // not forwarded, cleared in the browser
	FlaskReject                     // the request is refused (ErrInvalidCookie)
	FlaskPass                       // forwarded as it is: the app decides
)

// Adoption lists managed cookies accepted in plain form until a deadline. A value in encoded
// form must still verify: adoption never weakens what signing protects.
type Adoption struct {
	Names []string // names or globs, each managed by Sign or Encrypt
	Until time.Time
	// Attributes, when set, are the attributes the upstream gives these cookies ("Path=/;
	// HttpOnly"; Max-Age but no Expires): an adopted cookie is then set again, encoded, with
	// them on the same response; its signature expires at Until, so that a value a client
	// chose during the window is not accepted after it. Without them it passes until the
	// upstream sets it again.
	Attributes string
}

// IDFormat is how the upstream reads the visitor ID.
type IDFormat uint8

const (
	IDUUID  IDFormat = iota // canonical UUID text
	IDNginx                 // 32 upper-case hex digits, as nginx's $uid_got and $uid_set print them
)

// Visitor configures the visitor cookie.
type Visitor struct {
	Name        string
	Codec       Codec
	MaxAge      time.Duration
	Refresh     time.Duration
	Domain      string
	Path        string
	Header      string // the request header carrying the ID to the upstream; "" for none
	Strip       bool   // the upstream's Cookie header does not get the ID
	Secure      Secure
	HTTPOnly    bool
	SameSite    SameSite
	Partitioned bool
	HonorGPC    bool
	// Consent holds back a new ID unless this cookie is present: "name" or "name=value".
	Consent string
	// Gate holds back a new ID from requests it refuses (nil: none).
	Gate func(*http.Request) bool
	// AdoptNginx is the name of nginx userid's cookie: until AdoptNginxUntil, a request
	// with a valid one and no valid visitor cookie keeps its ID.
	AdoptNginx      string
	AdoptNginxUntil time.Time
	IDFormat        IDFormat
	// TextID: the codec carries the ID as its UUID text (a format of JSON text, such as
	// itsdangerous), not as 16 bytes.
	TextID bool
	// Fingerprint is equal for visitor configurations that behave the same, Gate included.
	Fingerprint string
}

// Secure says when the visitor cookie gets the Secure attribute.
type Secure uint8

const (
	SecureAuto Secure = iota // when the request came over HTTPS
	SecureOn
	SecureOff
)

// SameSite is the visitor cookie's SameSite attribute.
type SameSite uint8

const (
	SameSiteLax SameSite = iota
	SameSiteStrict
	SameSiteNone
)

// Policy is one handler's compiled cookie policy. It is immutable and safe for concurrent use.
type Policy struct {
	jar         *jar
	visitor     *visitor // nil without a visitor cookie
	visitorRule int      // the visitor's rule in jar, -1 without
	reject      bool
	name        string
	isHTTPS     func(*http.Request) bool
	refresh     func() bool
	adopt       []adoption
	unwrap      bool
	blocks      *blocks
	flask       *flask
	revocations Revocations // nil: none asked
	warnings    []string

	relations sync.Map // *Policy → error (nil: compatible), as checked when both ran on one request
}

type visitor struct {
	name         string
	codec        Codec
	refresh      int64 // seconds
	header       string
	headerNorm   string
	strip        bool
	secure       Secure
	forceSecure  bool   // the name, SameSite=None or Partitioned requires Secure
	attrs        string // "; Path=/; Max-Age=…; HttpOnly; SameSite=Lax" without Secure
	clearAttrs   string // "; Path=/; Max-Age=0", with the Domain
	honorGPC     bool
	textID       bool
	nginxName    string
	nginxUntil   int64 // Unix seconds
	idFormat     IDFormat
	consentName  string
	consentValue string
	consentAny   bool
	gate         func(*http.Request) bool
}

// New compiles a policy. It refuses a configuration whose parts contradict each other, naming
// them: every cookie name a request or response can carry resolves to one rule.
func New(c Config) (*Policy, error) {
	p := &Policy{reject: c.Reject, name: c.Name, isHTTPS: c.IsHTTPS, refresh: c.Refresh, unwrap: c.Unwrap, visitorRule: -1,
		revocations: c.Revocations}
	for _, a := range c.Adopt {
		for _, n := range a.Names {
			p.adopt = append(p.adopt, newAdoption(n, a))
		}
	}
	if p.isHTTPS == nil {
		p.isHTTPS = func(r *http.Request) bool { return r.TLS != nil }
	}
	p.blocks = newBlocks(c.Cookies, visitorName(c.Visitor))
	var rules []rule
	maxAge := int64(c.MaxAge / time.Second)
	if v := c.Visitor; v != nil {
		p.visitor = newVisitor(v)
		p.visitorRule = len(rules)
		rules = append(rules, rule{pattern: v.Name, kind: kindVisitor, codec: v.Codec, signer: v.Codec, field: "track " + v.Name,
			base: part("keys", c.KeyID) + part("kind", "visitor") + part("track settings", v.Fingerprint)})
	}
	for _, l := range []struct {
		kind        ruleKind
		field       string
		patterns    []string
		codec, long Codec
	}{{kindEncrypt, "encrypt", c.Encrypt, c.EncryptCodec, c.LongEncryptCodec}, {kindSign, "sign", c.Sign, c.SignCodec, c.LongSignCodec}} {
		for _, pat := range l.patterns {
			rules = append(rules, rule{pattern: pat, kind: l.kind, codec: l.codec, signer: l.codec, long: l.long, maxAge: maxAge,
				field: l.field + " " + pat, base: part("keys", c.KeyID) + part("kind", l.field) + part("max_age", maxAge)})
		}
	}
	for _, f := range c.Formatted {
		for _, pat := range f.Names {
			rules = append(rules, rule{pattern: pat, kind: kindFormatted, codec: f.Codec, signer: f.Codec, maxAge: maxAge,
				field: "sign " + pat + " { format itsdangerous }", base: part("keys", f.KeyID) + part("kind", "itsdangerous") + part("max_age", maxAge)})
		}
	}
	if f := c.Flask; f != nil {
		p.flask = newFlask(f)
		rules = append(rules, rule{pattern: f.Name, kind: kindFlask, codec: f.Codec, field: "flask_session " + f.Name,
			base: part("keys", f.KeyID) + part("kind", "flask_session") + part("expose", f.Expose) + part("header_prefix", f.HeaderPrefix) +
				part("flask_session on_invalid", f.OnInvalid)})
	}
	// An unsigned cookie the browser holds with a prefix has only the prefix to guard it: its
	// name joins the rules, so that look-alikes of it are dropped as for a managed one.
	managed := newJar(rules)
	plain := map[string]bool{}
	for _, cr := range c.Cookies {
		if cr.Prefix == "" {
			continue
		}
		for _, n := range cr.Names {
			if !plain[n] && !managed.covers(n) {
				plain[n] = true
				rules = append(rules, rule{pattern: n, kind: kindPlain, field: "cookie " + n + " { prefix " + cr.Prefix + " }",
					base: part("kind", "plain") + part("prefix", cr.Prefix)})
			}
		}
	}
	p.jar = newJar(rules)
	// What changes how a name is read or written is part of its rule's identity: the policy's
	// on_invalid and unwrap, the adoption windows and the cookie rules that can apply.
	for i := range p.jar.rules {
		r := &p.jar.rules[i]
		r.identity = r.base + part("on_invalid reject", c.Reject) + part("unwrap", c.Unwrap) +
			part("cookie rules", p.blocks.identityFor(r.pattern)) + part("adopt", p.adoptionIdentity(r.pattern))
	}
	if err := p.check(c); err != nil {
		return nil, err
	}
	return p, nil
}

func visitorName(v *Visitor) string {
	if v == nil {
		return ""
	}
	return v.Name
}

// check refuses what would not mean what it says, and notes what does nothing.
func (p *Policy) check(c Config) error {
	rules := p.jar.rules
	for i := range rules {
		x := &rules[i]
		if x.kind == kindPlain {
			continue
		}
		for j := range i {
			y := &rules[j]
			if y.kind == kindPlain {
				continue
			}
			switch {
			case PatternsOverlap(x.pattern, y.pattern) && x.base != y.base:
				return fmt.Errorf("%s and %s both claim %s: a cookie has one rule; list it under one of them only", y.field, x.field, overlapName(y.pattern, x.pattern))
			case PatternsOverlap(x.pattern, y.pattern):
				if covers(y.pattern, x.pattern) {
					p.warnings = append(p.warnings, fmt.Sprintf("%s does nothing: %s already covers it", x.field, y.field))
				}
			case x.base != y.base && PatternsOverlap(canonicalPattern(x), canonicalPattern(y)):
				return fmt.Errorf("%s and %s can name one cookie for the upstream (case, %%-escapes or PHP's name mangling): manage them alike, or rename one", y.field, x.field)
			}
		}
	}
	if err := p.blocks.check(p.jar); err != nil {
		return err
	}
	if err := p.checkManaged(c); err != nil {
		return err
	}
	if v := p.visitor; v != nil && v.consentName != "" {
		if b := p.blocks.find(v.consentName); b != nil && b.NeedsConsent {
			return fmt.Errorf("cookie %s { needs_consent }: the consent cookie %s cannot wait for consent itself", strings.Join(b.Names, " "), v.consentName)
		}
	}
	if p.unwrap && len(c.Sign)+len(c.Encrypt) == 0 {
		return fmt.Errorf("unwrap: no sign or encrypt list: keep the lists the handler had, so that their encoded values still verify and reach the upstream plain")
	}
	if f := p.flask; f != nil && f.HeaderPrefix != "" && len(f.Expose) == 0 {
		p.warnings = append(p.warnings, "flask_session: header_prefix without expose does nothing: no field is sent in a header")
	}
	return nil
}

// checkManaged refuses settings that need a name managed by sign or encrypt, or the visitor
// cookie's consent gates, without them.
func (p *Policy) checkManaged(c Config) error {
	signed := func(pattern string) bool {
		for i := range p.jar.rules {
			r := &p.jar.rules[i]
			if (r.kind == kindSign || r.kind == kindEncrypt) && (r.pattern == pattern || !strings.ContainsAny(pattern, `*?[\`) && p.jar.match(pattern) == i) {
				return true
			}
		}
		return false
	}
	for _, b := range p.blocks.list() {
		field := "cookie " + strings.Join(b.Names, " ")
		for _, n := range b.Names {
			if b.Split && !signed(n) {
				return fmt.Errorf("%s: split: %q is not managed: only a signed or encrypted value can be split safely", field, n)
			}
		}
		if v := p.visitor; b.NeedsConsent && (v == nil || v.consentName == "" && !v.honorGPC) {
			return fmt.Errorf("%s: needs_consent: the gates it waits for are the visitor cookie's: configure track with consent or honor_gpc", field)
		}
	}
	for _, a := range c.Adopt {
		for _, n := range a.Names {
			if !signed(n) {
				return fmt.Errorf("adopt: %q is not managed: list it (or a glob matching it) under sign or encrypt", n)
			}
			for _, b := range p.blocks.list() {
				if b.Prefix != "" && slices.ContainsFunc(b.Names, func(bn string) bool { return PatternsOverlap(bn, n) }) {
					return fmt.Errorf("adopt: %q has a cookie rule with prefix %s: the browser's unprefixed copy from before is refused as a tossed cookie; adopt it first, add the prefix after the deadline", n, b.Prefix)
				}
			}
		}
	}
	if v := p.visitor; v != nil && v.nginxName != "" {
		if i := p.jar.match(v.nginxName); i >= 0 {
			return fmt.Errorf("track: adopt_nginx: %q is managed by %s", v.nginxName, p.jar.rules[i].field)
		}
	}
	return nil
}

// part is one named part of a rule's identity.
func part(name string, v any) string { return fmt.Sprintf("%s=%v\x00", name, v) }

// identityDiff names the first part in which two identities differ.
func identityDiff(a, b string) string {
	pa, pb := strings.Split(a, "\x00"), strings.Split(b, "\x00")
	for i := range min(len(pa), len(pb)) {
		if pa[i] != pb[i] {
			name, _, _ := strings.Cut(pa[i], "=")
			return name
		}
	}
	return "how they are configured"
}

// covers reports whether every name q matches, p matches too (exactly for a literal q; for a
// glob only when the patterns are equal or p matches anything).
func covers(p, q string) bool {
	if !strings.ContainsAny(q, `*?[\`) {
		return matchName(p, q)
	}
	return p == q || p == "*"
}

// Warnings are what the compile found that does nothing, for the load-time log.
func (p *Policy) Warnings() []string { return slices.Clone(p.warnings) }

func newVisitor(c *Visitor) *visitor {
	v := &visitor{
		name:     c.Name,
		codec:    c.Codec,
		refresh:  int64(c.Refresh / time.Second),
		header:   http.CanonicalHeaderKey(c.Header),
		strip:    c.Strip,
		secure:   c.Secure,
		honorGPC: c.HonorGPC,
		gate:     c.Gate,
		idFormat: c.IDFormat,
		textID:   c.TextID,
	}
	if c.AdoptNginx != "" {
		v.nginxName, v.nginxUntil = c.AdoptNginx, c.AdoptNginxUntil.Unix()
	}
	if c.Header != "" {
		v.headerNorm = normalizeHeaderName(c.Header)
	}
	v.forceSecure = strings.HasPrefix(c.Name, "__Host-") || strings.HasPrefix(c.Name, "__Secure-") ||
		c.SameSite == SameSiteNone || c.Partitioned
	if c.Consent != "" {
		name, value, hasValue := strings.Cut(c.Consent, "=")
		v.consentName, v.consentValue, v.consentAny = name, value, !hasValue
	}
	var b strings.Builder
	b.WriteString("; Path=" + c.Path)
	if c.Domain != "" {
		b.WriteString("; Domain=" + c.Domain)
	}
	v.clearAttrs = b.String() + "; Max-Age=0"
	fmt.Fprintf(&b, "; Max-Age=%d", int64(c.MaxAge/time.Second))
	if c.HTTPOnly {
		b.WriteString("; HttpOnly")
	}
	b.WriteString("; SameSite=" + [...]string{"Lax", "Strict", "None"}[c.SameSite])
	if c.Partitioned {
		b.WriteString("; Partitioned")
	}
	v.attrs = b.String()
	return v
}

// String names the policy.
func (p *Policy) String() string { return p.name }

// manages reports whether name is one of the policy's cookies, the visitor cookie included.
func (p *Policy) manages(name string) bool { return p.jar.match(name) >= 0 }
