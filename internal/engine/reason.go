package engine

import "github.com/signedcookies/caddy-signedcookies/cookie"

// Reason says why a request cookie was not forwarded or a Set-Cookie line was not sent. Its
// String is the metric label and the log field: short, stable, never a value.
type Reason uint8

// Reasons. The request side counts in caddy_signed_cookies_invalid_total, the response side
// in caddy_signed_cookies_dropped_total.
const (
	_ Reason = iota
	BadMAC
	Expired
	Malformed
	TooLong
	Lookalike
	Duplicate
	Unparsable
	Empty
	TooMany
	OverBudget
	UnsafeValue
	TrackingName
	Informational
	NoConsent  // a cookie that needs consent, without it: held back
	Unprefixed // the unprefixed name of a cookie the browser holds with __Host- or __Secure-
	Partial    // a split value with chunks missing or left over: absent
	Reserved   // a Set-Cookie of a name the module writes itself (a prefixed form, a split piece)
	Revoked    // a value that verified, signed before a revocation of its subject or realm
	// Adopted is no drop: a plain value accepted during a rollout (logged at debug).
	Adopted
	numReasons
)

var reasonNames = [numReasons]string{
	BadMAC:        "bad_mac",
	Expired:       "expired",
	Malformed:     "malformed",
	TooLong:       "too_long",
	Lookalike:     "lookalike",
	Duplicate:     "duplicate",
	Unparsable:    "unparsable",
	Empty:         "empty",
	TooMany:       "too_many",
	OverBudget:    "over_budget",
	UnsafeValue:   "unsafe_value",
	TrackingName:  "tracking_name",
	Informational: "informational",
	NoConsent:     "no_consent",
	Unprefixed:    "unprefixed",
	Partial:       "partial",
	Reserved:      "reserved",
	Revoked:       "revoked",
	Adopted:       "adopted",
}

func (r Reason) String() string {
	if r < numReasons && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every reason, for metrics that start at zero.
func Reasons() []Reason {
	rs := make([]Reason, 0, numReasons-1)
	for r := Reason(1); r < numReasons; r++ {
		rs = append(rs, r)
	}
	return rs
}

// decodeReason maps a codec error to its reason.
func decodeReason(err error) Reason {
	switch err {
	case cookie.ErrBadMAC:
		return BadMAC
	case cookie.ErrExpired:
		return Expired
	case cookie.ErrTooLong:
		return TooLong
	}
	return Malformed
}
