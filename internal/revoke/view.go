// What the request path asks: an immutable snapshot of one realm's entries, swapped whole
// behind an atomic pointer, nil while the realm has none.

package revoke

import (
	"encoding/hex"
	"sync/atomic"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// View answers for one realm's entries. It is safe for concurrent use; its answers follow
// the store's copy as soon as it changes.
type View struct {
	realm string
	cur   atomic.Pointer[set]
}

// set is one realm's entries in force, ready for lookups.
type set struct {
	all      int64               // everything signed at or before it (Unix seconds); 0: none
	visitors bool                // some entry is a visitor's
	names    map[string]struct{} // the cookie names some entry names
	fields   []string            // the Flask fields some entry names
	subjects map[Subject]int64   // an entry's subject → its Before (Unix seconds)
}

// buildSet is the set of entries in force at now; nil when there are none.
func buildSet(entries []Entry, now time.Time) *set {
	var s *set
	for _, e := range entries {
		if e.Until.Before(now) {
			continue
		}
		if s == nil {
			s = &set{names: map[string]struct{}{}, subjects: map[Subject]int64{}}
		}
		before := e.Before.Unix()
		if e.Kind == All {
			s.all = max(s.all, before)
			continue
		}
		var sub Subject
		_, _ = hex.Decode(sub[:], []byte(e.Subject)) // checked when read
		s.subjects[sub] = max(s.subjects[sub], before)
		switch e.Kind {
		case Visitor:
			s.visitors = true
		case Cookie:
			s.names[e.Name] = struct{}{}
		case Flask:
			if !contains(s.fields, e.Name) {
				s.fields = append(s.fields, e.Name)
			}
		}
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Empty reports whether the realm has no entry in force.
func (v *View) Empty() bool { return v.cur.Load() == nil }

// Revoked reports whether a verified value signed at signed (Unix seconds; 0 for a format
// without a signing time, which nothing revokes) was revoked. kind is "visitor" (value: the
// ID, 16 bytes or its UUID text) or "cookie" (name and plain value). Without entries it costs
// one atomic load; with entries, a hash of the value only when one names the cookie.
func (v *View) Revoked(kind, name string, value []byte, signed int64) bool {
	s := v.cur.Load()
	if s == nil || signed <= 0 {
		return false
	}
	if signed <= s.all {
		return true
	}
	var sub Subject
	switch Kind(kind) {
	case Visitor:
		if !s.visitors {
			return false
		}
		id, ok := visitorID(value)
		if !ok {
			return false
		}
		sub = SubjectOf(Visitor, "", id[:])
	case Cookie:
		if _, ok := s.names[name]; !ok {
			return false
		}
		sub = SubjectOf(Cookie, name, value)
	default:
		return false
	}
	before, ok := s.subjects[sub]
	return ok && signed <= before
}

// RevokedSession reports whether a verified Flask session signed at signed, whose top-level
// fields (as flask_session exposes them) are fields, was revoked.
func (v *View) RevokedSession(fields interface{ Get(string) (string, bool) }, signed int64) bool {
	s := v.cur.Load()
	if s == nil || signed <= 0 {
		return false
	}
	if signed <= s.all {
		return true
	}
	for _, f := range s.fields {
		value, ok := fields.Get(f)
		if !ok {
			continue
		}
		if before, ok := s.subjects[SubjectOf(Flask, f, value)]; ok && signed <= before {
			return true
		}
	}
	return false
}

// visitorID reads a visitor ID as a verified cookie holds it: 16 bytes, or UUID text.
func visitorID(v []byte) (id [cookie.VisitorIDLen]byte, ok bool) {
	if len(v) == cookie.VisitorIDLen {
		copy(id[:], v)
		return id, true
	}
	return cookie.ParseUUID(string(v))
}
