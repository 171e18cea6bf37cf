// The Cookie header rebuild: what the upstream reads of the client's cookies. It parses the
// header once into pairs, decides each pair once, settles what depends on several pairs
// (split values, a plain copy beside an encoded one, consent), passes every pair that is to
// be forwarded through one gate, and builds the forwarded header once from the verdicts.
// Nothing is cut out of a header built earlier. The work is linear in the header, and the
// cryptography is bounded.

package engine

import (
	"strings"
	"unsafe"

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
	// maxKept bounds the adopted values, split values and Flask copies one request keeps.
	maxKept = 32
)

// fate is the verdict on one pair.
type fate uint8

const (
	fateForward fate = iota // forwarded as received
	fateDecoded             // forwarded with its verified plain value
	fateDrop                // not forwarded (listed in dropped, or a visitor cookie read)
	fateHead                // the first piece of a split value: joined once every pair is read
	fateAdopted             // a plain value of a managed cookie, forwarded as received in a rollout
)

// pair is one name=value of the request's Cookie header. It holds no pointer (the pair's text
// is where it stands in its line), so that filling and clearing the pooled list of them
// costs no write barrier.
type pair struct {
	line    int32 // the Cookie line it came from
	off     int32 // where the pair starts in it
	end     int32 // and ends
	eq      int32 // where the '=' is, from off
	skip    int8  // the length of the transparent prefix before the name the upstream reads
	fate    fate
	consent bool  // the pair waits for consent (a cookie rule's needs_consent)
	plain   bool  // cookie-octets only before the '=', none after it: it can hide no pair
	rule    int32 // the managed rule of the name, -1 for none
	dec     span  // fateDecoded: the plain value in result.values; fateHead: see heads
}

func (pr *pair) text(res *result) string    { return res.lines[pr.line][pr.off:pr.end] }
func (pr *pair) browser(res *result) string { return res.lines[pr.line][pr.off : pr.off+pr.eq] }
func (pr *pair) name(res *result) string {
	return res.lines[pr.line][pr.off+int32(pr.skip) : pr.off+pr.eq]
}
func (pr *pair) value(res *result) string { return res.lines[pr.line][pr.off+pr.eq+1 : pr.end] }

// span is a range of a buffer.
type span struct{ start, end int32 }

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
	// unjudged: a value in plain form while plain values of the name pass (adopt, unwrap),
	// which did not make a whole value: dropped, but no sign of a forgery (no reject, no
	// clearing): the app may have set it so.
	unjudged bool
}

// result is the outcome of a rebuild. Reused across requests (reset keeps the buffers).
type result struct {
	lines   []string // the request's Cookie lines
	header  []byte   // the rebuilt Cookie header value
	changed bool     // header differs from the request's single Cookie line
	all     []pair   // every pair that may be forwarded, in order
	found   []found
	dropped []dropped
	pairs   int
	bytes   int  // the Cookie lines' length: the budget of the work that copies
	decodes int  // managed values verified
	macs    int  // HMACs spent on them, at most
	consent bool // the gates allow cookies that need consent
	// refreshed: the keys were refreshed for this request (at most once)
	refreshed bool
	adopted   []adopted
	nginx     string // the value of nginx userid's cookie, when the visitor adopts it
	nginxSeen bool
	chunks    []chunk     // pieces of split values (name__1 …)
	heads     []splitHead // first pieces of split values
	joinedLen int         // bytes copied joining split values
	exposed   []Field     // the Flask session's exposed fields, once verified
	flaskAt   int         // 1 + the verified Flask session's pair in all; 0 for none
	// flaskUnread: a copy of the Flask session went unverified (over budget): it may be the
	// valid one, so no invalid copy is passed to the app in its place.
	flaskUnread bool
	passed      []dropped // invalid, but forwarded as the policy says (counted, not dropped)
	withheld    int       // pairs held back for want of consent
	// hidden are the pairs of all dropped for hiding a pair, in order.
	hidden []int32
	// shadow, set by the caller before rebuild (reset keeps it): the names whose first copy
	// an earlier policy on the path dropped, nil for none.
	shadow *shadow
	joined []byte
	values []byte
	canon  []byte
}

