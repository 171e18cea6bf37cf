// Package engine holds the cookie policy of signed_cookies: which request cookies reach the
// upstream and in what form, the visitor ID decision, and how each Set-Cookie line of the
// response is rewritten. It knows nothing of Caddy: the module builds a Policy from its
// configuration, and runs it from ServeHTTP (Request) and its response writer (Pass).
package engine

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// Config is a checked configuration: New trusts it (names are cookie tokens, patterns valid
// globs, durations at least a second).
type Config struct {
	// Visitor configures the visitor cookie; nil issues none.
	Visitor *Visitor
	// Sign and Encrypt list the upstream cookies (names or path.Match globs) that leave
	// signed, or signed and encrypted.
	Sign, Encrypt []string
	// SignCodec and EncryptCodec encode them; MaxAge is their codecs' max age.
	SignCodec, EncryptCodec *cookie.Codec
	// LongSignCodec and LongEncryptCodec, the same with room for a split value (see
	// CookieRule.Split; needed only then).
	LongSignCodec, LongEncryptCodec *cookie.Codec
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
	// KeyID is equal for policies whose codecs use the same keys (secrets and realm, or one
	// storage key ring and realm), and must not reveal them.
	KeyID string
	// Name names the policy in errors and logs ("signed_cookies (sign session; track vid)").
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
	// keys may be stale (another instance has just added one). It may block (the storage key
	// ring waits for a re-read, about a second at most) and reports whether the cookie should
	// be verified again.
	Refresh func() bool
}

// FormattedRule signs upstream cookies in the format of its codec (cookie.NewItsDangerousCodec).
type FormattedRule struct {
	Names []string
	Codec *cookie.Codec
	// KeyID is equal for rules with the same format, salt and keys, and must not reveal them.
	KeyID string
}

// Flask verifies a Flask session cookie: a valid one reaches the upstream untouched and its
// exposed fields become request headers (and placeholders); an invalid one is dropped,
// refused, or passed to the app.
type Flask struct {
	Name  string
	Codec *cookie.Codec // cookie.NewFlaskSessionCodec
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
	// them on the same response. Without them it passes until the upstream sets it again.
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
	Codec       *cookie.Codec
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

	relations sync.Map // *Policy → composition, as checked when both ran on one request
}

type visitor struct {
	name         string
	codec        *cookie.Codec
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

// New compiles a policy.
func New(c Config) *Policy {
	p := &Policy{reject: c.Reject, name: c.Name, isHTTPS: c.IsHTTPS, refresh: c.Refresh, unwrap: c.Unwrap, visitorRule: -1}
	for _, a := range c.Adopt {
		for _, n := range a.Names {
			p.adopt = append(p.adopt, newAdoption(n, a))
		}
	}
	if p.isHTTPS == nil {
		p.isHTTPS = func(r *http.Request) bool { return r.TLS != nil }
	}
	var rules []rule
	if v := c.Visitor; v != nil {
		p.visitor = newVisitor(v)
		p.visitorRule = len(rules)
		rules = append(rules, rule{pattern: v.Name, kind: kindVisitor, codec: v.Codec,
			identity: c.KeyID + "|visitor|" + v.Fingerprint})
	}
	for _, l := range []struct {
		kind        ruleKind
		patterns    []string
		codec, long *cookie.Codec
	}{{kindEncrypt, c.Encrypt, c.EncryptCodec, c.LongEncryptCodec}, {kindSign, c.Sign, c.SignCodec, c.LongSignCodec}} {
		for _, pat := range l.patterns {
			rules = append(rules, rule{pattern: pat, kind: l.kind, codec: l.codec, long: l.long, maxAge: int64(c.MaxAge / time.Second),
				identity: fmt.Sprintf("%s|%d|%d", c.KeyID, l.kind, int64(c.MaxAge/time.Second))})
		}
	}
	for _, f := range c.Formatted {
		for _, pat := range f.Names {
			rules = append(rules, rule{pattern: pat, kind: kindSign, codec: f.Codec, maxAge: int64(c.MaxAge / time.Second),
				identity: fmt.Sprintf("%s|formatted|%d", f.KeyID, int64(c.MaxAge/time.Second))})
		}
	}
	if f := c.Flask; f != nil {
		p.flask = newFlask(f)
		rules = append(rules, rule{pattern: f.Name, kind: kindFlask, codec: f.Codec, identity: f.KeyID + "|flask"})
	}
	// An unsigned cookie the browser holds with a prefix has only the prefix to guard it: its
	// name joins the rules, so that look-alikes of it are dropped as for a managed one.
	managed, plain := newJar(rules), map[string]bool{}
	for _, cr := range c.Cookies {
		if cr.Prefix == "" {
			continue
		}
		for _, n := range cr.Names {
			if !plain[n] && !managed.covers(n) {
				plain[n] = true
				rules = append(rules, rule{pattern: n, kind: kindPlain, identity: "plain|" + cr.Prefix})
			}
		}
	}
	p.jar = newJar(rules)
	p.blocks = newBlocks(c.Cookies)
	return p
}

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

// composition is how two policies on one request path get along.
type composition struct {
	compatible bool
	why        string // what conflicts, when not compatible
}

// Compose says whether a request may pass through p after earlier (or earlier after p: the
// relation is symmetric). They are compatible when no name is managed by both, or read by
// one as a look-alike of the other's, unless both manage it the same way; and when at most
// one issues visitor IDs, or both issue the same. The first policy on the path verifies a
// shared name, the later one trusts it. A non-nil error says what conflicts.
func Compose(earlier, p *Policy) error {
	if c := p.composition(earlier); !c.compatible {
		return &ConflictError{Earlier: earlier.name, Later: p.name, Why: c.why}
	}
	return nil
}

func (p *Policy) composition(q *Policy) composition {
	if c, ok := p.relations.Load(q); ok {
		return c.(composition)
	}
	c := composeRules(q.jar.rules, p.jar.rules)
	p.relations.Store(q, c)
	return c
}

func composeRules(a, b []rule) composition {
	for i := range a {
		for j := range b {
			x, y := &a[i], &b[j]
			if x.kind == kindVisitor && y.kind == kindVisitor {
				if x.identity != y.identity {
					return composition{why: fmt.Sprintf("both issue visitor IDs (%q and %q) differently; one request path can carry one visitor cookie", x.pattern, y.pattern)}
				}
				continue
			}
			if PatternsOverlap(x.pattern, y.pattern) {
				if x.identity != y.identity {
					return composition{why: fmt.Sprintf("both manage cookies named %s, differently", overlapName(x.pattern, y.pattern))}
				}
				continue
			}
			if PatternsOverlap(canonicalPattern(x), canonicalPattern(y)) {
				return composition{why: fmt.Sprintf("%q and %q can name one cookie for the upstream (case, %%-escapes or PHP's name mangling)", x.pattern, y.pattern)}
			}
		}
	}
	return composition{compatible: true}
}

// canonicalPattern is a rule's canonical form as a pattern: a literal name's form with its
// metacharacters escaped.
func canonicalPattern(r *rule) string {
	if r.glob {
		return r.canonical
	}
	var b strings.Builder
	for _, c := range r.canonical {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func overlapName(x, y string) string {
	if x == y {
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%q and %q", x, y)
}

// ConflictError says that two policies cannot share a request path.
type ConflictError struct {
	Earlier, Later string
	Why            string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s and %s cannot both handle one request: %s", e.Earlier, e.Later, e.Why)
}
