// The request phase of a pass: what the upstream sees of the client's cookies and headers,
// and the decisions (issue, re-sign, clear) that the response phase carries out.

package engine

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/nginxuid"
)

// Errors of Request. The caller answers them through its error handling.
var (
	// ErrTooManyCookies: the Cookie header holds more pairs than any client sends (431).
	ErrTooManyCookies = errors.New("too many cookies in the request")
	// ErrInvalidCookie: a managed cookie failed and the policy rejects such requests (400).
	ErrInvalidCookie = errors.New("invalid cookie")
)

// Bounds on what one request can make the module write: clearing lines, and log events.
const (
	maxClears        = 32
	maxEvents        = 8
	maxEventNameLen  = 64
	maxEventNameSize = 512
)

// Pass is one policy's work on one request and its response. Get one from Request, hand it
// to the response writer, and Release it when the handler returns.
type Pass struct {
	p   *Policy
	f   *Flow
	res result
	now int64 // Unix seconds, read once per request: verifying, deletions

	decided       bool // this pass decided the visitor
	visitor       [cookie.VisitorIDLen]byte
	known         bool // the visitor holds a verified or new ID
	issue, resign bool
	https         bool // the client's connection is HTTPS (known once httpsKnown)
	httpsKnown    bool
	req           *http.Request
	clear         []string  // managed cookies to clear in the browser
	upgrade       []adopted // adopted cookies to set again, encoded
	nginxAdopted  bool      // the visitor ID came from nginx userid's cookie
	nginxClear    bool      // nginx userid's cookie is cleared in the browser

	finalized bool
	signAt    int64 // Unix seconds the response's cookies are signed at (0: not yet)
	clock     func() int64
	buf       []byte
	lines     []string // scratch: what one Set-Cookie line becomes
	lineBuf   []byte   // scratch
	consented bool     // the gates allow cookies that need consent
	trusted   [2]*Policy
	own       Flow // the request's flow, when this pass is its first

	// Report is what the pass did, for metrics and logs.
	Report Report
}

// Report is what a pass did. Its events are bounded in number and bytes, whatever the request.
type Report struct {
	Verified, Issued, Resigned, Signed int
	Invalid                            [numReasons]int // request cookies not forwarded, by reason
	Dropped                            [numReasons]int // Set-Cookie lines not sent, by reason
	Events                             []Event
	Unlisted                           int  // events past the bounds
	Rejected                           bool // the request was refused (ErrInvalidCookie)
	// SecureOnPlain names a cookie the module set with the Secure attribute (or one that
	// needs it) on a response to a plain-HTTP request: browsers (other than on localhost)
	// refuse it. The first such cookie of the request.
	SecureOnPlain string
	// Adopted counts the plain values accepted during a rollout, by adoption name or glob,
	// and nginx userid cookies whose ID was kept, by their name.
	Adopted    []AdoptionCount
	eventBytes int
}

// Event is a cookie worth a log line: its name (cut to a bounded length, never its value) and
// why it was not forwarded or sent.
type Event struct {
	Name     string
	Reason   Reason
	Response bool // a Set-Cookie line of the response, not a request cookie
	Noise    bool // a pair no parser reads as a managed cookie: someone else's problem
}

var passPool = sync.Pool{New: func() any { return new(Pass) }}

// Release returns the pass for reuse; it must not be used after.
// Field by field, keeping the buffers: copying a whole fresh Pass over this one would cost a
// write barrier per pointer on every request. TestPassRelease holds it to a fresh Pass.
func (ps *Pass) Release() {
	ps.res.reset()
	ps.res.shadow = nil
	clear(ps.clear)
	clear(ps.upgrade)
	clear(ps.lines)
	ps.clear, ps.upgrade, ps.lines, ps.buf, ps.lineBuf = ps.clear[:0], ps.upgrade[:0], ps.lines[:0], ps.buf[:0], ps.lineBuf[:0]
	if ps.f == &ps.own {
		ps.own.reset()
	}
	ps.p, ps.f, ps.clock, ps.trusted = nil, nil, nil, [2]*Policy{}
	ps.now, ps.signAt, ps.visitor = 0, 0, [cookie.VisitorIDLen]byte{}
	ps.decided, ps.known, ps.issue, ps.resign, ps.https, ps.httpsKnown, ps.req = false, false, false, false, false, false, nil
	ps.nginxAdopted, ps.nginxClear, ps.finalized, ps.consented = false, false, false, false
	ev, ad := ps.Report.Events, ps.Report.Adopted
	clear(ev)
	clear(ad)
	ps.Report = Report{Events: ev[:0], Adopted: ad[:0]}
	passPool.Put(ps)
}

