// Revocation, as the request pass sees it: one more verdict on a value that verified. A
// revoked value is dropped (cleared, or the request rejected) like a forged one, and a revoked
// visitor cookie is replaced by a new ID.

package engine

import "github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"

// Kinds of values a Revocations is asked about.
const (
	RevokeVisitor = "visitor" // a visitor cookie: value is the ID (16 bytes, or UUID text)
	RevokeCookie  = "cookie"  // a managed cookie: name and plain value
)

// Revocations says which verified values were revoked before they expire (internal/revoke
// keeps them in storage). It is asked about every value that verifies, so it must answer
// from memory, cheaply; safe for concurrent use.
type Revocations interface {
	// Revoked reports whether a verified value signed at signed (Unix seconds; 0 for a format
	// that carries no signing time) was revoked. kind is RevokeVisitor or RevokeCookie.
	Revoked(kind, name string, value []byte, signed int64) bool
	// RevokedSession reports whether a verified Flask session signed at signed, whose
	// top-level fields are fields, was revoked.
	RevokedSession(fields interface{ Get(string) (string, bool) }, signed int64) bool
}

// revoked reports whether a value of rule r that verified was revoked: a visitor cookie, a
// signed, encrypted or itsdangerous value (value, plain), or a Flask session (fields). Values
// without a signing time (itsdangerous without max age) are never revoked.
func (p *Policy) revoked(r *rule, name string, value []byte, fields itsdangerous.Fields, signed int64) bool {
	rv := p.revocations
	if rv == nil {
		return false
	}
	switch r.kind {
	case kindVisitor:
		return rv.Revoked(RevokeVisitor, "", value, signed)
	case kindSign, kindEncrypt, kindFormatted:
		return rv.Revoked(RevokeCookie, name, value, signed)
	case kindFlask:
		return rv.RevokedSession(fields, signed)
	}
	return false
}
