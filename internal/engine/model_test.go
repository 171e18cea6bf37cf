// The reference model of what the upstream must read of a request's cookies and what the
// client must receive of a response's, stated from the configuration and the exchange alone:
// it reads no field of the engine and calls none of its functions, only the codecs (the
// cookie package, the contract) and nginx's uid format. model_gen_test.go generates paths of
// policies and adversarial exchanges and drives the engine; model_parsers_test.go reads the
// forwarded headers with real parsers.

package engine

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"
	"github.com/signedcookies/caddy-signedcookies/internal/nginxuid"
)

// mNow is the time of every modelled exchange (Unix seconds).
const mNow = t0

// mSpec is one handler's configuration as the model reads it; config turns it into the
// engine's. The codecs are shared by the model and the engine: they are the contract.
type mSpec struct {
	label         string
	ring          int // index into mRings
	maxAge        time.Duration
	sign, encrypt []string
	formatted     []*mFormat
	flask         *mFlask
	visitor       *mVisitor
	blocks        []*mBlock
	adopt         []*mAdopt
	reject        bool
	unwrap        bool

	signC, encC, longSignC, longEncC Codec
}

type mFormat struct {
	names []string
	keys  int // index into mFormatKeys
	salt  string
	codec Codec
}

type mFlask struct {
	name      string
	keys      int
	expose    []string
	prefix    string // header prefix, "" for none
	onInvalid FlaskInvalid
	codec     Codec
}

type mVisitor struct {
	name       string
	ring       int
	encrypt    bool
	dangerous  bool // itsdangerous format: the ID as UUID text
	header     string
	strip      bool
	gpc        bool
	consent    string // "", "name" or "name=value"
	nginx      string
	nginxUntil int64
	idNginx    bool
	refresh    time.Duration
	codec      Codec
}

type mBlock struct {
	names   []string
	prefix  string
	split   int // chunks; 0: no split
	consent bool
	secure  *bool
}

// attributesOnly: the block changes neither the name, the value nor whether it passes.
func (b *mBlock) attributesOnly() bool { return b.prefix == "" && b.split == 0 && !b.consent }

type mAdopt struct {
	names []string
	until int64
	attrs string
}

// mMatch reports whether a name matches a configured name or glob.
// A name with a byte no cookie name holds (a space, a quote…) is no name a rule manages,
// whatever a glob would match: parsers trim or split it, so it is judged as a look-alike.
func mMatch(pattern, name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= 0x20 || c >= 0x7f || c == '"' || c == ',' || c == ';' || c == '\\' {
			return false
		}
	}
	ok, err := path.Match(pattern, name)
	return ok && err == nil
}

// mKind is what a path does with the cookies of one name.
type mKind uint8

const (
	mNone     mKind = iota // not managed (a cookie rule may still apply)
	mSign                  // signed
	mEncrypt               // signed and encrypted
	mFormatK               // signed in itsdangerous's format
	mFlaskK                // the app's Flask session: verified, forwarded untouched
	mVisitorK              // the visitor cookie: read, the ID forwarded
	mPlainK                // unmanaged, held behind a prefix
)

// mRule is how the policies that ran treat one name the upstream uses (the app name).
type mRule struct {
	app     string
	kind    mKind
	spec    *mSpec // the first policy that manages the name
	codec   Codec
	long    Codec
	prefix  string // the browser holds prefix+app
	split   int
	consent *mSpec // the policy whose gates the name waits for; nil: none
	// adoptable: a plain value passes now (an adoption window, or unwrap); attrs: the
	// adoption's attributes (the plain value is then set again, encoded).
	adoptable bool
	attrs     string
	unwrap    bool
}

func (r *mRule) managed() bool { return r != nil && r.kind != mNone }

// encoded reports whether the rule's values leave signed (and must verify on the way in).
func (r *mRule) encoded() bool {
	return r != nil && (r.kind == mSign || r.kind == mEncrypt || r.kind == mFormatK)
}

func (r *mRule) browser() string { return r.prefix + r.app }

// mModel answers for one exchange over the policies that ran.
type mModel struct {
	specs []*mSpec
	pairs []mPair // the client's Cookie pairs, in order
	gpc   bool
	rules map[string]*mRule
	// signNow is when the response's cookies are signed: they are verified then.
	signNow int64
	// literals and globs, once known (see patterns)
	literals, globs []string
	known           bool
}

// mPair is one pair of the client's Cookie header: ok when it parses (a name before an '=',
// no control byte but tab).
type mPair struct {
	name, value string
	ok          bool
}

func mParsePairs(lines []string) []mPair {
	var out []mPair
	for _, line := range lines {
		for _, part := range strings.Split(line, ";") {
			part = strings.Trim(part, " \t")
			if part == "" {
				continue
			}
			name, value, found := strings.Cut(part, "=")
			ok := found && name != ""
			for i := 0; i < len(part); i++ {
				if c := part[i]; c < 0x20 && c != '\t' || c == 0x7f {
					ok = false
				}
			}
			out = append(out, mPair{name: name, value: value, ok: ok})
		}
	}
	return out
}