// Flow is the request's flow as this pass sees it: its own when it is the request's first.
func (ps *Pass) Flow() *Flow { return ps.f }

// Request applies the policy to r before the upstream sees it: the Cookie header rebuilt
// (managed cookies verified and decoded, everything else that could pass for one dropped),
// the visitor decided and its ID forwarded, client copies of controlled headers removed.
// f is the request's flow: nil for the first pass of a request (it keeps one), the first
// pass's Flow (or a kept one) for the passes after it. now is the time in Unix seconds; clock
// reads it again when the response's cookies are signed. On ErrTooManyCookies, ErrInvalidCookie or a *ConflictError the request must not
// reach the upstream; r then holds only cookies that verified (none on a conflict), and Done
// on the header map of the error response clears the bad cookies in the browser. The pass is
// returned either way.
func (p *Policy) Request(f *Flow, r *http.Request, now int64, clock func() int64) (*Pass, error) {
	ps := passPool.Get().(*Pass)
	if f == nil {
		f = &ps.own
	}
	ps.p, ps.f, ps.now, ps.clock, ps.req = p, f, now, clock, r
	trusted, err := f.join(p, ps.trusted[:0])
	if err != nil {
		delete(r.Header, "Cookie") // error routes see this request's headers: nothing unverified
		return ps, err
	}
	ps.decided = p.visitor != nil && f.visitorBy == nil
	if ps.decided && p.visitor.headerNorm != "" {
		scrubHeader(r.Header, p.visitor.headerNorm)
	}
	// The headers a policy sets are the client's to lose, whatever it trusts: only an earlier
	// policy with the same Flask rule (same name, fields, prefix) has set them already.
	if p.flask != nil && p.flask.headerNorm != "" && !slices.ContainsFunc(trusted, p.sameFlask) {
		scrubPrefix(r.Header, p.flask.headerNorm)
	}
	p.scrubConnection(r.Header)
	p.guardTrailers(r)

	gpc := p.visitor != nil && p.visitor.honorGPC && strings.TrimSpace(r.Header.Get("Sec-GPC")) == "1"
	if len(f.ran) > 1 {
		ps.res.shadow = &f.shadow
	}
	if !p.rebuild(&ps.res, r.Header["Cookie"], now, trusted, gpc) {
		ps.Report.Invalid[TooMany]++
		ps.event("*", TooMany, false, false)
		delete(r.Header, "Cookie") // error routes see this request's headers
		return ps, ErrTooManyCookies
	}
	if len(ps.res.hidden) > 0 {
		f.shadow.note(&ps.res)
	}
	ps.consented = ps.res.consent
	f.noConsent = f.noConsent || !ps.consented
	ps.notePassed()
	if ps.noteDropped() && (p.reject || ps.flaskRejects()) {
		if ps.decided {
			ps.readVisitor() // an error route after the refusal still knows the visitor
		}
		ps.forward(r)
		ps.Report.Rejected = true
		return ps, ErrInvalidCookie
	}
	ps.Report.Verified = len(ps.res.found)
	if p.flask != nil {
		ps.exposeFlask(r)
	}
	if len(ps.res.adopted) > 0 {
		ps.noteAdopted()
	}
	if ps.decided {
		ps.visit(r)
	}
	ps.forward(r)
	return ps, nil
}

