// What the policies on one request's path share, so that several handlers each enforce their
// own names and no value is verified, signed or issued twice: a handler nested under another,
// siblings with matchers, one reached again through invoke or handle_errors.

package engine

import (
	"maps"
	"net/http"
	"slices"
)

// maxInvalidNames bounds the invalid-names placeholder, in bytes.
const maxInvalidNames = 1024

// Flow is the state of one request shared by the policies on its path, from the first one to
// the error routes. A request's first pass keeps it (Request with a nil Flow), so that a
// request through one handler allocates nothing for it; while that pass runs, the handlers
// after it reach it through Pass.Flow, and Keep copies it out for what runs after the pass
// is released (error routes). A caller may also keep one of its own per request, the zero
// value to start.
type Flow struct {
	ran    []*Policy
	ranBuf [2]*Policy

	// The visitor: decided by the first policy with a visitor cookie.
	visitorBy  *Policy
	tracked    bool // a policy with a visitor cookie ran: the visitor placeholders exist
	visitorNew bool
	visitorID  string // as the upstream reads it; "" for none

	invalid []byte // names of dropped cookies, comma separated, at most maxInvalidNames
	// noConsent: a policy's consent gates refused this request: every cookie that needs
	// consent is held back, whichever policy's rule says so.
	noConsent bool

	// shadow: names whose first copy a policy dropped for hiding a pair.
	shadow shadow

	flask    []Field // the exposed fields of a verified Flask session
	flaskRan bool    // a policy checking a Flask session ran: its placeholders exist

	// Set-Cookie lines a policy wrote on this response: no other rewrites them.
	sealed    []string
	sealedBuf [4]string
	sealedSet map[string]struct{}
	// final is a copy of the Set-Cookie lines the last header rewrite left.
	final    []string
	finalBuf [4]string
	// finalized are the policies that rewrote the response's headers already.
	finalized    []*Policy
	finalizedBuf [2]*Policy

	// owner identifies the request the flow serves (Own): a pooled flow that a finished
	// request's state still points at is not taken for another request's.
	owner uintptr
}

// Own records the request the flow serves, as an identity the caller chooses.
func (f *Flow) Own(owner uintptr) { f.owner = owner }

// Owned reports whether the flow serves the request owner identifies.
func (f *Flow) Owned(owner uintptr) bool { return f.owner == owner }

// reset makes a pooled flow a new request's, keeping its buffers.
func (f *Flow) reset() {
	clear(f.ran)
	clear(f.sealed)
	clear(f.final)
	clear(f.finalized)
	clear(f.flask)
	f.ran, f.sealed, f.final, f.finalized, f.flask, f.invalid = f.ran[:0], f.sealed[:0], f.final[:0], f.finalized[:0], f.flask[:0], f.invalid[:0]
	f.visitorBy, f.visitorID, f.sealedSet = nil, "", nil
	f.shadow.reset()
	f.tracked, f.visitorNew, f.flaskRan, f.noConsent = false, false, false, false
	f.owner = 0
}

// Placeholders are the values of a request's placeholders, copied out of its flow.
type Placeholders struct {
	// VisitorID and VisitorNew exist once a policy with a visitor cookie ran (Tracked).
	VisitorID           string
	Tracked, VisitorNew bool
	Invalid             string
	// Flask are the exposed fields of a verified Flask session; a missing one is empty, not
	// unknown, once a policy checking a Flask session ran (FlaskRan).
	Flask    []Field
	FlaskRan bool
}

// Placeholders copies the placeholder values out of the flow.
func (f *Flow) Placeholders() Placeholders {
	return Placeholders{VisitorID: f.visitorID, Tracked: f.tracked, VisitorNew: f.visitorNew, Invalid: string(f.invalid),
		Flask: slices.Clone(f.flask), FlaskRan: f.flaskRan}
}

// Keep returns a copy of the flow that outlives the pass holding it: what error routes, which
// run after the handlers have returned, need to know of the request's path.
func (f *Flow) Keep() *Flow {
	k := &Flow{
		ran:        slices.Clone(f.ran),
		visitorBy:  f.visitorBy,
		tracked:    f.tracked,
		visitorNew: f.visitorNew,
		visitorID:  f.visitorID,
		invalid:    slices.Clone(f.invalid),
		flask:      slices.Clone(f.flask),
		flaskRan:   f.flaskRan,
		noConsent:  f.noConsent,
		shadow:     shadow{names: slices.Clone(f.shadow.names), all: f.shadow.all},
		sealed:     slices.Clone(f.sealed),
		final:      slices.Clone(f.final),
		finalized:  slices.Clone(f.finalized),
		owner:      f.owner,
	}
	if f.sealedSet != nil {
		k.sealedSet = maps.Clone(f.sealedSet)
	}
	return k
}

// VisitorID returns the visitor ID the upstream reads (a UUID), and whether a policy with a
// visitor cookie ran: without one the visitor placeholders do not exist.
func (f *Flow) VisitorID() (string, bool) { return f.visitorID, f.tracked }