func newModel(specs []*mSpec, cookieLines []string, gpc bool) *mModel {
	return &mModel{specs: specs, pairs: mParsePairs(cookieLines), gpc: gpc, rules: map[string]*mRule{}}
}

// rule is how the path treats the app name app; nil when nothing applies to it.
func (md *mModel) rule(app string) *mRule {
	if r, ok := md.rules[app]; ok {
		return r
	}
	r := md.findRule(app)
	md.rules[app] = r
	return r
}

func (md *mModel) findRule(app string) *mRule {
	r := &mRule{app: app}
	for _, s := range md.specs {
		if r.kind != mNone {
			break
		}
		r.spec = s
		switch {
		case s.visitor != nil && s.visitor.name == app:
			r.kind, r.codec = mVisitorK, s.visitor.codec
		case slices.ContainsFunc(s.encrypt, func(p string) bool { return mMatch(p, app) }):
			r.kind, r.codec, r.long = mEncrypt, s.encC, s.longEncC
		case slices.ContainsFunc(s.sign, func(p string) bool { return mMatch(p, app) }):
			r.kind, r.codec, r.long = mSign, s.signC, s.longSignC
		case s.flask != nil && s.flask.name == app:
			r.kind, r.codec = mFlaskK, s.flask.codec
		default:
			for _, f := range s.formatted {
				if slices.ContainsFunc(f.names, func(p string) bool { return mMatch(p, app) }) {
					r.kind, r.codec = mFormatK, f.codec
					break
				}
			}
		}
	}
	// The cookie rule that changes how the name is held or whether it passes: policies that
	// share the path agree on it (or only edit attributes).
	isVisitor := r.kind == mVisitorK
	for _, s := range md.specs {
		for _, b := range s.blocks {
			if b.attributesOnly() || isVisitor || !slices.ContainsFunc(b.names, func(p string) bool { return mMatch(p, app) }) {
				continue
			}
			if r.prefix == "" {
				r.prefix = b.prefix
			}
			if r.split == 0 {
				r.split = b.split
			}
			if b.consent && r.consent == nil {
				r.consent = s
			}
		}
	}
	if r.kind == mNone {
		r.spec = nil
		if r.prefix != "" {
			r.kind = mPlainK
		} else if r.consent == nil {
			return nil
		}
	}
	if r.encoded() {
		s := r.spec
		r.unwrap = s.unwrap
		if s.unwrap {
			r.adoptable = true
		} else if r.kind != mFormatK {
			for _, a := range s.adopt {
				if mNow < a.until && slices.ContainsFunc(a.names, func(p string) bool { return mMatch(p, app) }) {
					r.adoptable, r.attrs = true, a.attrs
					break
				}
			}
		}
	}
	return r
}