func (res *result) reset() {
	res.header, res.changed, res.pairs, res.bytes, res.lines = res.header[:0], false, 0, 0, nil
	res.decodes, res.macs, res.consent, res.refreshed = 0, 0, false, false
	res.nginx, res.nginxSeen, res.joinedLen, res.withheld, res.flaskAt, res.flaskUnread = "", false, 0, 0, 0, false
	clear(res.all)
	clear(res.adopted)
	clear(res.chunks)
	clear(res.heads)
	clear(res.exposed)
	clear(res.passed)
	clear(res.found)
	clear(res.dropped)
	res.hidden = res.hidden[:0]
	res.all, res.adopted, res.chunks, res.heads = res.all[:0], res.adopted[:0], res.chunks[:0], res.heads[:0]
	res.exposed, res.passed, res.found, res.dropped = res.exposed[:0], res.passed[:0], res.found[:0], res.dropped[:0]
	res.values, res.canon, res.joined = res.values[:0], res.canon[:0], res.joined[:0]
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

// dropPair takes a pair out of what is forwarded, saying why.
func (res *result) dropPair(pr *pair, reason Reason) {
	pr.fate = fateDrop
	res.drop(pr.browser(res), int(pr.rule), reason)
}

// rebuild parses the request's Cookie header lines and writes into res the header the
// upstream should see: unmanaged pairs verbatim, the first valid copy of each managed cookie
// decoded, and nothing else (failed, duplicate, look-alike, withheld and unparsable pairs are
// reported in res.dropped). Several lines are joined with "; ". Names that an earlier policy
// on the request path verified (trusted) pass as they are: their values are already plain.
// gpc says the request carries Sec-GPC: 1. It returns false when the header holds more than
// maxPairs pairs (res is then empty).
func (p *Policy) rebuild(res *result, lines []string, now int64, trusted []*Policy, gpc bool) bool {
	res.reset()
	res.lines = lines
	for li, line := range lines {
		res.bytes += len(line)
		for pos := 0; pos < len(line); {
			if line[pos] == ';' {
				pos++ // an empty part: a run of them costs no search each
				continue
			}
			start, end := pos, len(line)
			if k := strings.IndexByte(line[pos:], ';'); k >= 0 {
				end = pos + k
			}
			pos = end + 1
			for start < end && isWS(line[start]) {
				start++
			}
			for end > start && isWS(line[end-1]) {
				end--
			}
			if start == end {
				continue
			}
			res.pairs++
			if res.pairs > maxPairs {
				res.reset()
				return false
			}
			p.classify(res, li, start, end, now, trusted)
		}
	}
	if len(res.heads) > 0 || len(res.chunks) > 0 {
		p.joinSplit(res, now)
	}
	if len(res.adopted) > 0 {
		res.settleAdopted()
	}
	p.gate(res, gpc)
	res.build()
	res.changed = len(lines) != 1 || string(res.header) != lines[0]
	return true
}

// classify decides one pair of the Cookie header, as far as the pair alone can tell.
func (p *Policy) classify(res *result, li, start, end int, now int64, trusted []*Policy) {
	part := res.lines[li][start:end]
	eq := strings.IndexByte(part, '=')
	var nameClass uint8
	if eq > 0 {
		nameClass = scanBytes(part[:eq])
	}
	if eq <= 0 || nameClass&byteCTL != 0 {
		name := "" // a pair without '=' is a nameless cookie's value: never reported
		if eq > 0 {
			name = part[:eq]
		}
		res.drop(name, -1, Unparsable)
		return
	}
	// A name with a byte no cookie name has (a space before the '=') is no managed name,
	// whatever a glob would match; parsers that trim it read it as one, so it is judged as
	// a look-alike. A value forwarded as received must hold no control byte; one a codec
	// verifies is checked by its decoding.
	token := nameClass&byteNotOctet == 0
	if name := part[:eq]; p.blocks == nil && (!token || p.jar.match(name) < 0) {
		value := part[eq+1:]
		if hasCTLFast(value) {
			res.drop(name, -1, Unparsable)
			return
		}
		if !p.jar.readsAsManaged(name, &res.canon) && (nameClass&byteArray == 0 || !p.jar.arrayOfManaged(name, &res.canon)) &&
			(p.visitor == nil || name != p.visitor.nginxName) {
			// the common case: not ours; the gate looks for a hidden pair only where one can be
			plain := nameClass&byteNotOctet == 0 && strings.IndexByte(value, '=') < 0
			res.all = append(res.all, pair{line: int32(li), off: int32(start), end: int32(end), eq: int32(eq), rule: -1, plain: plain})
			return
		}
	} else if !p.verifies(name) && hasCTLFast(part[eq+1:]) {
		res.drop(name, -1, Unparsable)
		return
	}
	pr := pair{line: int32(li), off: int32(start), end: int32(end), eq: int32(eq), rule: -1}
	name, value := part[:eq], part[eq+1:]
	// What an earlier policy on the path verified (and translated from a prefixed or split
	// form) passes as it is.
	for _, q := range trusted {
		if q.translates(name) {
			res.all = append(res.all, pr)
			return
		}
	}
	var blk *block
	if bs := p.blocks; bs != nil && token {
		if base, i, ok := bs.chunkOf(name); ok {
			if len(res.chunks) >= maxKept*MaxSplitCookies {
				res.drop(name, -1, OverBudget)
			} else {
				res.chunks = append(res.chunks, chunk{app: base, index: i, value: value})
			}
			return
		}
		var app string
		var refused bool
		if app, blk, refused = bs.incoming(name); refused {
			res.drop(name, -1, Unprefixed)
			return
		}
		pr.skip = int8(len(name) - len(app))
		pr.consent = blk != nil && blk.NeedsConsent
		name = app
	}
	j := p.jar
	ri := -1
	if token {
		ri = j.match(name)
	}
	if ri < 0 {
		if j.lookalike(name, &res.canon) {
			res.drop(pr.browser(res), -1, Lookalike)
			return
		}
		if v := p.visitor; v != nil && name == v.nginxName && !res.nginxSeen {
			res.nginx, res.nginxSeen = value, true
		}
		res.all = append(res.all, pr)
		return
	}
	pr.rule = int32(ri)
	r := &j.rules[ri]
	if res.hasFound(name) {
		res.drop(pr.browser(res), ri, Duplicate)
		return
	}
	if value == "" || value == `""` {
		// what a browser keeps of an upstream's empty (deleting) Set-Cookie: absent, not forged
		res.drop(pr.browser(res), ri, Empty)
		return
	}
	switch {
	case r.kind == kindPlain:
		if res.shadow.covers(pr.browser(res)) {
			// The first copy decides, and an earlier policy dropped it: it hid a pair.
			res.drop(pr.browser(res), ri, Duplicate)
			return
		}
		res.found = append(res.found, found{name: name, rule: ri})
		res.all = append(res.all, pr)
		return
	case r.kind == kindFlask:
		p.flaskPair(res, r, pr, now)
		return
	case blk != nil && blk.Split:
		// Every copy of a split name waits for the pieces, a whole value as one of one
		// piece: the first that verifies, in the order received, wins.
		k, first, ok := parseSplitHead(value)
		if !ok {
			if a := p.adoption(name, now); a != nil && !r.codec.IsEncoded(value) {
				p.adoptPair(res, pr, a)
				return
			}
			k, first = 1, value
		}
		if len(res.heads) >= maxKept {
			res.drop(pr.browser(res), ri, OverBudget)
			return
		}
		pr.fate, pr.dec = fateHead, span{int32(len(res.heads)), 0}
		res.heads = append(res.heads, splitHead{app: name, k: k, first: first})
		res.all = append(res.all, pr)
		return
	}
	if r.kind != kindVisitor {
		if a := p.adoption(name, now); a != nil && !r.codec.IsEncoded(value) {
			p.adoptPair(res, pr, a)
			return
		}
	}
	p.verify(res, r, &pr, name, pr.browser(res), value, now)
	if pr.fate != fateDrop {
		res.all = append(res.all, pr)
	}
}

// translates reports whether the pairs of name that reach a later policy are this policy's
// verdicts: a managed name, or the name behind a prefix or the pieces of a split value.
func (p *Policy) translates(name string) bool {
	if p.manages(name) {
		return true
	}
	b := p.blocks.find(name)
	return b != nil && (b.Prefix != "" || b.Split)
}

// verifies reports whether a codec decodes every value of the name the client holds as
// browser before it is forwarded (which no value with a control byte survives).
func (p *Policy) verifies(browser string) bool {
	app, _, _ := p.blocks.incoming(browser)
	i := p.jar.match(app)
	if i < 0 {
		return false
	}
	switch p.jar.rules[i].kind {
	case kindSign, kindEncrypt, kindFormatted, kindVisitor:
		return p.adopt == nil && !p.unwrap
	}
	return false
}

// verify decodes a managed value: pr becomes fateDecoded, or is dropped saying why. A visitor
// cookie that verifies is read (found), not forwarded: the policy forwards the ID.
func (p *Policy) verify(res *result, r *rule, pr *pair, name, browser, value string, now int64) {
	keys := r.codec.KeyCount()
	if res.macs+keys > maxMACs {
		res.dropPair(pr, OverBudget)
		return
	}
	res.decodes++
	codec := r.codec
	if len(value) > codec.MaxLength() && r.long != nil {
		codec = r.long
	}
	start := len(res.values)
	d, err := codec.AppendDecodeAt(res.values, browser, value, now)
	if err == cookie.ErrBadMAC && p.refresh != nil && !res.refreshed && r.refreshable() {
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
		res.dropPair(pr, reason)
		return
	}
	res.macs += d.Key + 1
	res.values = d.Value
	d.Value = d.Value[start:len(d.Value):len(d.Value)]
	if p.revoked(r, name, d.Value, nil, d.Signed) {
		res.values = res.values[:start]
		res.dropPair(pr, Revoked)
		return
	}
	if r.kind == kindVisitor {
		res.found = append(res.found, found{name: name, rule: int(pr.rule), Decoded: d})
		pr.fate = fateDrop // read: the ID is forwarded as the policy decides
		return
	}
	if !spliceSafe(d.Value) {
		res.values = res.values[:start]
		res.dropPair(pr, UnsafeValue)
		return
	}
	res.found = append(res.found, found{name: name, rule: int(pr.rule), Decoded: d})
	pr.fate, pr.dec = fateDecoded, span{int32(start), int32(len(res.values))}
}

// gate is what every pair to be forwarded passes, whichever branch decided it: a value
// forwarded as received must not hide a managed cookie from a parser that splits pairs
// elsewhere than Go does; then, without consent, the pairs that wait for it are held back.
func (p *Policy) gate(res *result, gpc bool) {
	if res.flaskUnread && res.flaskAt == 0 {
		for i := range res.all {
			if pr := &res.all[i]; pr.fate == fateForward && pr.rule >= 0 && p.jar.rules[pr.rule].kind == kindFlask {
				res.dropPair(pr, Duplicate)
			}
		}
	}
	for i := range res.all {
		pr := &res.all[i]
		if pr.fate != fateForward && pr.fate != fateAdopted || pr.plain {
			continue
		}
		name, value := pr.name(res), pr.value(res)
		if (strings.IndexByte(value, '=') >= 0 || !allCookieOctets(name)) && p.jar.hidesManaged(pr.text(res), &res.canon) {
			res.dropPair(pr, Lookalike)
			res.hidden = append(res.hidden, int32(i))
		}
	}
	res.consent = p.consentGiven(res, gpc)
	if res.consent {
		return
	}
	for i := range res.all {
		if pr := &res.all[i]; pr.consent && pr.fate != fateDrop {
			res.dropPair(pr, NoConsent)
			res.withheld++
		}
	}
}

// consentGiven applies the visitor's consent gates (Sec-GPC, the consent cookie among the
// pairs forwarded), which also hold back the cookies that need consent.
func (p *Policy) consentGiven(res *result, gpc bool) bool {
	v := p.visitor
	if v == nil {
		return true
	}
	if v.honorGPC && gpc {
		return false
	}
	if v.consentName == "" {
		return true
	}
	for i := range res.all {
		pr := &res.all[i]
		if pr.fate == fateDrop || pr.consent || pr.name(res) != v.consentName {
			continue
		}
		value := pr.value(res)
		if pr.fate == fateDecoded {
			value = string(res.values[pr.dec.start:pr.dec.end])
		}
		if v.consentAny || value == v.consentValue {
			return true
		}
	}
	return false
}

// build writes the forwarded header from the verdicts.
// Pairs forwarded as received that stand next to each other in a line, "; " between them (as
// browsers send them), are copied as one run.
func (res *result) build() {
	run, start, end := int32(-1), 0, 0
	for i := range res.all {
		pr := &res.all[i]
		asReceived := pr.fate == fateForward || pr.fate == fateAdopted
		if asReceived && pr.skip == 0 {
			s, e := int(pr.off), int(pr.end)
			if pr.line == run && s == end+2 && res.lines[run][end:s] == "; " {
				end = e
				continue
			}
			if run >= 0 {
				res.appendPart(res.lines[run][start:end])
			}
			run, start, end = pr.line, s, e
			continue
		}
		if pr.fate == fateDrop || pr.fate == fateHead {
			continue
		}
		if run >= 0 {
			res.appendPart(res.lines[run][start:end])
			run = -1
		}
		if asReceived {
			appendPair(res, pr.name(res), pr.value(res))
		} else {
			appendPair(res, pr.name(res), res.values[pr.dec.start:pr.dec.end])
		}
	}
	if run >= 0 {
		res.appendPart(res.lines[run][start:end])
	}
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
func appendPair[T string | []byte](res *result, name string, value T) {
	res.startPair()
	res.header = append(res.header, name...)
	res.header = append(res.header, '=')
	res.header = append(res.header, value...)
}

// spliceSafe reports whether a decoded value reads as one value to every parser of the
// rebuilt header, and as itself: no control byte or ';', no space or tab at either end, and
// no '=' after a byte some parser splits pairs at (space, tab, '"', ',', '\'). "dark
// session=admin" is two pairs to Python's SimpleCookie.
func spliceSafe[T string | []byte](v T) bool {
	if len(v) > 0 && (isWS(v[0]) || isWS(v[len(v)-1])) {
		return false // every parser trims it: the upstream would read another value
	}
	// Most values hold none of the bytes below, or separators without an '=': one pass
	// through a table, eight bytes a step, tells; the ordered walk is for the rest.
	var acc uint8
	i := 0
	for ; i+8 <= len(v); i += 8 {
		acc |= spliceClass[v[i]] | spliceClass[v[i+1]] | spliceClass[v[i+2]] | spliceClass[v[i+3]] |
			spliceClass[v[i+4]] | spliceClass[v[i+5]] | spliceClass[v[i+6]] | spliceClass[v[i+7]]
	}
	for ; i < len(v); i++ {
		acc |= spliceClass[v[i]]
	}
	switch {
	case acc&spliceBad != 0:
		return false
	case acc&spliceEq == 0 || acc&spliceSplit == 0:
		return true
	}
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

// Classes of bytes for spliceSafe.
const (
	spliceSplit = 1 << iota // where some parser ends a value
	spliceBad               // a control byte or ';': never in a forwarded value
	spliceEq                // '=': after a split byte, a pair of its own to such a parser
)

var spliceClass = func() (t [256]uint8) {
	for c := range 256 {
		switch b := byte(c); {
		case b == '\t' || b == ' ' || b == '"' || b == ',' || b == '\\':
			t[c] = spliceSplit
		case b < 0x20 || b == 0x7f || b == ';':
			t[c] = spliceBad
		case b == '=':
			t[c] = spliceEq
		}
	}
	return t
}()

func hasCTL(s string) bool { return hasCTLFast(s) }

// Classes of the bytes of a pair, as scanBytes reports them.
const (
	byteCTL      = 1 << iota // a control byte (tab aside): the pair is unparsable
	byteNotOctet             // not an RFC 6265 cookie-octet
	byteArray                // '[' or '%': PHP may read the name as an array's element
	byteEq                   // '='
)

var byteClass = func() (t [256]uint8) {
	for c := range 256 {
		b := byte(c)
		if b < 0x20 && b != '\t' || b == 0x7f {
			t[c] |= byteCTL
		}
		if !isCookieOctet(b) {
			t[c] |= byteNotOctet
		}
		if b == '[' || b == '%' {
			t[c] |= byteArray
		}
		if b == '=' {
			t[c] |= byteEq
		}
	}
	return t
}()

// scanBytes returns the classes of the bytes of s, or'ed.
func scanBytes(s string) uint8 {
	var acc uint8
	for i := 0; i < len(s); i++ {
		acc |= byteClass[s[i]]
	}
	return acc
}

// hasCTLFast reports whether s has a control byte (tab aside): eight bytes at a time, a word
// with no byte below 0x20 and none of 0x7f is skipped; the others (a tab, usually) are looked
// at byte by byte.
func hasCTLFast(s string) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		w := s[i : i+8]
		x := uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
		y := x ^ (0x7f * ones)
		if (x-0x20*ones)&^x&highs != 0 || (y-ones)&^y&highs != 0 {
			if scanBytes(w)&byteCTL != 0 {
				return true
			}
		}
	}
	return scanBytes(s[i:])&byteCTL != 0
}

// chunk is a piece of a split value: name__index.
type chunk struct {
	app   string
	index int
	value string
}

// splitHead is the first piece of a split value: k pieces in all.
type splitHead struct {
	app   string
	k     int
	first string
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
// of two versions of one, or in another order do not verify; a value with pieces missing is
// absent, and so are pieces without their first one. Joining copies at most twice what the
// header holds (a head needs its pieces in the header), so many heads sharing pieces cost no
// more than the header.
func (p *Policy) joinSplit(res *result, now int64) {
	for i := range res.all {
		pr := &res.all[i]
		if pr.fate != fateHead {
			continue
		}
		h := res.heads[pr.dec.start]
		if res.hasFound(h.app) {
			res.dropPair(pr, Duplicate)
			continue
		}
		r := &p.jar.rules[pr.rule]
		if h.k == 1 { // a whole value
			pr.fate = fateForward
			p.verify(res, r, pr, h.app, pr.browser(res), h.first, now)
			continue
		}
		plainDuringRollout := p.adoption(h.app, now) != nil && !r.codec.IsEncoded(pr.value(res))
		n, complete := len(h.first), true
		var pieces [MaxSplitCookies]string
		for k := 1; k < h.k && complete; k++ {
			complete = false
			for _, c := range res.chunks {
				if c.app == h.app && c.index == k {
					pieces[k], n, complete = c.value, n+len(c.value), true
					break
				}
			}
		}
		switch {
		case !complete:
			res.dropPair(pr, Partial)
			if plainDuringRollout {
				res.dropped[len(res.dropped)-1].unjudged = true
			}
			continue
		case r.long != nil && n > r.long.MaxLength() || r.long == nil && n > r.codec.MaxLength():
			res.dropPair(pr, TooLong)
			continue
		case res.joinedLen+n > 2*res.bytes:
			res.dropPair(pr, OverBudget)
			continue
		}
		res.joinedLen += n
		joined := append(res.joined[:0], h.first...)
		for k := 1; k < h.k; k++ {
			joined = append(joined, pieces[k]...)
		}
		res.joined = joined
		pr.fate = fateForward
		// verify keeps nothing of the value, and joined is not written to until the next
		// split value: it is read in place, not copied (a split value is kilobytes).
		dropped := len(res.dropped)
		p.verify(res, r, pr, h.app, pr.browser(res), unsafe.String(unsafe.SliceData(joined), len(joined)), now)
		if plainDuringRollout && len(res.dropped) > dropped {
			res.dropped[len(res.dropped)-1].unjudged = true
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