// noteDropped counts and lists what the rebuild dropped, and queues the clearing of bad
// managed cookies. It reports whether a managed cookie (or a look-alike of one) failed.
func (ps *Pass) noteDropped() bool {
	bad := false
	for _, d := range ps.res.dropped {
		if d.reason == Empty {
			continue // the browser's copy of an upstream deletion, not worth a word
		}
		ps.Report.Invalid[d.reason]++
		if d.unjudged {
			ps.event(d.name, d.reason, false, true) // the app's plain value, maybe: not an attack
			continue
		}
		if d.rule < 0 && d.reason != Lookalike {
			ps.event(d.name, d.reason, false, true) // a pair that does not parse: not an attack on ours
			continue
		}
		ps.event(d.name, d.reason, false, false)
		if d.reason == Duplicate || d.reason == OverBudget || d.reason == NoConsent {
			continue // not read, not judged: a flood of forged copies must not cost the real one
		}
		if ps.res.hasFound(ps.appName(d.name)) || ps.res.hasAdopted(ps.appName(d.name)) {
			// Another copy of the name is valid: the bad one was tossed in (by a sibling
			// subdomain, say). It is dropped, never rejected, and its clearing would delete
			// the valid one.
			continue
		}
		bad = true
		ps.f.noteInvalid(d.name)
		// Clear by name, once, and not when a valid copy of that very name is forwarded: a
		// glob rule covers several names, so a valid sess_a says nothing about a forged sess_b.
		// A bad visitor cookie is replaced, not cleared, unless the request is rejected; so
		// are look-alikes then: a browser holding a stale cookie must not be refused until it
		// expires.
		// Nor when a copy went unread (over budget): it may be the valid one.
		clearIt := d.rule >= 0 && d.rule != ps.p.visitorRule || ps.p.reject
		if clearIt && len(ps.clear) < maxClears && !slices.Contains(ps.clear, d.name) && !ps.res.unreadCopy(d.name) {
			ps.clear = append(ps.clear, d.name)
		}
	}
	return bad
}

// notePassed counts and lists the invalid cookies forwarded anyway (flask_session pass).
func (ps *Pass) notePassed() {
	for _, d := range ps.res.passed {
		ps.Report.Invalid[d.reason]++
		ps.event(d.name, d.reason, false, false)
	}
}

// event lists a cookie for the logs, within the bounds.
func (ps *Pass) event(name string, reason Reason, response, noise bool) {
	rp := &ps.Report
	if len(name) > maxEventNameLen {
		name = name[:maxEventNameLen] + "…"
	}
	if len(rp.Events) >= maxEvents || rp.eventBytes+len(name) > maxEventNameSize {
		rp.Unlisted++
		return
	}
	rp.eventBytes += len(name)
	rp.Events = append(rp.Events, Event{Name: name, Reason: reason, Response: response, Noise: noise})
}

// readVisitor takes the ID of a verified visitor cookie. It reports whether there is one.
func (ps *Pass) readVisitor() bool {
	f, ok := ps.res.lookup(ps.p.visitorRule)
	if !ok {
		return false
	}
	id, ok := ps.p.visitorID(f.Value)
	if !ok {
		// A correctly signed value of the wrong size can only come from a misconfiguration
		// (another app signing with the same secret); treat it as absent.
		ps.Report.Invalid[Malformed]++
		ps.event(ps.p.visitor.name, Malformed, false, false)
		return false
	}
	ps.visitor, ps.known = id, true
	return true
}

// visit decides the visitor: keep, re-sign or issue.
func (ps *Pass) visit(r *http.Request) {
	v := ps.p.visitor
	if ps.readVisitor() {
		f, _ := ps.res.lookup(ps.p.visitorRule)
		// nginx userid's cookie, left from before, goes once the visitor cookie is there
		ps.nginxClear = ps.res.nginxSeen && ps.now < v.nginxUntil
		ps.resign = !ps.p.unwrap && (f.Key > 0 || ps.now-f.Signed > v.refresh)
		return
	}
	if ps.p.unwrap || ps.unread(ps.p.visitorRule) || !ps.mayIssue(r) {
		return
	}
	if ps.res.nginxSeen && ps.now < v.nginxUntil {
		// The visitor nginx userid knew keeps its ID; its cookie goes, once replaced.
		ps.nginxClear = true
		if id, ok := nginxuid.Parse(ps.res.nginx); ok && !ownLayout(id) {
			ps.visitor, ps.known, ps.issue, ps.nginxAdopted = id, true, true, true
			ps.Report.countAdopted(v.nginxName)
			return
		}
		ps.Report.Invalid[Malformed]++
		ps.event(v.nginxName, Malformed, false, false)
	}
	ps.visitor = cookie.NewVisitorID()
	ps.known, ps.issue = true, true
}

// ownLayout reports whether an ID has the layout of those this module issues (a version 4
// UUID). A client must not get one of them signed by presenting it as nginx userid's: that
// would let it choose an ID another visitor has. About one nginx ID in 64 has the layout by
// chance; those visitors get a new ID.
func ownLayout(id [cookie.VisitorIDLen]byte) bool { return id[6]>>4 == 4 && id[8]>>6 == 2 }

// unread reports whether a cookie of the rule went unverified (over budget): it may be valid,
// so nothing replaces it.
func (ps *Pass) unread(rule int) bool {
	for _, d := range ps.res.dropped {
		if d.rule == rule && d.reason == OverBudget {
			return true
		}
	}
	return false
}