// literals are the literal names and globs the path manages (for look-alikes).
func (md *mModel) patterns() (literals, globs []string) {
	if md.known {
		return md.literals, md.globs
	}
	defer func() { md.literals, md.globs, md.known = literals, globs, true }()
	add := func(p string) {
		if strings.ContainsAny(p, `*?[\`) {
			globs = append(globs, p)
		} else {
			literals = append(literals, p)
		}
	}
	for _, s := range md.specs {
		if s.visitor != nil {
			add(s.visitor.name)
		}
		for _, p := range s.sign {
			add(p)
		}
		for _, p := range s.encrypt {
			add(p)
		}
		for _, f := range s.formatted {
			for _, p := range f.names {
				add(p)
			}
		}
		if s.flask != nil {
			add(s.flask.name)
		}
		for _, b := range s.blocks {
			if b.prefix != "" {
				for _, p := range b.names {
					add(p)
				}
			}
		}
	}
	return literals, globs
}

// readsAs lists the managed app names an upstream could take the name n for: n itself, and
// its readings with odd bytes trimmed at the start (and the end, or not), %-escapes decoded
// (or not, a decoded NUL ending it), ASCII case folded, ' ', '.', '[' and '+' read as '_'
// (PHP), and the base of a PHP array (name[...]). Managed globs are written in canonical
// characters, so a reading that matches one is the name it reads as.
func (md *mModel) readsAs(n string) []string {
	literals, globs := md.patterns()
	var out []string
	add := func(m string) {
		if md.rule(m).managed() && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	// A name managed in its own right (a glob can match "sess_a[x]") is its own cookie.
	if md.rule(n).managed() {
		return []string{n}
	}
	readings := mReadings(n)
	for _, l := range literals {
		if l == n || slices.Contains(readings, mCanon(l, true)) {
			add(l)
		}
	}
	for _, g := range globs {
		for _, c := range readings {
			if mMatch(g, c) {
				add(c)
			}
		}
	}
	return out
}

func mReadings(n string) []string {
	var out []string
	for _, s := range []string{n, mPercentDecode(n)} {
		for _, t := range []string{s, mArrayBase(s)} {
			if t == "" {
				continue
			}
			out = append(out, mCanon(t, true), mCanon(t, false))
		}
	}
	return out
}

func mPercentDecode(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				if v == 0 {
					break
				}
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, s[i])
	}
	return string(b)
}

// mArrayBase is what PHP files name[...] under: name; "" when n is no array.
func mArrayBase(n string) string {
	i := strings.IndexByte(n, '[')
	if i <= 0 || !strings.Contains(n[i:], "]") {
		return ""
	}
	return n[:i]
}

func mCanon(s string, trimTail bool) string {
	odd := func(c byte) bool { return c <= 0x20 || c >= 0x7f }
	for s != "" && odd(s[0]) {
		s = s[1:]
	}
	for trimTail && s != "" && odd(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case c == ' ' || c == '.' || c == '[' || c == '+':
			b[i] = '_'
		}
	}
	return string(b)
}

// mSafe reports whether name=v reads as that one pair, with that value, to every parser of a
// Cookie header: no control byte (but tab) or ';', no space or tab at either end (parsers
// trim them), and no '=' after a byte some parser splits pairs at.
func mSafe(v string) bool {
	if v != "" && (v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		return false
	}
	split := false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == ' ' || c == '\t' || c == '"' || c == ',' || c == '\\':
			split = true
		case c < 0x20 || c == 0x7f || c == ';':
			return false
		case c == '=' && split:
			return false
		}
	}
	return true
}

// copies are the client's values of the cookie the browser holds as browser, in order; an
// empty value (what a browser keeps of a deletion) is no copy.
func (md *mModel) copies(browser string) []string {
	var out []string
	for _, p := range md.pairs {
		if p.ok && p.name == browser && p.value != "" && p.value != `""` {
			out = append(out, p.value)
		}
	}
	return out
}

// chunk is the first value of chunk i of a split cookie, and whether there is one.
func (md *mModel) chunk(browser string, i int) (string, bool) {
	for _, p := range md.pairs {
		if p.ok && p.name == browser+"__"+strconv.Itoa(i) {
			return p.value, true
		}
	}
	return "", false
}

// decode verifies one copy of an encoded cookie: a split head is joined with the first copy of
// each chunk. ok: it verifies and reads as one pair.
func (md *mModel) decode(r *mRule, value string) (plain string, ok bool) {
	codec := r.codec
	if r.split > 0 && len(value) > 2 && value[1] == '*' && value[0] >= '2' && value[0] <= '8' {
		k := int(value[0] - '0')
		joined := value[2:]
		for i := 1; i < k; i++ {
			c, found := md.chunk(r.browser(), i)
			if !found {
				return "", false
			}
			joined += c
		}
		value, codec = joined, r.long
	} else if r.long != nil && len(value) > codec.MaxLength() {
		codec = r.long
	}
	d, err := codec.AppendDecodeAt(nil, r.browser(), value, mNow)
	if err != nil || !mSafe(string(d.Value)) {
		return "", false
	}
	return string(d.Value), true
}

// verified is the plain value of the first valid copy of an encoded cookie.
func (md *mModel) verified(r *mRule) (string, bool) {
	for _, v := range md.copies(r.browser()) {
		if plain, ok := md.decode(r, v); ok {
			return plain, true
		}
	}
	return "", false
}

// adopted is the first copy not in encoded form, where plain values pass. The first piece of
// a split value ("3*…") is the module's encoded form: it passes only whole and verified.
func (md *mModel) adopted(r *mRule) (string, bool) {
	if !r.adoptable {
		return "", false
	}
	for _, v := range md.copies(r.browser()) {
		if r.split > 0 && len(v) >= 2 && v[1] == '*' && v[0] >= '2' && v[0] <= '8' {
			continue
		}
		if !r.codec.IsEncoded(v) {
			return v, true
		}
	}
	return "", false
}

// flaskValid reports whether a copy is a valid Flask session, and its fields.
func mFlaskValid(r *mRule, v string) (map[string]string, bool) {
	d, err := r.codec.AppendDecodeAt(nil, r.app, v, mNow)
	if err != nil {
		return nil, false
	}
	fields, err := itsdangerous.SessionFields(d.Value)
	if err != nil {
		return nil, false
	}
	out := map[string]string{}
	for k := range fields {
		out[k], _ = fields.Get(k)
	}
	return out, true
}

// visitorKept is the ID of the first verifying visitor cookie, when it holds one.
func (md *mModel) visitorKept(r *mRule, textID bool) (id [16]byte, ok bool) {
	for _, v := range md.copies(r.browser()) {
		d, err := r.codec.AppendDecodeAt(nil, r.app, v, mNow)
		if err != nil {
			continue
		}
		if textID {
			return cookie.ParseUUID(string(d.Value))
		}
		if len(d.Value) != 16 {
			return id, false
		}
		copy(id[:], d.Value)
		return id, true
	}
	return id, false
}

// mID is the visitor ID as the upstream reads it.
func mID(v *mVisitor, id [16]byte) string {
	if v.idNginx {
		return nginxuid.Hex(id)
	}
	return cookie.UUIDString(id[:])
}

// allowed is what the upstream may read for the managed app name m: verified plain values,
// an adopted plain value, the visitor ID, a valid Flask session (or, with pass and none
// valid, any copy); multi: several copies may pass.
func (md *mModel) allowed(m string, vid string, consent func(*mSpec) bool) (vals []string, multi bool) {
	r := md.rule(m)
	if !r.managed() || r.consent != nil && !consent(r.consent) {
		return nil, false
	}
	switch r.kind {
	case mVisitorK:
		v := r.spec.visitor
		if v.strip || vid == "" {
			return nil, false
		}
		return []string{vid}, false
	case mFlaskK:
		var all []string
		for _, c := range md.copies(r.browser()) {
			if _, ok := mFlaskValid(r, c); ok {
				return []string{c}, false
			}
			all = append(all, c)
		}
		if r.spec.flask.onInvalid == FlaskPass {
			return all, true
		}
		return nil, false
	case mPlainK:
		if c := md.copies(r.browser()); len(c) > 0 {
			return c[:1], false
		}
		return nil, false
	}
	if plain, ok := md.verified(r); ok {
		return []string{plain}, false
	}
	if plain, ok := md.adopted(r); ok {
		return []string{plain}, false
	}
	return nil, false
}

// mSplitHeader splits a forwarded Cookie header as the engine builds it ("; " between pairs).
func mSplitHeader(h string) [][2]string {
	var out [][2]string
	if h == "" {
		return nil
	}
	for _, p := range strings.Split(h, "; ") {
		n, v, _ := strings.Cut(p, "=")
		out = append(out, [2]string{n, v})
	}
	return out
}

// consentIn reports whether the gates of spec's visitor are open as the upstream sees the
// request: no Sec-GPC where it is honoured, and the consent cookie among the pairs it reads.
func (md *mModel) consentIn(s *mSpec, forwarded string) bool {
	v := s.visitor
	if v == nil {
		return true
	}
	if v.gpc && md.gpc {
		return false
	}
	if v.consent == "" {
		return true
	}
	name, value, hasValue := strings.Cut(v.consent, "=")
	for _, p := range mSplitHeader(forwarded) {
		if p[0] == name && (!hasValue || p[1] == value) {
			return true
		}
	}
	return false
}

// mSetCookie is a Set-Cookie line as a browser reads it (RFC 6265 §5.2).
type mSetCookie struct {
	name, value string
	ok          bool
	deletion    bool
	expiry      int64 // Unix seconds; 0: a session cookie
}

func mParseSetCookie(line string, now int64) mSetCookie {
	first, attrs, _ := strings.Cut(line, ";")
	name, value, found := strings.Cut(first, "=")
	sc := mSetCookie{name: strings.Trim(name, " \t"), value: strings.Trim(value, " \t")}
	sc.ok = found && sc.name != ""
	haveMaxAge, maxAge, haveExpires, expires := false, int64(0), false, int64(0)
	for _, a := range strings.Split(attrs, ";") {
		k, v, _ := strings.Cut(a, "=")
		k, v = strings.Trim(k, " \t"), strings.Trim(v, " \t")
		switch {
		case strings.EqualFold(k, "max-age"):
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && v != "" && v[0] != '+' {
				haveMaxAge, maxAge = true, n
			}
		case strings.EqualFold(k, "expires"):
			if t, err := http.ParseTime(v); err == nil {
				haveExpires, expires = true, t.Unix()
			}
		}
	}
	switch {
	case sc.value == "" || sc.value == `""`:
		sc.deletion = true
	case haveMaxAge && maxAge <= 0:
		sc.deletion = true
	case haveMaxAge:
		sc.expiry = now + maxAge
	case haveExpires && expires <= now:
		sc.deletion = true
	case haveExpires:
		sc.expiry = expires
	}
	return sc
}

// fromBrowser maps a name the browser holds to the rule of its app name and the chunk it is
// (0: the cookie itself); nil when no rule holds the cookie under that name.
func (md *mModel) fromBrowser(n string) (*mRule, int) {
	if len(n) > 3 && n[len(n)-3:len(n)-1] == "__" && n[len(n)-1] >= '1' && n[len(n)-1] <= '7' {
		if r, i := md.fromBrowser(n[:len(n)-3]); r != nil && i == 0 && int(n[len(n)-1]-'0') < r.split {
			return r, int(n[len(n)-1] - '0')
		}
	}
	for _, pre := range []string{"__Host-", "__Secure-"} {
		if rest, ok := strings.CutPrefix(n, pre); ok {
			if r := md.rule(rest); r != nil && r.prefix == pre {
				return r, 0
			}
		}
	}
	if r := md.rule(n); r != nil && r.prefix == "" {
		return r, 0
	}
	return nil, 0
}

// mOutcome is what the engine did with one exchange.
type mOutcome struct {
	ran       []*mSpec // the main route's policies that ran
	err       error    // the main route's error
	forwarded string   // the Cookie header after the main route (what its upstream reads)
	upstream  http.Header
	errRan    bool
	errSpecs  []*mSpec
	errErr    error
	errHeader http.Header // what the error route's upstream read; nil if it did not run
	final     []string    // the Set-Cookie lines the client receives
}

// mView is what one upstream read, and the model's view of it: for the real parsers.
type mView struct {
	where, forwarded, vid string
	md                    *mModel
	consent               func(*mSpec) bool
}

// mCheck compares an outcome with the model; it returns the violations, each a sentence, and
// what each upstream read.
func mCheck(pth *mPath, x *mExchange, out *mOutcome) (bad []string, views []mView) {
	fail := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	var ce *ConflictError
	if out.err != nil && (errorsAs(out.err, &ce) || out.err == ErrTooManyCookies) {
		fail("main route: %v (the path composes and the header is small)", out.err)
	}
	all := slices.Clone(out.ran)
	if out.errRan {
		all = append(all, out.errSpecs...)
	}
	md := newModel(all, x.cookies, x.gpc)
	md.signNow = mNow + x.skew
	mainMd := newModel(out.ran, x.cookies, x.gpc)

	// The visitor: the policy that decides it is the first with a visitor cookie.
	var vis *mVisitor
	var visSpec *mSpec
	for _, s := range all {
		if s.visitor != nil {
			vis, visSpec = s.visitor, s
			break
		}
	}
	var kept, lineID [16]byte
	var hasKept, hasLine bool
	vidText := ""
	if vis != nil {
		vr := md.rule(vis.name)
		kept, hasKept = md.visitorKept(vr, vis.dangerous)
		for _, line := range out.final {
			sc := mParseSetCookie(line, mNow)
			if !sc.ok || sc.name != vis.name || sc.deletion {
				continue
			}
			d, err := vis.codec.AppendDecodeAt(nil, vis.name, sc.value, md.signNow)
			var id [16]byte
			ok := err == nil
			if ok && vis.dangerous {
				id, ok = cookie.ParseUUID(string(d.Value))
			} else if ok {
				ok = copy(id[:], d.Value) == 16 && len(d.Value) == 16
			}
			if !ok {
				fail("visitor cookie line %q does not verify to an ID", line)
				continue
			}
			if hasLine && id != lineID {
				fail("two visitor cookie lines with different IDs")
			}
			lineID, hasLine = id, true
		}
		switch {
		case hasKept && hasLine && lineID != kept:
			fail("a valid visitor cookie holds %s, but the response sets %s", mID(vis, kept), mID(vis, lineID))
		case hasKept:
			vidText = mID(vis, kept)
		case hasLine:
			vidText = mID(vis, lineID)
			if visSpec.unwrap {
				fail("unwrap issued a visitor ID")
			}
			if out.err == nil && !mainMd.consentIn(visSpec, out.forwarded) && slices.Contains(out.ran, visSpec) {
				fail("a visitor ID was issued without consent (GPC %v, forwarded %q)", x.gpc, out.forwarded)
			}
		}
	}

	consentMain := func(s *mSpec) bool { return mainMd.consentIn(s, out.forwarded) }
	// checkUpstream holds what one upstream reads to the model; v is the visitor of the
	// policies that ran before it.
	checkUpstream := func(where string, h http.Header, md *mModel, v *mVisitor, consent func(*mSpec) bool, liveness bool) {
		vid := ""
		if v != nil {
			vid = vidText
		}
		cookieLines := h["Cookie"]
		if len(cookieLines) > 1 {
			fail("%s: %d Cookie lines", where, len(cookieLines))
		}
		forwarded := strings.Join(cookieLines, "; ")
		views = append(views, mView{where: where, forwarded: forwarded, vid: vid, md: md, consent: consent})
		bad = append(bad, md.checkForwarded(where, forwarded, vid, consent, liveness && x.budgetSafe())...)
		for _, p := range readers {
			bad = append(bad, md.checkReader(where, p, forwarded, vid, consent)...)
		}
		// The visitor header: the module's alone, and the ID it knows.
		if v != nil && v.header != "" {
			norm := normalizeHeaderNameModel(v.header)
			var vals []string
			for k, vs := range h {
				if normalizeHeaderNameModel(k) == norm {
					vals = append(vals, vs...)
				}
			}
			if len(vals) > 1 || len(vals) == 1 && vals[0] != vid {
				fail("%s: visitor header %q; the model's ID is %q", where, vals, vid)
			}
		}
		// A valid visitor cookie keeps its ID.
		if v != nil && hasKept && x.budgetSafe() {
			want := mID(v, kept)
			if v.header != "" && h.Get(v.header) != want {
				fail("%s: a valid visitor cookie holds %s; the visitor header is %q", where, want, h.Get(v.header))
			}
			if !v.strip && !slices.Contains(mSplitHeader(forwarded), [2]string{v.name, want}) {
				fail("%s: a valid visitor cookie holds %s; the Cookie header is %q", where, want, forwarded)
			}
		}
		for _, s := range md.specs {
			if s.flask == nil || s.flask.prefix == "" {
				continue
			}
			want := md.flaskHeaders(s, forwarded)
			norm := normalizeHeaderNameModel(s.flask.prefix)
			for k, vs := range h {
				if !strings.HasPrefix(normalizeHeaderNameModel(k), norm) {
					continue
				}
				if w, ok := want[k]; !ok || len(vs) != 1 || vs[0] != w {
					fail("%s: Flask header %s: %q (want %q, present %v)", where, k, vs, w, ok)
				}
			}
			if liveness && x.budgetSafe() {
				for k, w := range want {
					if vs := h[k]; len(vs) != 1 || vs[0] != w {
						fail("%s: Flask header %s: %q, want %q", where, k, vs, w)
					}
				}
			}
		}
		for _, tok := range h.Values("Connection") {
			for t := range strings.SplitSeq(tok, ",") {
				t = normalizeHeaderNameModel(strings.TrimSpace(t))
				if t == "cookie" || v != nil && v.header != "" && t == normalizeHeaderNameModel(v.header) {
					fail("%s: Connection names %q", where, t)
				}
			}
		}
	}
	firstVisitor := func(specs []*mSpec) *mVisitor {
		for _, s := range specs {
			if s.visitor != nil {
				return s.visitor
			}
		}
		return nil
	}
	if out.upstream != nil {
		checkUpstream("upstream", out.upstream, mainMd, firstVisitor(out.ran), consentMain, true)
	}
	if out.errHeader != nil {
		errMd := newModel(all, x.cookies, x.gpc)
		forwarded := strings.Join(out.errHeader["Cookie"], "; ")
		checkUpstream("error route upstream", out.errHeader, errMd, firstVisitor(all), func(s *mSpec) bool { return errMd.consentIn(s, forwarded) }, false)
	}
	if out.err != nil && out.err == ErrInvalidCookie && !md.anyInvalid() {
		fail("rejected (%v) with no invalid managed cookie", out.err)
	}

	// What the client receives.
	consentFor := func(s *mSpec) bool {
		if slices.Contains(out.ran, s) {
			return mainMd.consentIn(s, out.forwarded)
		}
		if out.errHeader != nil {
			return md.consentIn(s, strings.Join(out.errHeader["Cookie"], "; "))
		}
		return false
	}
	upstreamLines := slices.Clone(x.upstream)
	if out.err != nil || x.upstreamFails {
		upstreamLines = nil
	}
	if out.errHeader != nil {
		upstreamLines = append(upstreamLines, x.errLines...)
	}
	bad = append(bad, md.checkResponse(out.final, upstreamLines, vis, consentFor)...)
	if out.upstream != nil && !x.upstreamFails && x.budgetSafe() {
		bad = append(bad, md.responseLiveness(out.final, x.upstream, consentFor)...)
	}
	return bad, views
}

func normalizeHeaderNameModel(s string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s))
}

// anyInvalid reports whether the client sent a managed cookie (or a look-alike of one) that
// does not verify: the only reason a policy may refuse a request.
func (md *mModel) anyInvalid() bool {
	for _, p := range md.pairs {
		if !p.ok {
			continue
		}
		for _, h := range mHidden(p.name + "=" + p.value) {
			if len(md.readsAs(h)) > 0 {
				return true // a managed name hidden in the pair
			}
		}
		r, chunk := md.fromBrowser(p.name)
		if r == nil {
			if len(md.readsAs(p.name)) > 0 || md.rule(p.name) != nil && md.rule(p.name).prefix != "" {
				return true // a look-alike, or an unprefixed copy
			}
			continue
		}
		if chunk > 0 {
			if _, ok := md.verified(r); !ok {
				return true // pieces of a split value that does not verify
			}
			continue
		}
		if p.value == "" || p.value == `""` {
			continue
		}
		switch r.kind {
		case mFlaskK:
			if _, ok := mFlaskValid(r, p.value); !ok {
				return true
			}
		case mVisitorK:
			if _, err := r.codec.AppendDecodeAt(nil, r.app, p.value, mNow); err != nil {
				return true
			}
		case mSign, mEncrypt, mFormatK:
			if _, ok := md.decode(r, p.value); !ok && !(r.adoptable && !r.codec.IsEncoded(p.value)) {
				return true
			}
		}
	}
	return false
}

// mHidden lists the names a parser splitting pairs at any byte that is no cookie octet could
// find in a pair, other than its own.
func mHidden(part string) []string {
	octet := func(c byte) bool {
		return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\' && c != '='
	}
	var out []string
	for i := 1; i < len(part); i++ {
		if part[i] != '=' {
			continue
		}
		j := i
		for j > 0 && octet(part[j-1]) {
			j--
		}
		if j > 0 && j < i {
			out = append(out, part[j:i])
		}
	}
	return out
}

// checkForwarded holds the forwarded Cookie header, as the engine writes it, to the model:
// every pair that reads as a managed name is that name, once, with an allowed value; chunks
// never pass; every other pair is one the client sent. With liveness, the valid and adopted
// values that nothing holds back are there.
func (md *mModel) checkForwarded(where, forwarded, vid string, consent func(*mSpec) bool, liveness bool) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, where+": "+fmt.Sprintf(format, args...)) }
	count := map[string]int{}
	pairs := mSplitHeader(forwarded)
	for _, p := range pairs {
		n, v := p[0], p[1]
		if r, i := md.fromBrowser(n); r != nil && i > 0 {
			fail("chunk %s=%.40q forwarded", n, v)
		}
		ms := md.readsAs(n)
		for _, m := range ms {
			if n != m {
				fail("look-alike %q of %q forwarded", n, m)
				continue
			}
			vals, multi := md.allowed(m, vid, consent)
			if !slices.Contains(vals, v) {
				fail("%s=%.60q forwarded; the model allows %.60q", n, v, vals)
			}
			if count[m]++; count[m] > 1 && !multi {
				fail("%s forwarded %d times", m, count[m])
			}
		}
		if len(ms) == 0 {
			r := md.rule(n)
			if r != nil && r.consent != nil && !consent(r.consent) {
				fail("%s=%.40q forwarded without consent", n, v)
			}
			if !slices.ContainsFunc(md.pairs, func(c mPair) bool { return c.ok && c.name == n && c.value == v }) {
				fail("%s=%.60q forwarded, but the client sent no such pair", n, v)
			}
		}
	}
	if !liveness {
		return bad
	}
	has := func(n, v string) bool { return slices.Contains(pairs, [2]string{n, v}) }
	for _, name := range md.appNames() {
		r := md.rule(name)
		if !r.encoded() || r.consent != nil {
			continue
		}
		if plain, ok := md.verified(r); ok {
			if !has(name, plain) {
				fail("the valid %s=%.60q is not forwarded", name, plain)
			}
		} else if plain, ok := md.adopted(r); ok && mInnocent(plain) && !mHeadLike(plain) {
			if !has(name, plain) {
				fail("the adopted %s=%.60q is not forwarded", name, plain)
			}
		}
	}
	// Plain pairs of plain names pass.
	for _, p := range md.pairs {
		if r, _ := md.fromBrowser(p.name); r == nil && p.ok && mInnocent(p.name) && mInnocent(p.value) && len(md.readsAs(p.name)) == 0 && md.rule(p.name) == nil {
			if !has(p.name, p.value) {
				fail("the innocent pair %s=%q is not forwarded", p.name, p.value)
			}
		}
	}
	return bad
}

// mInnocent: letters, digits, '_' and '-' only.
func mInnocent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func mHeadLike(v string) bool { return len(v) > 1 && v[1] == '*' }

// appNames lists the app names the client's pairs and the vocabulary can stand for.
func (md *mModel) appNames() []string {
	var out []string
	add := func(n string) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	for _, n := range mVocabulary {
		add(n)
	}
	for _, p := range md.pairs {
		if r, _ := md.fromBrowser(p.name); r != nil {
			add(r.app)
		}
	}
	return out
}

// checkReader holds what one parser reads of the forwarded header to the model: a name it
// reads as a managed one is read exactly as that parser reads the pair name=allowed.
func (md *mModel) checkReader(where string, rd reader, forwarded, vid string, consent func(*mSpec) bool) []string {
	var bad []string
	count := map[string]int{}
	for _, p := range rd.read(forwarded) {
		for _, m := range md.readsAs(p[0]) {
			vals, multi := md.allowed(m, vid, consent)
			ok := false
			for _, a := range vals {
				if slices.Contains(rd.read(m+"="+a), p) {
					ok = true
				}
			}
			if !ok {
				bad = append(bad, fmt.Sprintf("%s: %s reads %s=%.60q (as %s); the model allows %.60q", where, rd.name, p[0], p[1], m, vals))
			}
			if count[m]++; count[m] > 1 && !multi {
				bad = append(bad, fmt.Sprintf("%s: %s reads %s %d times", where, rd.name, m, count[m]))
			}
		}
	}
	return bad
}

// flaskHeaders are the headers the upstream must read for the Flask session it reads.
func (md *mModel) flaskHeaders(s *mSpec, forwarded string) map[string]string {
	want := map[string]string{}
	r := md.rule(s.flask.name)
	if r.kind != mFlaskK || r.spec.flask != s.flask {
		return want
	}
	for _, p := range mSplitHeader(forwarded) {
		if p[0] != s.flask.name {
			continue
		}
		fields, ok := mFlaskValid(r, p[1])
		if !ok {
			break
		}
		for _, k := range s.flask.expose {
			v, ok := fields[k]
			if !ok || strings.ContainsFunc(v, func(c rune) bool { return c < 0x20 && c != '\t' || c == 0x7f }) {
				continue
			}
			want[http.CanonicalHeaderKey(s.flask.prefix+strings.ReplaceAll(k, "_", "-"))] = v
		}
		break
	}
	return want
}

// checkResponse holds the Set-Cookie lines the client receives to the model: a line of a
// managed cookie (as the browser holds it) is a deletion, or verifies to a value the upstream
// set (or an adopted value being upgraded) and expires with it; nothing that needs consent is
// stored without it; the visitor cookie is the module's.
func (md *mModel) checkResponse(final, upstream []string, vis *mVisitor, consent func(*mSpec) bool) []string {
	var bad []string
	fail := func(format string, args ...any) { bad = append(bad, "client: "+fmt.Sprintf(format, args...)) }
	set := map[string][]mSetCookie{} // the upstream's lines by app name
	for _, l := range upstream {
		sc := mParseSetCookie(l, mNow)
		if sc.ok {
			set[sc.name] = append(set[sc.name], sc)
		}
	}
	for k, line := range final {
		sc := mParseSetCookie(line, mNow)
		if !sc.ok {
			continue
		}
		r, chunk := md.fromBrowser(sc.name)
		if r == nil {
			continue
		}
		if !sc.deletion && r.consent != nil && !consent(r.consent) {
			fail("%q stored without consent", line)
		}
		if sc.deletion || chunk > 0 {
			continue
		}
		switch {
		case r.kind == mVisitorK:
			if slices.Contains(upstream, line) {
				fail("the upstream's visitor cookie line %q leaves", line)
			}
		case r.kind == mFlaskK:
			if !slices.ContainsFunc(append(set[r.app], set[sc.name]...), func(u mSetCookie) bool { return u.value == sc.value }) {
				fail("Flask session line %q is not the app's", line)
			}
		case r.encoded() && r.unwrap:
			if !slices.ContainsFunc(append(set[r.app], set[sc.name]...), func(u mSetCookie) bool { return u.value == sc.value }) {
				fail("unwrap: line %q is not the upstream's", line)
			}
		case r.encoded():
			value := sc.value
			codec := r.codec
			if r.split > 0 && mHeadLike(value) {
				n := int(value[0] - '0')
				value = value[2:]
				for i := 1; i < n; i++ {
					found := false
					for _, l2 := range final[k+1:] {
						if c := mParseSetCookie(l2, mNow); c.ok && c.name == r.browser()+"__"+strconv.Itoa(i) && !c.deletion {
							value += c.value
							found = true
							break
						}
					}
					if !found {
						fail("split line %q lacks chunk %d", line, i)
					}
				}
				codec = r.long
			} else if r.long != nil && len(value) > codec.MaxLength() {
				codec = r.long
			}
			d, err := codec.AppendDecodeAt(nil, r.browser(), value, md.signNow)
			if err != nil && sc.name != r.app && slices.ContainsFunc(upstream, func(u string) bool { return u == line }) {
				fail("the upstream's line %.100q, for %s as the browser holds it, leaves as it was", line, r.app)
				continue
			}
			if err != nil {
				fail("line %.100q of managed %s does not verify: %v", line, r.app, err)
				continue
			}
			plain := string(d.Value)
			// The upstream's line it comes from: one with that value, whose expiry the
			// signature does not outlive.
			matched, outlives := false, false
			for _, u := range set[r.app] {
				if u.deletion || u.value != plain {
					continue
				}
				if u.expiry != 0 && r.kind != mFormatK {
					if _, err := codec.AppendDecodeAt(nil, r.browser(), value, u.expiry+1); err == nil {
						outlives = true
						continue
					}
				}
				matched = true
			}
			switch {
			case matched:
			case outlives:
				fail("line %.100q still verifies after the upstream's expiry", line)
			case r.attrs != "" && md.adoptedIs(r, plain):
				// the upgrade of an adopted value
			default:
				fail("line %.100q of %s holds %.60q, which the upstream did not set", line, r.app, plain)
			}
		}
	}
	return bad
}

func (md *mModel) adoptedIs(r *mRule, plain string) bool {
	a, ok := md.adopted(r)
	return ok && a == plain
}

// responseLiveness: an upstream line of a managed cookie that nothing holds back leaves
// encoded, and verifies to the upstream's value.
func (md *mModel) responseLiveness(final, upstream []string, consent func(*mSpec) bool) []string {
	var bad []string
	for _, l := range upstream {
		sc := mParseSetCookie(l, mNow)
		if !sc.ok || sc.deletion || !mSafe(sc.value) || len(sc.value) > 2000 {
			continue
		}
		r := md.rule(sc.name)
		if !r.encoded() || r.unwrap || r.consent != nil || r.kind == mFormatK && !utf8Valid(sc.value) {
			continue
		}
		found := false
		for _, f := range final {
			fc := mParseSetCookie(f, mNow)
			if !fc.ok || fc.name != r.browser() || fc.deletion {
				continue
			}
			if d, err := r.codec.AppendDecodeAt(nil, r.browser(), fc.value, md.signNow); err == nil && string(d.Value) == sc.value {
				found = true
			}
		}
		if !found {
			bad = append(bad, fmt.Sprintf("client: the upstream's %s=%.60q does not leave encoded", sc.name, sc.value))
		}
	}
	return bad
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// A reader is one parser of a Cookie header: the pairs it reads, in order.
type reader struct {
	name string
	read func(h string) [][2]string
}

// readers are the in-process parsers every exchange goes through: Go's, and one that splits
// pairs at ',' as well as ';' (ASP.NET Core, old Rack).
var readers = []reader{
	{"net/http", func(h string) [][2]string {
		var out [][2]string
		for _, c := range (&http.Request{Header: http.Header{"Cookie": {h}}}).Cookies() {
			out = append(out, [2]string{c.Name, c.Value})
		}
		return out
	}},
	{"comma-splitting", func(h string) [][2]string {
		var out [][2]string
		for _, p := range strings.FieldsFunc(h, func(c rune) bool { return c == ';' || c == ',' }) {
			n, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.TrimSpace(n) != "" {
				out = append(out, [2]string{strings.TrimSpace(n), strings.TrimSpace(v)})
			}
		}
		return out
	}},
}
