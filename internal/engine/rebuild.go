// The Cookie header rebuild: what the upstream reads of the client's cookies. Every pair is
// parsed once; the work per request is linear in the header and the cryptography is bounded.

package engine

import (
	"slices"
	"strings"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

const (
	// maxPairs is the most Cookie pairs a request may carry. Go's own parser gives up above
	// 3000; past this the request is refused rather than partly understood.
	maxPairs = 3000
	// maxMACs bounds the verification work of one request: a forged value costs one HMAC per
	// key of the ring (up to 64), so unbounded, a header of forged copies would cost
	// thousands. A value is verified only while a full ring still fits; past that, managed
	// values are dropped unverified (reason over_budget), which clears nothing and issues no
	// new visitor ID: a valid cookie behind a flood of forged ones is not lost. A valid value
	// usually costs one HMAC (the signing key is tried first); a malformed one costs none.
	maxMACs = 128
	// maxKept bounds the adopted values and split pieces one request keeps.
	maxKept = 32
)

// found is the first valid copy of a managed cookie.
type found struct {
	name string
	rule int
	cookie.Decoded
}

// dropped is a pair the rebuild did not forward.
type dropped struct {
	name   string
	rule   int // -1 when the name is not managed
	reason Reason
}

// result is the outcome of a rebuild. Reused across requests (reset keeps the buffers).
type result struct {
	header  []byte // the rebuilt Cookie header value
	changed bool   // header differs from the request's single Cookie line
	found   []found
	dropped []dropped
	pairs   int
	decodes int  // managed values verified
	macs    int  // HMACs spent on them, at most
	consent bool // the visitor's consent cookie was forwarded
	// refreshed: the keys were refreshed for this request (at most once)
	refreshed bool
	adopted   []adopted
	nginx     string // the value of nginx userid's cookie, when the visitor adopts it
	nginxSeen bool
	chunks    []chunk     // pieces of split values (name__1 …), joined once all are read
	heads     []splitHead // first pieces of split values
	withheld  []span      // pairs forwarded unless consent is missing
	flaskSeen bool        // the Flask session cookie was read
	exposed   []Field     // its exposed fields, once verified
	passed    []dropped   // invalid, but forwarded as the policy says (counted, not dropped)
	joined    []byte
	values    []byte
	canon     []byte
}

func (res *result) reset() {
	res.header, res.changed, res.pairs = res.header[:0], false, 0
	res.decodes, res.macs, res.consent, res.refreshed = 0, 0, false, false
	res.nginx, res.nginxSeen = "", false
	clear(res.adopted)
	clear(res.chunks)
	clear(res.heads)
	res.adopted, res.chunks, res.heads, res.withheld = res.adopted[:0], res.chunks[:0], res.heads[:0], res.withheld[:0]
	clear(res.exposed)
	clear(res.passed)
	res.flaskSeen, res.exposed, res.passed = false, res.exposed[:0], res.passed[:0]
	clear(res.found)
	clear(res.dropped)
	res.found, res.dropped, res.values = res.found[:0], res.dropped[:0], res.values[:0]
	res.canon, res.joined = res.canon[:0], res.joined[:0]
}

// hasFound reports whether a valid copy of the cookie called name was found. found holds at
// most maxMACs entries (each cost one), so this stays linear in the header.
func (res *result) hasFound(name string) bool {
	for i := range res.found {
		if res.found[i].name == name {
			return true
		}
	}
	return false
}

// lookup returns the found entry for rule i, if any.
func (res *result) lookup(rule int) (found, bool) {
	for _, f := range res.found {
		if f.rule == rule {
			return f, true
		}
	}
	return found{}, false
}

func (res *result) drop(name string, rule int, reason Reason) {
	res.dropped = append(res.dropped, dropped{name: name, rule: rule, reason: reason})
}

func (res *result) startPair() {
	if len(res.header) > 0 {
		res.header = append(res.header, ';', ' ')
	}
}

func (res *result) appendPart(part string) {
	res.startPair()
	res.header = append(res.header, part...)
}

// appendPair adds name=value to the rebuilt header.
func (res *result) appendPair(name string, value []byte) {
	res.startPair()
	res.header = append(res.header, name...)
	res.header = append(res.header, '=')
	res.header = append(res.header, value...)
	res.changed = true
}

// rebuild parses the request's Cookie header lines and writes into res the header the
// upstream should see: unmanaged pairs verbatim, the first valid copy of each managed cookie
// decoded, and nothing else (failed, duplicate, look-alike and unparsable pairs are reported
// in res.dropped). Several lines are joined with "; ". Names that an earlier policy on the
// request path verified (trusted) pass as they are: their values are already plain.
// It returns false when the header holds more than maxPairs pairs (res is then empty).
func (p *Policy) rebuild(res *result, lines []string, now int64, trusted []*Policy) bool {
	res.reset()
	for _, line := range lines {
		for line != "" {
			var part string
			if k := strings.IndexByte(line, ';'); k >= 0 {
				part, line = line[:k], line[k+1:]
			} else {
				part, line = line, ""
			}
			part = trimWS(part)
			if part == "" {
				continue
			}
			res.pairs++
			if res.pairs > maxPairs {
				res.reset()
				return false
			}
			start := len(res.header)
			if p.pair(res, part, now, trusted) && len(res.header) > start {
				res.withheld = append(res.withheld, span{start, len(res.header)})
			}
		}
	}
	if len(res.heads) > 0 || len(res.chunks) > 0 {
		p.joinSplit(res, now)
	}
	if len(res.adopted) > 0 {
		res.settleAdopted()
	}
	res.changed = len(lines) != 1 || string(res.header) != lines[0]
	return true
}

// pair handles one pair of the Cookie header. It reports whether the pair is of a cookie
// that needs consent (then what it forwarded is withdrawn without consent).
func (p *Policy) pair(res *result, part string, now int64, trusted []*Policy) (needsConsent bool) {
	eq := strings.IndexByte(part, '=')
	if eq <= 0 || hasCTL(part) {
		name := "" // a pair without '=' is a nameless cookie's value: never reported
		if eq > 0 {
			name = part[:eq]
		}
		res.drop(name, -1, Unparsable)
		return false
	}
	// name is what the upstream reads, browser what the browser holds (and what a MAC covers)
	name, value := part[:eq], part[eq+1:]
	browser := name
	var blk *block
	if p.blocks != nil {
		if base, i, ok := p.blocks.chunkOf(name); ok {
			if len(res.chunks) >= maxKept*MaxSplitCookies {
				res.drop(name, -1, OverBudget)
			} else {
				res.chunks = append(res.chunks, chunk{app: base, index: i, value: value})
			}
			return false
		}
		var refused bool
		if name, blk, refused = p.blocks.incoming(name); refused {
			res.drop(browser, -1, Unprefixed)
			return false
		}
		needsConsent = blk != nil && blk.NeedsConsent
		if browser != name {
			part = name + "=" + value // forwarded under the name the upstream reads
		}
	}
	j := p.jar
	ri := j.match(name)
	if ri < 0 {
		if j.lookalike(name, &res.canon) ||
			(strings.IndexByte(value, '=') >= 0 || !allCookieOctets(name)) && j.hidesManaged(part, &res.canon) {
			res.drop(browser, -1, Lookalike)
			return false
		}
		res.appendPart(part)
		p.noteConsent(res, name, value)
		if v := p.visitor; v != nil && name == v.nginxName && !res.nginxSeen {
			res.nginx, res.nginxSeen = value, true
		}
		return needsConsent
	}
	for _, q := range trusted {
		if q.manages(name) {
			res.appendPart(part)
			p.noteConsent(res, name, value)
			return needsConsent
		}
	}
	if res.hasFound(name) {
		res.drop(browser, ri, Duplicate)
		return false
	}
	if value == "" || value == `""` {
		// what a browser keeps of an upstream's empty (deleting) Set-Cookie: absent, not forged
		res.drop(browser, ri, Empty)
		return false
	}
	r := &j.rules[ri]
	if r.kind == kindPlain {
		res.found = append(res.found, found{name: name, rule: ri})
		res.appendPart(part)
		p.noteConsent(res, name, value)
		return needsConsent
	}
	if r.kind == kindFlask {
		p.flaskPair(res, r, ri, part, name, value, now)
		return false
	}
	if blk != nil && blk.Split {
		if k, first, ok := parseSplitHead(value); ok {
			res.heads = append(res.heads, splitHead{app: name, browser: browser, rule: ri, k: k, first: first})
			return false // joined once every pair is read
		}
	}
	if r.kind != kindVisitor {
		if a := p.adoption(name, now); a != nil && !r.codec.IsEncoded(value) {
			p.adoptPair(res, part, name, value, ri, a)
			return needsConsent
		}
	}
	p.verify(res, r, ri, name, browser, value, now)
	return needsConsent
}

// verify decodes a managed value and forwards it (or drops it, saying why).
func (p *Policy) verify(res *result, r *rule, ri int, name, browser, value string, now int64) {
	keys := r.codec.KeyCount()
	if res.macs+keys > maxMACs {
		res.drop(browser, ri, OverBudget)
		return
	}
	res.decodes++
	codec := r.codec
	if len(value) > codec.MaxLength() && r.long != nil {
		codec = r.long
	}
	start := len(res.values)
	d, err := codec.AppendDecodeAt(res.values, browser, value, now)
	if err == cookie.ErrBadMAC && p.refresh != nil && !res.refreshed && codec.KeyRing() != nil {
		res.refreshed = true
		if p.refresh() {
			res.macs += keys
			keys = codec.KeyCount()
			if res.macs+keys <= maxMACs {
				d, err = codec.AppendDecodeAt(res.values, browser, value, now)
			}
		}
	}
	if err != nil {
		reason := decodeReason(err)
		if reason == BadMAC || reason == Expired {
			res.macs += keys
		}
		res.drop(browser, ri, reason)
		return
	}
	res.macs += d.Key + 1
	res.values = d.Value
	d.Value = d.Value[start:len(d.Value):len(d.Value)]
	if r.kind == kindVisitor {
		res.found = append(res.found, found{name: name, rule: ri, Decoded: d})
		return // forwarded as the policy decides, once it knows the ID is well formed
	}
	if !spliceSafe(d.Value) {
		res.values = res.values[:start]
		res.drop(browser, ri, UnsafeValue)
		return
	}
	res.found = append(res.found, found{name: name, rule: ri, Decoded: d})
	res.appendPair(name, d.Value)
	p.noteConsent(res, name, string(d.Value))
}

// noteConsent records whether the pair forwarded is the consent cookie the visitor waits for.
func (p *Policy) noteConsent(res *result, name, value string) {
	if v := p.visitor; v != nil && v.consentName != "" && name == v.consentName && (v.consentAny || value == v.consentValue) {
		res.consent = true
	}
}

// spliceSafe reports whether a decoded value reads as one value to every parser of the
// rebuilt header: no control byte or ';', and no '=' after a byte some parser splits pairs
// at (space, tab, '"', ',', '\'). "dark session=admin" is two pairs to Python's SimpleCookie.
func spliceSafe[T string | []byte](v T) bool {
	split := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\t' || c == ' ' || c == '"' || c == ',' || c == '\\':
			split = true
		case c < 0x20 || c == 0x7f || c == ';':
			return false
		case c == '=' && split:
			return false
		}
	}
	return true
}

