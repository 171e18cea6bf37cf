// The response phase of a pass: each Set-Cookie line rewritten once, at the final header
// write, every attribute byte kept; the module's own cookies added; caches kept off them.

package engine

import (
	"net/http"
	"slices"
	"strings"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// browserCookieLimit is what browsers store of one cookie: name and value.
const browserCookieLimit = 4096

// Finalize rewrites the response's header map, once: at the final header write, or when the
// handler returns with nothing written. The upstream's managed cookies leave signed (or are
// dropped, never sent plain); the visitor cookie and the clearing of bad cookies are added.
func (ps *Pass) Finalize(hdr http.Header) {
	if ps.finalized {
		return
	}
	ps.finalized = true
	unannounceTrailerCookies(hdr)
	upstreamSets := ps.rewriteSetCookies(hdr)
	if ps.addOwnCookies(hdr, upstreamSets) {
		ensurePrivate(hdr)
	}
	ps.f.snapshot(hdr["Set-Cookie"])
	if ps.f.finalized == nil {
		ps.f.finalized = ps.f.finalizedBuf[:0]
	}
	if !slices.Contains(ps.f.finalized, ps.p) {
		ps.f.finalized = append(ps.f.finalized, ps.p)
	}
}

// Informational removes the managed cookies from the header map of a 1xx response: browsers
// ignore them there, and they must not leave unsigned. net/http sends the header map with a
// 1xx and keeps it for the final response, so restore puts them back once the 1xx is written.
func (ps *Pass) Informational(hdr http.Header) (restore func()) {
	lines := hdr["Set-Cookie"]
	kept := lines[:0:0]
	for _, line := range lines {
		if sc, ok := parseSetCookie(line); ok && ps.p.manages(sc.name) {
			ps.Report.Dropped[Informational]++
			ps.event(sc.name, Informational, true, false)
			continue
		}
		kept = append(kept, line)
	}
	if len(kept) == len(lines) {
		return func() {}
	}
	if len(kept) == 0 {
		delete(hdr, "Set-Cookie")
	} else {
		hdr["Set-Cookie"] = kept
	}
	return func() { hdr["Set-Cookie"] = lines }
}

// Done ends the pass when the handler returns: the header map is rewritten if nothing was
// written, and the Set-Cookie lines are put back as the last rewrite left them: a line added
// or replaced after it was never rewritten (HTTP/1 and HTTP/2 ignore such lines, but HTTP/3
// would send them at the first body write). Set-Cookie trailers go too: they are never
// rewritten.
func (ps *Pass) Done(hdr http.Header) {
	ps.Finalize(hdr)
	ps.f.restore(hdr)
	dropTrailerCookies(hdr)
}

// signTime is the time the response's cookies are signed at, read when the first one is: a
// cookie's signature then ages with the browser's Max-Age, which starts at the response,
// however long the upstream took.
func (ps *Pass) signTime() int64 {
	if ps.signAt == 0 {
		ps.signAt = ps.clock()
	}
	return ps.signAt
}

// rewriteSetCookies signs or encrypts the managed cookies the upstream sets, and applies the
// cookie rules, line by line, each line parsed once. It reports which of the cookies queued
// for clearing or upgrading the response sets already (a bit per entry of ps.clear, then of
// ps.upgrade; at most 64).
func (ps *Pass) rewriteSetCookies(hdr http.Header) (upstreamSets uint64) {
	lines := hdr["Set-Cookie"]
	var out []string // copy on first change
	for i, line := range lines {
		sc, ok := parseSetCookie(line)
		if !ok {
			if out != nil {
				out = append(out, line)
			}
			continue
		}
		sealed := ps.f.isSealed(line)
		var repl []string
		changed := true
		switch {
		case sealed:
			ps.markSet(sc, true, nil, &upstreamSets)
			repl, changed = ps.passSealed(ps.lines[:0], sc)
		case ps.reserved(sc.name):
			// The browser's form of a prefixed name and the pieces of a split value are the
			// module's to write: the upstream sets the name itself.
			ps.dropLine(sc.name, Reserved)
		default:
			blk := ps.p.blocks.find(sc.name)
			ps.markSet(sc, false, blk, &upstreamSets)
			repl, changed = ps.rewriteLine(ps.lines[:0], sc, blk)
		}
		ps.lines = repl
		if changed && out == nil {
			out = make([]string, i, len(lines)+len(repl))
			copy(out, lines[:i])
		}
		switch {
		case changed:
			out = append(out, repl...)
		case out != nil:
			out = append(out, line)
		}
	}
	switch {
	case out == nil:
	case len(out) == 0:
		delete(hdr, "Set-Cookie")
	default:
		hdr["Set-Cookie"] = out
	}
	return upstreamSets
}

// markSet notes a cookie the response sets already (the upstream's, or one a policy after
// this one on the path wrote, sealed and in the browser's form): queued for clearing or
// upgrading, it is neither.
func (ps *Pass) markSet(sc setCookie, sealed bool, blk *block, upstreamSets *uint64) {
	if len(ps.clear) == 0 && len(ps.upgrade) == 0 {
		return
	}
	app, browser := sc.name, sc.name
	if sealed {
		app, _, _ = ps.p.blocks.incoming(sc.name)
	} else if blk != nil {
		browser = blk.Prefix + sc.name
	}
	if k := slices.Index(ps.clear, browser); k >= 0 {
		*upstreamSets |= 1 << k
	}
	for k := range ps.upgrade {
		if ps.upgrade[k].name == app {
			*upstreamSets |= 1 << (len(ps.clear) + k)
		}
	}
}

// rewriteLine appends to out what one Set-Cookie line of the upstream becomes: a rewritten
// line, several (a split value), or nothing (dropped); changed is false, and nothing is
// appended, when it stays as it was.
func (ps *Pass) rewriteLine(out []string, sc setCookie, blk *block) (_ []string, changed bool) {
	pol := ps.p
	ri := pol.jar.match(sc.name)
	if ri < 0 {
		// An error route's response reaches no writer of the handlers that ran before it:
		// their cookies are rewritten here, by their rules.
		for _, q := range ps.f.finalized {
			if k := q.jar.match(sc.name); k >= 0 {
				pol, ri = q, k
				blk = q.blocks.find(sc.name)
				break
			}
		}
	}
	for _, q := range ps.f.finalized {
		if blk != nil {
			break
		}
		blk = q.blocks.find(sc.name) // and by their cookie rules
	}
	if !ps.admits(blk, sc) {
		return out, !ps.dropLine(sc.name, NoConsent)
	}
	if blk.needsSecure() {
		ps.secureOnPlain(blk.Prefix + sc.name)
	}
	if ri < 0 || pol.jar.rules[ri].kind == kindPlain {
		if blk == nil {
			return out, false
		}
		// Not sealed: only the attributes changed, and a policy on the path that manages
		// the name must still encode its value.
		return append(out, string(blk.editLine(ps.buf[:0], sc, nil))), true
	}
	r := &pol.jar.rules[ri]
	if r.kind == kindVisitor { // the visitor cookie is the module's alone
		return out, !ps.dropLine(sc.name, TrackingName)
	}
	if r.kind == kindFlask { // the app's own session, signed by the app: it leaves as it is
		if blk == nil {
			return out, false
		}
		return ps.sealed(out, string(blk.editLine(ps.buf[:0], sc, nil))), true
	}
	deletion, expiry, expires := sc.lifetime(ps.now)
	if deletion || pol.unwrap {
		if blk == nil {
			return out, false
		}
		out = ps.sealed(out, string(blk.editLine(ps.buf[:0], sc, nil)))
		if deletion && blk.Split {
			for i := 1; i < blk.SplitCookies; i++ { // whatever the browser holds of a split value
				out = ps.sealed(out, ps.chunkLine(blk, sc, i, nil, !deletesByAttributes(sc)))
			}
		}
		return out, true
	}
	if !spliceSafe(sc.value) {
		return out, !ps.dropLine(sc.name, UnsafeValue)
	}
	browser := sc.name
	codec := r.signer
	if blk != nil {
		browser = blk.Prefix + sc.name
		if blk.Split {
			codec = r.long
		}
	}
	// The signature expires with the cookie: a copy kept past the upstream's Max-Age or
	// Expires does not verify (timestamp + max age = the upstream's expiry).
	ts := ps.signTime()
	if expires && r.maxAge > 0 && expiry-ts < r.maxAge {
		ts = expiry - r.maxAge
	}
	ps.lineBuf = append(ps.lineBuf[:0], sc.value...) // the codec takes bytes: no conversion per line
	enc, err := codec.AppendEncodeAt(ps.buf[:0], browser, ps.lineBuf, ts)
	ps.buf = enc[:0]
	single := len(browser)+1+len(enc) <= browserCookieLimit
	if err != nil || !single && (blk == nil || !blk.Split || len(enc) > blk.SplitCookies*chunkSize(browser)) {
		return out, !ps.dropLine(sc.name, TooLong)
	}
	ps.Report.Signed++
	if single {
		var line []byte
		if blk == nil {
			line = sc.appendSplice(ps.lineBuf[:0], enc)
		} else {
			line = blk.editLine(ps.lineBuf[:0], sc, enc)
		}
		ps.lineBuf = line[:0]
		out = ps.sealed(out, string(line))
		if blk != nil && blk.Split {
			out = ps.clearChunks(out, blk, sc, 1)
		}
		return out, true
	}
	chunks := splitValue(browser, enc)
	out = ps.sealed(out, string(blk.editLine(nil, sc, chunks[0])))
	for i := 1; i < len(chunks); i++ {
		out = ps.sealed(out, ps.chunkLine(blk, sc, i, chunks[i], false))
	}
	return ps.clearChunks(out, blk, sc, len(chunks)), true
}

// reserved reports whether a Set-Cookie name is one the module writes itself for this policy or
// one that rewrote the response before it (on an error route): a prefixed form, a piece.
func (ps *Pass) reserved(name string) bool {
	if ps.p.blocks.reserves(name) {
		return true
	}
	for _, q := range ps.f.finalized {
		if q.blocks.reserves(name) {
			return true
		}
	}
	return false
}

// admits is the consent gate every Set-Cookie line passes, whoever wrote it: without consent a
// cookie that needs it is held back, but a deletion passes (it stores nothing, and once
// consent is withdrawn the app must be able to remove what it set).
func (ps *Pass) admits(blk *block, sc setCookie) bool {
	if !ps.holds(blk) {
		return true
	}
	deletion, _, _ := sc.lifetime(ps.now)
	return deletion
}

// holds reports whether a cookie of the block waits for consent that was not given, by this
// policy's gates or by those of any policy on the path.
func (ps *Pass) holds(blk *block) bool {
	return blk != nil && blk.NeedsConsent && (!ps.consented || ps.f.noConsent)
}

// passSealed applies this policy's rules to a line another policy on the path wrote (and
// encoded, if it manages the name): the consent gate, and the attributes of a cookie rule for
// a name this policy does not manage. The visitor cookie keeps track's attributes.
func (ps *Pass) passSealed(out []string, sc setCookie) (_ []string, changed bool) {
	app, blk, _ := ps.p.blocks.incoming(sc.name)
	if blk == nil || ps.p.manages(app) || sc.name == ps.f.visitorName() {
		return out, false
	}
	if !ps.admits(blk, sc) {
		return out, !ps.dropLine(app, NoConsent)
	}
	if !blk.attributesOnly() {
		return out, false // composed only with a policy that treats the name the same way
	}
	line := string(blk.editAttributes(append(ps.buf[:0], sc.line[:sc.valueEnd]...), sc.line[sc.valueEnd:]))
	if line == sc.line {
		return out, false
	}
	return ps.sealed(out, line), true
}

// sealed appends a line the module wrote and records it, so that no other policy on the
// request path rewrites it.
func (ps *Pass) sealed(out []string, line string) []string {
	ps.f.seal(line)
	return append(out, line)
}

// chunkLine is the Set-Cookie line of chunk i of a split value, with the attributes of the
// value's line (or its deletion).
func (ps *Pass) chunkLine(blk *block, sc setCookie, i int, value []byte, deletion bool) string {
	b := append([]byte(blk.Prefix), chunkName(sc.name, i)...)
	b = append(b, '=')
	b = append(b, value...)
	b = blk.editAttributes(b, sc.line[sc.valueEnd:])
	if deletion {
		b = append(b, "; Max-Age=0"...)
	}
	return string(b)
}

// deletesByAttributes reports whether a deletion line deletes by its Max-Age or Expires,
// which each chunk's line copies. A line that deletes by its empty value alone does not, and
// its chunks' lines need a Max-Age=0 of their own.
func deletesByAttributes(sc setCookie) bool {
	return sc.value != "" && sc.value != `""`
}

// clearChunks deletes the chunks, from the first unused one on, that the request carried:
// stale pieces of a longer value must not linger.
func (ps *Pass) clearChunks(out []string, blk *block, sc setCookie, from int) []string {
	for i := from; i < blk.SplitCookies; i++ {
		if ps.res.chunkSeen(sc.name, i) {
			out = ps.sealed(out, ps.chunkLine(blk, sc, i, nil, true))
		}
	}
	return out
}

// dropLine counts and lists a Set-Cookie line that is not sent; it returns false (not kept).
func (ps *Pass) dropLine(name string, reason Reason) bool {
	ps.Report.Dropped[reason]++
	ps.event(name, reason, true, false)
	return false
}

// addOwnCookies appends the visitor cookie (new or re-signed) and the clearing of invalid
// managed cookies. It reports whether it added anything.
func (ps *Pass) addOwnCookies(hdr http.Header, upstreamSets uint64) bool {
	added := false
	add := func(line string) {
		ps.f.seal(line)
		hdr["Set-Cookie"] = append(hdr["Set-Cookie"], line)
		added = true
	}
	if v := ps.p.visitor; ps.decided && (ps.issue || ps.resign) {
		b := append(ps.buf[:0], v.name...)
		b = append(b, '=')
		id := ps.visitor[:]
		if v.textID {
			id = cookie.AppendUUID(ps.lineBuf[:0], id)
		}
		b, err := v.codec.AppendEncodeAt(b, v.name, id, ps.signTime())
		if err == nil {
			b = append(b, v.attrs...)
			if v.secure == SecureOn || v.secure != SecureOff && (v.forceSecure || ps.isHTTPS()) {
				b = append(b, "; Secure"...)
				ps.secureOnPlain(v.name)
			}
			add(string(b))
			switch {
			case ps.nginxAdopted:
			case ps.issue:
				ps.Report.Issued++
			default:
				ps.Report.Resigned++
			}
		}
		ps.buf = b[:0]
	}
	for k, name := range ps.clear {
		if upstreamSets&(1<<k) != 0 {
			continue // the upstream sets it itself
		}
		attrs := "; Path=/; Max-Age=0"
		if v := ps.p.visitor; v != nil && name == v.name {
			attrs = v.clearAttrs // the visitor cookie's own Path and Domain
		}
		add(ps.clearing(name, attrs))
	}
	if ps.nginxClear {
		add(ps.clearing(ps.p.visitor.nginxName, "; Path=/; Max-Age=0"))
	}
	for k, a := range ps.upgrade {
		if upstreamSets&(1<<(len(ps.clear)+k)) != 0 {
			continue // the upstream sets it itself: that line is signed
		}
		if ps.holds(ps.p.blocks.find(a.name)) {
			ps.dropLine(a.name, NoConsent)
			continue
		}
		if line, ok := ps.upgradeLine(a); ok {
			add(line)
		}
	}
	return added
}

// clearing is the Set-Cookie line that deletes a cookie in the browser, with the attributes
// its cookie rule gives it (a rewritten Path or Domain must match to delete it).
func (ps *Pass) clearing(name, attrs string) string {
	b := append(append(ps.buf[:0], name...), '=')
	if _, blk, _ := ps.p.blocks.incoming(name); blk != nil && name != ps.f.visitorName() {
		b = blk.editAttributes(b, attrs)
	} else {
		b = append(b, attrs...)
	}
	if ps.isHTTPS() || strings.HasPrefix(name, "__Secure-") || strings.HasPrefix(name, "__Host-") {
		if !strings.Contains(string(b[len(name):]), "; Secure") {
			b = append(b, "; Secure"...) // browsers ignore a prefixed or HTTPS cookie's deletion without it
		}
	}
	ps.buf = b[:0]
	return string(b)
}

// ensurePrivate keeps shared caches from storing a response that carries a visitor's cookie.
// Cache-Control gets private. Caches in front may obey other fields instead, each of which is
// rewritten when present: the CDN-targeted fields of RFC 9213 (CDN-Cache-Control,
// Cloudflare-CDN-Cache-Control, any <target>-Cache-Control) get private too; Surrogate-Control
// (Fastly, Varnish) and Akamai's Edge-Control get no-store in place of their lifetimes, other
// directives (content="ESI/1.0") kept; nginx's X-Accel-Expires becomes 0.
func ensurePrivate(hdr http.Header) {
	privateRewrite.apply(hdr, "Cache-Control")
	const suffix = "-Cache-Control"
	for name := range hdr {
		switch {
		case len(name) > len(suffix) && strings.EqualFold(name[len(name)-len(suffix):], suffix):
			privateRewrite.apply(hdr, name)
		case strings.EqualFold(name, "Surrogate-Control"), strings.EqualFold(name, "Edge-Control"):
			noStoreRewrite.apply(hdr, name)
		case strings.EqualFold(name, "X-Accel-Expires"):
			hdr[name] = []string{"0"}
		}
	}
}

// Directive rewrites for ensurePrivate: a cache field gets private (unless private or no-store
// is there already), a surrogate field no-store in place of its lifetimes and of a negated
// no-store (Edge-Control's !no-store).
var (
	privateRewrite = directiveRewrite{add: "private", enough: []string{"private", "no-store"}, drop: []string{"public", "s-maxage"}}
	noStoreRewrite = directiveRewrite{add: "no-store", drop: []string{"max-age", "cache-maxage", "!no-store", "no-store"}}
)

// directiveRewrite edits a comma-separated directive field: the directives named in drop go,
// and add is appended, unless one named in enough is present (then the field stays as it is).
// Names compare without case; other directives are kept as written.
type directiveRewrite struct {
	add          string
	enough, drop []string
}

// Only a bare directive is enough: private="Set-Cookie" (RFC 9111 §5.2.2.7) lets a shared cache
// store the rest of the response, so it gives way to a bare private. Quoted values may hold
// commas.
func (dr directiveRewrite) apply(hdr http.Header, field string) {
	var kept strings.Builder
	for _, v := range hdr[field] {
		for rest := v; rest != ""; {
			var d string
			d, rest = cutDirective(rest)
			name, value, qualified := strings.Cut(d, "=")
			name = strings.TrimSpace(name)
			if containsFold(dr.enough, name) && !qualified {
				return
			}
			if name == "" || containsFold(dr.drop, name) || strings.EqualFold(name, dr.add) && value != "" {
				continue
			}
			kept.WriteString(d)
			kept.WriteString(", ")
		}
	}
	if kept.Len() == 0 {
		hdr[field] = []string{dr.add}
		return
	}
	kept.WriteString(dr.add)
	hdr[field] = []string{kept.String()}
}

func containsFold(names []string, name string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
}

// cutDirective returns the first directive of a comma-separated list, trimmed, and the rest
// after its comma. A comma in a quoted string (with its backslash escapes) belongs to the
// directive's value; a quote left open makes the rest of the field one directive, returned as
// "" so that it is dropped: a directive added after it would be read as part of its value.
func cutDirective(v string) (d, rest string) {
	quoted := false
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && quoted:
			i++ // a quoted pair
		case v[i] == '"':
			quoted = !quoted
		case v[i] == ',' && !quoted:
			return strings.TrimSpace(v[:i]), v[i+1:]
		}
	}
	if quoted {
		return "", ""
	}
	return strings.TrimSpace(v), ""
}