// visitorID reads a verified visitor cookie's ID: 16 bytes, or their UUID text in a format
// that carries text.
func (p *Policy) visitorID(v []byte) (id [cookie.VisitorIDLen]byte, ok bool) {
	if !p.visitor.textID {
		return id, copy(id[:], v) == len(id) && len(v) == len(id)
	}
	return cookie.ParseUUID(string(v))
}

// flaskRejects reports whether the Flask session cookie failed and the policy refuses such
// requests.
func (ps *Pass) flaskRejects() bool {
	f := ps.p.flask
	if f == nil || f.OnInvalid != FlaskReject {
		return false
	}
	if ps.res.flaskAt > 0 {
		return false // a valid copy came: the others were tossed in
	}
	for _, d := range ps.res.dropped {
		if d.rule >= 0 && ps.p.jar.rules[d.rule].kind == kindFlask && d.reason != Duplicate && d.reason != Empty &&
			d.reason != OverBudget && d.reason != NoConsent {
			return true
		}
	}
	return false
}

// sameFlask reports whether q checks the Flask session exactly as p does.
func (p *Policy) sameFlask(q *Policy) bool {
	return q.flask != nil && q.jar.rules[q.flaskRule()].identity == p.jar.rules[p.flaskRule()].identity
}

// isHTTPS reports whether the client's connection is HTTPS, asked once and only when a cookie
// set on the response needs to know.
func (ps *Pass) isHTTPS() bool {
	if !ps.httpsKnown {
		ps.https, ps.httpsKnown = ps.p.isHTTPS(ps.req), true
	}
	return ps.https
}

// secureOnPlain notes a cookie the module gives the Secure attribute (or one that needs it)
// on a response to a plain-HTTP request: browsers other than on localhost refuse it.
func (ps *Pass) secureOnPlain(name string) {
	if ps.Report.SecureOnPlain == "" && !ps.isHTTPS() {
		ps.Report.SecureOnPlain = name
	}
}

// mayIssue applies the privacy gates; they only ever hold back a new ID.
func (ps *Pass) mayIssue(r *http.Request) bool {
	v := ps.p.visitor
	return ps.res.consent && (v.gate == nil || v.gate(r))
}

// appName is the name the upstream reads for a cookie the browser holds as browser.
func (ps *Pass) appName(browser string) string {
	app, _, _ := ps.p.blocks.incoming(browser)
	return app
}

// forward gives the upstream the rebuilt Cookie header and the visitor ID.
func (ps *Pass) forward(r *http.Request) {
	res, f, v := &ps.res, ps.f, ps.p.visitor
	var id []byte
	if ps.known {
		// The upstream gets the verified ID (or the new one, as if the visitor had always had
		// it), last in its Cookie header unless stripped.
		if v.idFormat == IDNginx {
			ps.buf = nginxuid.AppendHex(ps.buf[:0], ps.visitor)
		} else {
			ps.buf = cookie.AppendUUID(ps.buf[:0], ps.visitor[:])
		}
		id = ps.buf
		if !v.strip {
			appendPair(res, v.name, id)
			res.changed = true
		}
	}
	// The header values outlive the pass (logs read them after the handlers return): one
	// allocation holds the slices of both, unless the request's own Cookie slice takes the
	// rebuilt header.
	var vals []string
	idHeader := ps.decided && ps.known && v.header != ""
	cookieHdr := ""
	if res.changed {
		if len(res.header) == 0 {
			delete(r.Header, "Cookie")
		} else {
			cookieHdr = string(res.header)
			if lines := r.Header["Cookie"]; len(lines) > 0 {
				lines[0] = cookieHdr
				r.Header["Cookie"] = lines[:1]
			} else {
				vals = make([]string, 1, 2)
				vals[0] = cookieHdr
				r.Header["Cookie"] = vals[:1:1]
				vals = vals[1:]
			}
		}
	}
	if !ps.decided {
		return
	}
	idText := ""
	if ps.known {
		if v.strip {
			idText = string(id)
		} else {
			// the ID ends the header string just made: sharing it saves an allocation
			idText = cookieHdr[len(cookieHdr)-len(id):]
		}
		if idHeader {
			if cap(vals) == 0 {
				vals = make([]string, 1)
			}
			vals = vals[:1]
			vals[0] = idText
			r.Header[v.header] = vals
		}
	}
	f.setVisitor(ps.p, idText, ps.issue && !ps.nginxAdopted)
}