// VisitorNew reports whether the visitor ID was issued on this request.
func (f *Flow) VisitorNew() (bool, bool) { return f.visitorNew, f.tracked }

// FlaskField returns an exposed field of the request's verified Flask session.
// Once a policy checking a Flask session ran, a missing field is empty, not unknown: a
// header built from it must not keep the placeholder's text.
func (f *Flow) FlaskField(key string) (string, bool) {
	for _, fd := range f.flask {
		if fd.Key == key {
			return fd.Value, true
		}
	}
	return "", f.flaskRan
}

// Invalid returns the names of the cookies dropped on this request, comma separated.
func (f *Flow) Invalid() string { return string(f.invalid) }

// join checks p against the policies that ran before it and records it. It returns those
// that manage some of p's names the same way: their verified values pass p as they are.
func (f *Flow) join(p *Policy, trusted []*Policy) ([]*Policy, error) {
	if f.ran == nil {
		f.ran = f.ranBuf[:0]
	}
	for _, q := range f.ran {
		if err := Compose(q, p); err != nil {
			return trusted, err
		}
		trusted = append(trusted, q)
	}
	f.ran = append(f.ran, p)
	if p.visitor != nil {
		f.tracked = true
	}
	return trusted, nil
}

// maxShadowed bounds the names a shadow lists; past it, it covers every name.
const maxShadowed = 16

// shadow lists the names whose first copy in the Cookie header a policy dropped because it
// hid a pair ("ad=dark session=forged"). The first copy of a plain cookie decides what the
// upstream reads; a later policy on the path, which manages such a name (a transparent
// prefix, say) where the one that dropped it does not, sees only the later copies, and must
// not take one of them for the first.
type shadow struct {
	names []string
	// all: more names than maxShadowed (a header of nothing but hidden pairs); every name is
	// taken as shadowed, which drops the later copies of plain cookies rather than forward one.
	all bool
}

func (s *shadow) reset() {
	clear(s.names)
	s.names, s.all = s.names[:0], false
}

// covers reports whether name's first copy was dropped. A nil shadow covers nothing.
func (s *shadow) covers(name string) bool {
	return s != nil && (s.all || len(s.names) > 0 && slices.Contains(s.names, name))
}

// note records the names of the pairs res dropped for hiding a pair that were the first
// copies of their names in the header.
func (s *shadow) note(res *result) {
	first := make(map[string]int32, len(res.all)) // only for a header with a hidden pair
	for i := range res.all {
		if n := res.all[i].browser(res); first[n] == 0 {
			first[n] = int32(i) + 1
		}
	}
	for _, i := range res.hidden {
		n := res.all[i].browser(res)
		if first[n] != i+1 || slices.Contains(s.names, n) {
			continue
		}
		if len(s.names) == maxShadowed {
			s.all = true
			return
		}
		s.names = append(s.names, n)
	}
}

func (f *Flow) noteInvalid(name string) {
	if len(f.invalid)+1+len(name) > maxInvalidNames {
		return
	}
	if len(f.invalid) > 0 {
		f.invalid = append(f.invalid, ',')
	}
	f.invalid = append(f.invalid, name...)
}

// seal records a Set-Cookie line a policy wrote. A set past a few lines keeps the check
// linear in the response's lines.
func (f *Flow) seal(line string) {
	if f.sealedSet != nil {
		f.sealedSet[line] = struct{}{}
		return
	}
	if f.sealed == nil {
		f.sealed = f.sealedBuf[:0]
	}
	f.sealed = append(f.sealed, line)
	if len(f.sealed) > 16 {
		f.sealedSet = make(map[string]struct{}, 2*len(f.sealed))
		for _, l := range f.sealed {
			f.sealedSet[l] = struct{}{}
		}
		f.sealed = nil
	}
}

func (f *Flow) isSealed(line string) bool {
	if f.sealedSet != nil {
		_, ok := f.sealedSet[line]
		return ok
	}
	for _, l := range f.sealed {
		if l == line {
			return true
		}
	}
	return false
}

// snapshot keeps a copy of the Set-Cookie lines as a rewrite left them.
func (f *Flow) snapshot(lines []string) {
	if f.final == nil {
		f.final = f.finalBuf[:0]
	}
	f.final = append(f.final[:0], lines...)
}

// restore puts the Set-Cookie lines back as the last rewrite left them, when anything
// changed them since: added, removed or replaced in place.
func (f *Flow) restore(hdr http.Header) {
	lines := hdr["Set-Cookie"]
	if slices.Equal(lines, f.final) {
		return
	}
	if len(f.final) == 0 {
		delete(hdr, "Set-Cookie")
		return
	}
	hdr["Set-Cookie"] = slices.Clone(f.final)
}

// visitorName is the name of the visitor cookie on this request's path, "" for none yet.
func (f *Flow) visitorName() string {
	if f.visitorBy == nil {
		return ""
	}
	return f.visitorBy.visitor.name
}

// setVisitor records the visitor decision of p.
func (f *Flow) setVisitor(p *Policy, id string, issued bool) {
	f.visitorBy, f.visitorID, f.visitorNew = p, id, issued
}
