// What a policy makes of one cookie, asked outside a request: the verdict a request would
// reach, with what the command line reports about it.

package engine

import (
	"fmt"
	"strings"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"
)

// Inspection is what a policy makes of one cookie as the client holds it.
type Inspection struct {
	// Kind is how the policy manages the name: "track", "sign", "encrypt", "itsdangerous",
	// "flask_session", "plain" (unsigned, held with a prefix); "" for a name it does not
	// manage. Pattern is the configured name or glob that manages it; App the name the
	// upstream reads (a transparent prefix removed).
	Kind, Pattern, App string
	// Refused says why the name itself is refused (an unprefixed copy of a prefixed cookie).
	Refused string
	// Chunks is the most cookies a split value of the name takes (0: not split).
	Chunks int
	// Reason is why the value does not verify (0: it verifies, or is adopted).
	Reason Reason
	// Decoded is the verified value: for a visitor cookie its ID bytes, for a Flask session
	// its JSON. Signed and Key are set for an expired value too.
	Decoded cookie.Decoded
	// VisitorID is a verified visitor cookie's ID as a UUID.
	VisitorID string
	// Adopted: a plain value that passes as received now (adopt or unwrap); AdoptedBy names
	// what lets it.
	Adopted   bool
	AdoptedBy string
	// Codec is the codec the value was checked with (its key count, its longest value).
	Codec Verifier
	// Encrypted: the codec encrypts values.
	Encrypted bool
}

// Inspect checks a cookie the client holds as browser with value values[0] (and, for a split
// value, the values of its further cookies, name__1 on, in values[1:]) at now (Unix seconds),
// as a request would.
func (p *Policy) Inspect(browser string, values []string, now int64) Inspection {
	app, blk, refused := p.blocks.incoming(browser)
	in := Inspection{App: app}
	if refused {
		in.Refused = fmt.Sprintf("its cookie rule adds the prefix %s, so the client must hold it as %s%s: the unprefixed name, which a sibling subdomain could set, is refused", blk.Prefix, blk.Prefix, browser)
	}
	ri := p.jar.match(app)
	if ri < 0 {
		return in
	}
	r := &p.jar.rules[ri]
	in.Pattern, in.Codec = r.pattern, r.codec
	in.Kind = [...]string{kindSign: "sign", kindEncrypt: "encrypt", kindFormatted: "itsdangerous", kindVisitor: "track",
		kindFlask: "flask_session", kindPlain: "plain"}[r.kind]
	if r.signer != nil {
		in.Encrypted = r.signer.Encrypted()
	}
	if refused || r.kind == kindPlain || len(values) == 0 {
		return in
	}
	value := values[0]
	codec := r.codec
	if blk != nil && blk.Split {
		in.Chunks = blk.SplitCookies
		if k, first, ok := parseSplitHead(value); ok {
			if len(values) < k {
				in.Reason = Partial
				return in
			}
			value = first + strings.Join(values[1:k], "")
		}
		if r.long != nil && len(value) > codec.MaxLength() {
			codec = r.long
		}
	}
	in.Codec = codec
	if r.kind != kindVisitor && r.kind != kindFlask {
		if a := p.adoption(app, now); a != nil && !codec.IsEncoded(value) {
			in.Adopted, in.AdoptedBy, in.Decoded.Value = true, a.pattern, []byte(value)
			if a == &unwrapped {
				in.AdoptedBy = "unwrap"
			}
			return in
		}
	}
	d, err := codec.AppendDecodeAt(nil, browser, value, now)
	in.Decoded = d
	if err != nil {
		in.Reason = decodeReason(err)
		return in
	}
	switch r.kind {
	case kindVisitor:
		id, ok := p.visitorID(d.Value)
		if !ok {
			in.Reason = Malformed
			return in
		}
		in.VisitorID = cookie.UUIDString(id[:])
	case kindFlask:
		if _, err := itsdangerous.SessionFields(d.Value); err != nil {
			in.Reason = Malformed
		}
	default:
		if !spliceSafe(d.Value) {
			in.Reason = UnsafeValue
		}
	}
	return in
}