func hasCTL(s string) bool {
	// Eight bytes at a time: a word with no byte below 0x20 and none equal to 0x7f has no
	// control byte; otherwise (a tab, usually) the bytes are checked one by one.
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		y := x ^ (0x7f * ones)
		if (x-0x20*ones)&^x&highs != 0 || (y-ones)&^y&highs != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

// span is a range of the rebuilt header, its separator included.
type span struct{ start, end int }

// chunk is a piece of a split value: name__index.
type chunk struct {
	app   string
	index int
	value string
}

// splitHead is the first piece of a split value: k pieces in all.
type splitHead struct {
	app, browser string
	rule, k      int
	first        string
}

func (res *result) chunkSeen(app string, i int) bool {
	for _, c := range res.chunks {
		if c.app == app && c.index == i {
			return true
		}
	}
	return false
}

// joinSplit joins the pieces of each split value and verifies the whole: pieces of two values,
// of two versions of one, or in another order do not verify; a value with pieces missing
// is absent, and so are pieces without their first one.
func (p *Policy) joinSplit(res *result, now int64) {
	for _, h := range res.heads {
		if res.hasFound(h.app) {
			res.drop(h.browser, h.rule, Duplicate)
			continue
		}
		joined := append(res.joined[:0], h.first...)
		complete := true
		for i := 1; i < h.k && complete; i++ {
			complete = false
			for _, c := range res.chunks {
				if c.app == h.app && c.index == i {
					joined = append(joined, c.value...)
					complete = true
					break
				}
			}
		}
		res.joined = joined
		if !complete {
			res.drop(h.browser, h.rule, Partial)
			continue
		}
		r := &p.jar.rules[h.rule]
		start := len(res.header)
		p.verify(res, r, h.rule, h.app, h.browser, string(joined), now)
		if blk := p.blocks.find(h.app); blk != nil && blk.NeedsConsent && len(res.header) > start {
			res.withheld = append(res.withheld, span{start, len(res.header)})
		}
	}
	for i, c := range res.chunks {
		orphan := true
		for _, h := range res.heads {
			orphan = orphan && h.app != c.app
		}
		if orphan && (i == 0 || res.chunks[i-1].app != c.app) {
			res.drop(chunkName(c.app, c.index), -1, Partial)
		}
	}
}

// cut removes a span from the rebuilt header (the first pair takes its following separator
// with it), moving the spans recorded after it.
func (res *result) cut(s span) {
	start, end := s.start, s.end
	if start == 0 && end < len(res.header) {
		end += 2
	}
	res.header = append(res.header[:start], res.header[end:]...)
	res.withheld = slices.DeleteFunc(res.withheld, func(w span) bool { return w == s })
	n := end - start
	for i := range res.adopted {
		if res.adopted[i].start >= end {
			res.adopted[i].start -= n
			res.adopted[i].end -= n
		}
	}
	for i := range res.withheld {
		if res.withheld[i].start >= end {
			res.withheld[i].start -= n
			res.withheld[i].end -= n
		}
	}
}
