// The model's generators (paths of policies over every feature, adversarial exchanges) and
// its driver, which runs the engine as the module does; TestModel and FuzzModel compare the
// two (see model_test.go).

package engine

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/itsdangerous"
	"github.com/signedcookies/caddy-signedcookies/internal/nginxuid"
)

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// mVocabulary: the app names the generated configurations manage (or not) and the generated
// exchanges use. Globs cover sess_a and sess_b.
var mVocabulary = []string{"session", "sess_a", "sess_b", "enc", "cart", "prefs", "big", "theme", "ad", "cc", "fs", "vid", "__Host-vid", "uid", "a", "x", "lang"}

// Keys: two rings (the second rotated: it signs with k1 and still verifies k0), the
// attacker's, and itsdangerous / Flask key lists.
var mKeys = sync.OnceValue(func() (k struct {
	rings    [3]*cookie.KeyRing
	format   [2][][]byte
	attacker [][]byte
}) {
	secret := func(l string) []byte { s := sha256.Sum256([]byte("model " + l)); return s[:] }
	var err error
	for i, labels := range [][]string{{"k0"}, {"k1", "k0"}, {"attacker"}} {
		var ss [][]byte
		for _, l := range labels {
			ss = append(ss, secret(l))
		}
		if k.rings[i], err = cookie.NewKeyRing(ss...); err != nil {
			panic(err)
		}
	}
	hexKey := func(l string) []byte { return fmt.Appendf(nil, "%x", secret("format "+l)) }
	k.format = [2][][]byte{{hexKey("f0")}, {hexKey("f1"), hexKey("f0")}}
	k.attacker = [][]byte{hexKey("attacker")}
	return k
})

// mCodecs caches codecs (they are immutable and safe for concurrent use): one execution must
// stay cheap.
var mCodecs sync.Map

type mCodecKey struct {
	kind      string // "ring", "format", "flask", "attacker-format", "attacker-flask"
	ring      int
	encrypt   bool
	maxAge    time.Duration
	maxLength int
	salt      string
}

func mCodec(k mCodecKey) Codec {
	if c, ok := mCodecs.Load(k); ok {
		return c.(Codec)
	}
	keys := mKeys()
	var c Codec
	var err error
	switch k.kind {
	case "ring":
		c = cookie.NewCodec(keys.rings[k.ring], cookie.Options{Encrypt: k.encrypt, MaxAge: k.maxAge, MaxLength: k.maxLength})
	case "format":
		c, err = itsdangerous.New(keys.format[k.ring], k.salt, k.maxAge)
	case "attacker-format":
		c, err = itsdangerous.New(keys.attacker, k.salt, k.maxAge)
	case "flask":
		var s *itsdangerous.Session
		s, err = itsdangerous.NewSession(keys.format[k.ring], k.salt, k.maxAge)
		c = mSession{s}
	}
	if err != nil {
		panic(err)
	}
	mCodecs.Store(k, c)
	return c
}

// mSession gives a Flask session verifier the model's one codec shape; it signs nothing (the
// model's Flask sessions come from the same keys through the format codec's JSON).
type mSession struct{ *itsdangerous.Session }

func (mSession) AppendEncodeAt(dst []byte, _ string, _ []byte, _ int64) ([]byte, error) {
	return dst, errors.New("the model signs no Flask session this way")
}
func (mSession) EncodedLen(int) int { return 0 }
func (mSession) Encrypted() bool    { return false }

const mSplitMaxLength = MaxSplitCookies * 4000

// mPath is the handlers one request meets: a main route, and maybe an error route.
type mPath struct {
	specs    []*mSpec
	errRoute *mSpec
}

func (pth *mPath) all() []*mSpec {
	if pth.errRoute == nil {
		return pth.specs
	}
	return append(slices.Clone(pth.specs), pth.errRoute)
}

// config is the engine's configuration of a spec (its codecs made or taken from the cache).
func (s *mSpec) config() Config {
	ring := func(enc bool, long bool) Codec {
		ml := 0
		if long {
			ml = mSplitMaxLength
		}
		return mCodec(mCodecKey{kind: "ring", ring: s.ring, encrypt: enc, maxAge: s.maxAge, maxLength: ml})
	}
	split := slices.ContainsFunc(s.blocks, func(b *mBlock) bool { return b.split > 0 })
	c := Config{Sign: s.sign, Encrypt: s.encrypt, MaxAge: s.maxAge, Reject: s.reject, Unwrap: s.unwrap,
		KeyID: "ring" + strconv.Itoa(s.ring), Name: s.label}
	if len(s.sign) > 0 {
		s.signC = ring(false, false)
		c.SignCodec = s.signC
		if split {
			s.longSignC = ring(false, true)
			c.LongSignCodec = s.longSignC
		}
	}
	if len(s.encrypt) > 0 {
		s.encC = ring(true, false)
		c.EncryptCodec = s.encC
		if split {
			s.longEncC = ring(true, true)
			c.LongEncryptCodec = s.longEncC
		}
	}
	for _, f := range s.formatted {
		f.codec = mCodec(mCodecKey{kind: "format", ring: f.keys, salt: f.salt})
		c.Formatted = append(c.Formatted, FormattedRule{Names: f.names, Codec: f.codec, KeyID: fmt.Sprintf("format %d %q", f.keys, f.salt)})
	}
	if f := s.flask; f != nil {
		f.codec = mCodec(mCodecKey{kind: "flask", ring: f.keys, salt: "cookie-session", maxAge: 31 * 24 * time.Hour})
		c.Flask = &Flask{Name: f.name, Codec: f.codec, Expose: f.expose, HeaderPrefix: f.prefix, OnInvalid: f.onInvalid,
			KeyID: "flask" + strconv.Itoa(f.keys)}
	}
	if v := s.visitor; v != nil {
		if v.dangerous {
			v.codec = mCodec(mCodecKey{kind: "format", ring: v.ring, salt: "visitor", maxAge: 400 * 24 * time.Hour})
		} else {
			v.codec = mCodec(mCodecKey{kind: "ring", ring: v.ring, encrypt: v.encrypt, maxAge: 400 * 24 * time.Hour})
		}
		c.Visitor = &Visitor{Name: v.name, Codec: v.codec, MaxAge: 400 * 24 * time.Hour, Refresh: v.refresh, Path: "/",
			Header: v.header, Strip: v.strip, HTTPOnly: true, HonorGPC: v.gpc, Consent: v.consent, TextID: v.dangerous,
			Fingerprint: v.String()}
		if v.nginx != "" {
			c.Visitor.AdoptNginx, c.Visitor.AdoptNginxUntil = v.nginx, time.Unix(v.nginxUntil, 0)
		}
		if v.idNginx {
			c.Visitor.IDFormat = IDNginx
		}
	}
	for _, b := range s.blocks {
		c.Cookies = append(c.Cookies, CookieRule{Names: b.names, Prefix: b.prefix, Split: b.split > 0, SplitCookies: b.split,
			NeedsConsent: b.consent, Secure: b.secure})
	}
	for _, a := range s.adopt {
		c.Adopt = append(c.Adopt, Adoption{Names: a.names, Until: time.Unix(a.until, 0), Attributes: a.attrs})
	}
	return c
}

func (v *mVisitor) String() string {
	return fmt.Sprintf("track %s {ring %d encrypt %v itsdangerous %v header %q strip %v honor_gpc %v consent %q adopt_nginx %q %d id_nginx %v refresh %v}",
		v.name, v.ring, v.encrypt, v.dangerous, v.header, v.strip, v.gpc, v.consent, v.nginx, v.nginxUntil-mNow, v.idNginx, v.refresh)
}

func (s *mSpec) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ring %d max_age %v", s.label, s.ring, s.maxAge)
	if s.visitor != nil {
		fmt.Fprintf(&b, "; %s", s.visitor)
	}
	if len(s.sign) > 0 {
		fmt.Fprintf(&b, "; sign %s", strings.Join(s.sign, " "))
	}
	if len(s.encrypt) > 0 {
		fmt.Fprintf(&b, "; encrypt %s", strings.Join(s.encrypt, " "))
	}
	for _, f := range s.formatted {
		fmt.Fprintf(&b, "; sign %s {itsdangerous keys %d salt %q}", strings.Join(f.names, " "), f.keys, f.salt)
	}
	if f := s.flask; f != nil {
		fmt.Fprintf(&b, "; flask_session %s {keys %d expose %v header_prefix %q on_invalid %d}", f.name, f.keys, f.expose, f.prefix, f.onInvalid)
	}
	for _, bl := range s.blocks {
		secure := "-"
		if bl.secure != nil {
			secure = strconv.FormatBool(*bl.secure)
		}
		fmt.Fprintf(&b, "; cookie %s {prefix %q split %d needs_consent %v secure %s}", strings.Join(bl.names, " "), bl.prefix, bl.split, bl.consent, secure)
	}
	for _, a := range s.adopt {
		fmt.Fprintf(&b, "; adopt %s until now%+d {%q}", strings.Join(a.names, " "), a.until-mNow, a.attrs)
	}
	if s.reject {
		b.WriteString("; on_invalid reject")
	}
	if s.unwrap {
		b.WriteString("; unwrap")
	}
	return b.String()
}

func (pth *mPath) String() string {
	var b strings.Builder
	for _, s := range pth.specs {
		fmt.Fprintf(&b, "  %s\n", s)
	}
	if pth.errRoute != nil {
		fmt.Fprintf(&b, "  error route %s\n", pth.errRoute)
	}
	return b.String()
}

// mGen makes choices: from the fuzzer's bytes while they last, then from a generator seeded
// with them (or with a test's seed).
type mGen struct {
	data []byte
	rnd  *rand.Rand
}

func newGen(data []byte, seed uint64) *mGen {
	h := sha256.Sum256(data)
	return &mGen{data: data, rnd: rand.New(rand.NewPCG(seed, binary.LittleEndian.Uint64(h[:])))}
}

func (g *mGen) intn(n int) int {
	if n <= 1 {
		return 0
	}
	if len(g.data) > 0 {
		c := int(g.data[0])
		g.data = g.data[1:]
		return c % n
	}
	return g.rnd.IntN(n)
}

func (g *mGen) chance(in int) bool { return g.intn(in) == 0 }

func pick[T any](g *mGen, xs ...T) T { return xs[g.intn(len(xs))] }

// path generates one to three handlers on the main route and maybe one on an error route.
// Later handlers are often copies of the first (one snippet imported twice) or manage other
// names, so that many paths compose.
func (g *mGen) path() *mPath {
	pth := &mPath{}
	base := g.spec("h1", nil)
	pth.specs = append(pth.specs, base)
	for i := g.intn(3); i > 0; i-- {
		pth.specs = append(pth.specs, g.spec("h"+strconv.Itoa(len(pth.specs)+1), base))
	}
	if g.chance(3) {
		pth.errRoute = g.spec("errors", base)
	}
	return pth
}

// spec generates a handler; like, when given, is the first handler of the path.
func (g *mGen) spec(label string, like *mSpec) *mSpec {
	if like != nil && !g.chance(3) {
		cp := *like
		cp.label = label
		if g.chance(2) {
			return &cp // the same handler again (one snippet imported twice)
		}
		// The same handler without some names: what is left is managed alike.
		for _, name := range []string{"session", "sess_*", "enc", "cart", "prefs", "big", "theme", "ad", "cc", "fs"} {
			if !g.chance(2) {
				continue
			}
			keep := func(n string) bool { return n != name }
			cp.sign = slices.DeleteFunc(slices.Clone(cp.sign), func(n string) bool { return !keep(n) })
			cp.encrypt = slices.DeleteFunc(slices.Clone(cp.encrypt), func(n string) bool { return !keep(n) })
			var fs []*mFormat
			for _, f := range cp.formatted {
				if names := slices.DeleteFunc(slices.Clone(f.names), func(n string) bool { return !keep(n) }); len(names) > 0 {
					nf := *f
					nf.names = names
					fs = append(fs, &nf)
				}
			}
			cp.formatted = fs
			if cp.flask != nil && cp.flask.name == name {
				cp.flask = nil
			}
			cp.blocks = slices.DeleteFunc(slices.Clone(cp.blocks), func(b *mBlock) bool { return b.names[0] == name })
			cp.adopt = slices.DeleteFunc(slices.Clone(cp.adopt), func(a *mAdopt) bool { return a.names[0] == name })
		}
		if g.chance(4) {
			cp.visitor = nil
		}
		return &cp
	}
	s := &mSpec{label: label, ring: g.intn(2), maxAge: pick(g, time.Hour, 400*24*time.Hour)}
	if like != nil && !g.chance(4) {
		s.ring, s.maxAge = like.ring, like.maxAge
	}
	if g.chance(2) || like != nil && like.visitor != nil && g.chance(2) {
		if like != nil && like.visitor != nil && !g.chance(4) {
			s.visitor = like.visitor
		} else {
			s.visitor = g.visitor(s.ring)
		}
	}
	var formatted []string
	for _, name := range []string{"session", "sess_*", "enc", "cart", "prefs", "big", "cc", "fs"} {
		switch g.intn(7) {
		case 0, 1:
			s.sign = append(s.sign, name)
		case 2:
			s.encrypt = append(s.encrypt, name)
		case 3:
			if name != "big" && name != "sess_*" {
				formatted = append(formatted, name)
			}
		case 4:
			if s.flask == nil && (name == "session" || name == "fs") {
				s.flask = &mFlask{name: name, keys: g.intn(2), expose: []string{"user_id", "role"},
					prefix: pick(g, "", "X-Flask-Session-"), onInvalid: pick(g, FlaskDrop, FlaskDrop, FlaskReject, FlaskPass)}
			}
		}
	}
	if len(formatted) > 0 {
		if len(formatted) > 1 && g.chance(2) {
			s.formatted = append(s.formatted, &mFormat{names: formatted[1:], keys: g.intn(2), salt: "other"})
			formatted = formatted[:1]
		}
		s.formatted = append(s.formatted, &mFormat{names: formatted, keys: g.intn(2), salt: pick(g, "itsdangerous", "prefs")})
	}
	// Cookie rules and adoptions as New accepts them, but for one path in twenty.
	careless := g.chance(20)
	signed := func(n string) bool { return slices.Contains(s.sign, n) || slices.Contains(s.encrypt, n) }
	gates := s.visitor != nil && (s.visitor.consent != "" || s.visitor.gpc)
	prefixed := map[string]bool{}
	for _, name := range []string{"session", "sess_*", "enc", "cart", "big", "theme", "ad", "cc"} {
		if !g.chance(3) && name != "big" && name != "theme" && name != "ad" {
			continue
		}
		b := &mBlock{names: []string{name}}
		if g.chance(3) {
			b.prefix = pick(g, "__Host-", "__Secure-")
			prefixed[name] = true
		}
		if (name == "big" || g.chance(6)) && (careless || signed(name) && name != "sess_*") {
			b.split = pick(g, 0, 2, 3, 4)
		}
		if (name == "ad" || g.chance(5)) && (careless || gates && name != "cc") {
			b.consent = true
		}
		if g.chance(3) {
			on := g.chance(2)
			b.secure = &on
		}
		if b.prefix != "" && b.secure != nil && !*b.secure {
			b.secure = nil
		}
		s.blocks = append(s.blocks, b)
	}
	for _, name := range []string{"session", "sess_*", "enc", "cart", "big"} {
		if g.chance(4) && (careless || signed(name) && !prefixed[name]) {
			a := &mAdopt{names: []string{name}, until: mNow + pick[int64](g, 3600, -1, 3600)}
			if g.chance(2) {
				a.attrs = pick(g, "Path=/; HttpOnly; Max-Age=600", "Path=/")
			}
			s.adopt = append(s.adopt, a)
		}
	}
	s.reject = g.chance(4)
	s.unwrap = g.chance(8)
	return s
}

func (g *mGen) visitor(ring int) *mVisitor {
	v := &mVisitor{name: pick(g, "vid", "vid", "__Host-vid"), ring: ring, encrypt: g.chance(3), dangerous: g.chance(5),
		header: pick(g, "X-Visitor-Id", "X-Visitor-Id", ""), strip: g.chance(4), gpc: g.chance(2),
		consent: pick(g, "", "", "cc", "cc=yes"), refresh: pick(g, time.Hour, 24*time.Hour), idNginx: g.chance(4)}
	if v.dangerous {
		v.ring = g.intn(2)
	}
	if g.chance(3) {
		v.nginx, v.nginxUntil = "uid", mNow+pick[int64](g, 3600, -1)
	}
	return v
}

// mCompiled caches the paths the fuzzer compiled, by the two bytes that choose them: its
// mutations mostly change the exchange, and compiling costs most of an execution.
var mCompiled sync.Map // uint16 → mCompiledPath

type mCompiledPath struct {
	pols   []*Policy
	errPol *Policy
	why    string
}

// compile builds the policies and checks that they compose as the module's walk would have;
// why says "refused" or "incompatible" when New or Compose refuses.
func (pth *mPath) compile() (pols []*Policy, errPol *Policy, why string) {
	for _, s := range pth.all() {
		p, err := New(s.config())
		if err != nil {
			return nil, nil, "refused"
		}
		pols = append(pols, p)
	}
	for i := range pols {
		for j := range i {
			if Compose(pols[j], pols[i]) != nil {
				return nil, nil, "incompatible"
			}
		}
	}
	if pth.errRoute != nil {
		errPol, pols = pols[len(pols)-1], pols[:len(pols)-1]
	}
	return pols, errPol, ""
}

// mExchange is one request and response through a path.
type mExchange struct {
	cookies       []string
	gpc, https    bool
	headers       [][2]string // client copies of controlled headers, Connection
	upstream      []string    // the upstream's Set-Cookie lines
	upstreamFails bool        // it fails instead: the error route answers
	errLines      []string    // the error route's upstream's Set-Cookie lines
	written       bool        // the upstream writes its header (else the handler returns with nothing written)
	skew          int64       // the signing clock runs this far ahead of the request's time
	flood         bool
}

func (x *mExchange) String() string {
	var b strings.Builder
	for _, c := range x.cookies {
		fmt.Fprintf(&b, "  Cookie: %q\n", c)
	}
	fmt.Fprintf(&b, "  gpc %v https %v headers %q written %v skew %d upstream fails %v\n", x.gpc, x.https, x.headers, x.written, x.skew, x.upstreamFails)
	for _, l := range x.upstream {
		fmt.Fprintf(&b, "  upstream Set-Cookie: %.200q\n", l)
	}
	for _, l := range x.errLines {
		fmt.Fprintf(&b, "  error route Set-Cookie: %.200q\n", l)
	}
	return b.String()
}

// budgetSafe: even if every pair cost a full ring of HMACs, the request stays in budget, so
// every copy is read.
func (x *mExchange) budgetSafe() bool {
	n := 0
	for _, c := range x.cookies {
		n += strings.Count(c, ";") + 1
	}
	return n*2 <= maxMACs && !x.flood
}

// run drives the engine as the module does: each handler's Request in order, the upstream,
// the response's rewrite innermost first, then the error route if a handler refused the
// request or the upstream failed.
func (x *mExchange) run(pth *mPath, pols []*Policy, errPol *Policy) *mOutcome {
	out := &mOutcome{}
	r := &http.Request{Method: "GET", URL: &url.URL{Path: "/"}, Header: http.Header{}, Body: http.NoBody}
	if len(x.cookies) > 0 {
		r.Header["Cookie"] = slices.Clone(x.cookies)
	}
	if x.gpc {
		r.Header.Set("Sec-GPC", "1")
	}
	if x.https {
		r.TLS = &tls.ConnectionState{}
	}
	for _, h := range x.headers {
		r.Header[h[0]] = append(r.Header[h[0]], h[1])
	}
	clock := func() int64 { return mNow + x.skew }
	var f Flow
	var passes []*Pass
	defer func() {
		for _, ps := range passes {
			ps.Release()
		}
	}()
	for i, p := range pols {
		ps, err := p.Request(&f, r, mNow, clock)
		passes = append(passes, ps)
		out.ran = append(out.ran, pth.specs[i])
		if err != nil {
			out.err = err
			break
		}
	}
	out.forwarded = strings.Join(r.Header["Cookie"], "; ")
	hdr := http.Header{}
	if out.err == nil {
		out.upstream = r.Header.Clone()
		if !x.upstreamFails {
			hdr["Set-Cookie"] = slices.Clone(x.upstream)
			if x.written {
				for i := len(passes) - 1; i >= 0; i-- {
					passes[i].Finalize(hdr)
				}
			}
		}
	}
	for i := len(passes) - 1; i >= 0; i-- {
		passes[i].Done(hdr)
	}
	if errPol != nil && (out.err != nil || x.upstreamFails) {
		out.errRan, out.errSpecs = true, []*mSpec{pth.errRoute}
		ps, err := errPol.Request(&f, r, mNow, clock)
		passes = append(passes, ps)
		out.errErr = err
		if err == nil {
			out.errHeader = r.Header.Clone()
			hdr["Set-Cookie"] = append(hdr["Set-Cookie"], x.errLines...)
		}
		ps.Done(hdr)
	}
	out.final = slices.Clone(hdr["Set-Cookie"])
	return out
}

// Values.

var mPlains = []string{"alice", "bob", "a b", "a,b", "x=y", "dark session=admin", `a"b=c`, `{"k":"v"}`, "%41", "", `a\b`, "1,sess_a=x", "cc=yes", "yes", "2*x"}

// exchange generates a request and a response for the path.
func (g *mGen) exchange(pth *mPath) *mExchange {
	x := &mExchange{gpc: g.chance(3), https: g.chance(2), written: g.chance(2), skew: pick[int64](g, 0, 0, 5)}
	md := newModel(pth.all(), nil, false)
	var pairs []string
	for n := g.intn(12); n > 0; n-- {
		pairs = append(pairs, g.pairs(md)...)
	}
	if g.chance(40) {
		x.flood = true
		target := pick(g, "session", "vid", "enc")
		for i := 0; i < 70; i++ {
			pairs = slices.Insert(pairs, 0, target+"="+g.value(md, md.rule(target), target, "forged"))
		}
	}
	switch {
	case len(pairs) == 0:
	case g.chance(4): // two Cookie lines
		k := g.intn(len(pairs))
		x.cookies = []string{strings.Join(pairs[:k], "; "), strings.Join(pairs[k:], "; ")}
		if x.cookies[0] == "" {
			x.cookies = x.cookies[1:]
		}
	default:
		x.cookies = []string{strings.Join(pairs, pick(g, "; ", "; ", ";", " ;  "))}
	}
	for n := g.intn(3); n > 0; n-- {
		x.headers = append(x.headers, pick(g,
			[2]string{"X-Visitor-Id", "forged"}, [2]string{"X-Visitor_Id", "forged"}, [2]string{"x-visitor.id", "forged"},
			[2]string{"X-Flask-Session-User-Id", "0"}, [2]string{"X_Flask_Session_Role", "admin"},
			[2]string{"Connection", "X-Visitor-Id, Cookie"}))
	}
	for n := g.intn(5); n > 0; n-- {
		x.upstream = append(x.upstream, g.setCookie(md))
	}
	x.upstreamFails = pth.errRoute != nil && g.chance(3)
	for n := g.intn(3); n > 0 && pth.errRoute != nil; n-- {
		x.errLines = append(x.errLines, g.setCookie(md))
	}
	return x
}

// pairs generates one pair (or a split value's pieces) of the Cookie header.
func (g *mGen) pairs(md *mModel) []string {
	target := pick(g, mVocabulary...)
	r := md.rule(target)
	browser := target
	if r != nil {
		browser = r.browser()
	}
	name := browser
	switch g.intn(14) {
	case 0:
		name = strings.ToUpper(name[:1]) + name[1:]
	case 1:
		name = strings.ToUpper(name)
	case 2:
		if len(name) > 1 {
			name = name[:1] + "%" + fmt.Sprintf("%02x", name[1]) + name[2:]
		}
	case 3:
		name = pick(g, "\u00a0", " ", "%20", "\t", "%00") + name
	case 4:
		name = pick(g, name+" ", name+"[x]", name+"[]", name+"%5B0%5D", strings.ReplaceAll(name, "_", "."), strings.ReplaceAll(name, "_", " "), strings.ReplaceAll(name, "_", "["), strings.ReplaceAll(name, "_", "+"))
	case 5:
		name = target // unprefixed, or another prefix
		if r != nil && r.prefix == "__Host-" && g.chance(2) {
			name = "__Secure-" + target
		}
	case 6:
		if r != nil && r.split > 0 {
			return g.split(md, r)
		}
	case 7: // hidden in another pair's value, for a parser that splits elsewhere
		return []string{pick(g, "x", "lang", "a") + "=" + pick(g, "1,", "a ", `1"`, "1, ", `1\`, "1,,", `"1 `, "1\t", `"a,`) + name + "=" + g.value(md, r, browser, "")}
	}
	return []string{name + "=" + g.value(md, r, browser, "")}
}

// split generates the pieces of a split value (or pieces that do not fit together).
func (g *mGen) split(md *mModel, r *mRule) []string {
	plain := strings.Repeat(pick(g, "abcdefgh", "0123456789"), 500+g.intn(600))
	codec := r.long
	if codec == nil {
		codec = r.codec
	}
	enc, err := codec.AppendEncodeAt(nil, r.browser(), []byte(plain), mNow-10)
	if err != nil {
		return nil
	}
	k := min(r.split, 1+len(enc)/3000)
	if k < 2 {
		k = 2
	}
	size := (len(enc) + k - 1) / k
	var out []string
	for i := 0; i < k; i++ {
		piece := string(enc[i*size : min(len(enc), (i+1)*size)])
		name := r.browser()
		if i == 0 {
			piece = strconv.Itoa(k) + "*" + piece
		} else {
			name += "__" + strconv.Itoa(i)
		}
		out = append(out, name+"="+piece)
	}
	switch g.intn(6) {
	case 0: // a piece missing
		i := 1 + g.intn(len(out)-1)
		out = slices.Delete(out, i, i+1)
	case 1: // pieces swapped
		if len(out) > 2 {
			out[1], out[2] = strings.Replace(out[2], "__2=", "__1=", 1), strings.Replace(out[1], "__1=", "__2=", 1)
		}
	case 2: // a piece tampered
		i := 1 + g.intn(len(out)-1)
		out[i] = out[i][:len(out[i])-3] + "AAA"
	case 3: // a head claiming more pieces than there are
		out[0] = strconv.Itoa(min(8, k+1)) + out[0][1:]
	}
	if g.chance(2) {
		g.rnd.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	}
	return out
}

// value generates a value for a cookie the browser holds as browser, managed by r (nil:
// none); how, when not "", forces the kind of value.
func (g *mGen) value(md *mModel, r *mRule, browser, how string) string {
	if how == "" {
		how = pick(g, "valid", "valid", "valid", "other name", "forged", "expired", "tampered", "truncated", "plain", "plain", "empty", "quoted", "other kind", "old key")
	}
	switch how {
	case "plain":
		return pick(g, mPlains...)
	case "empty":
		return pick(g, "", `""`)
	}
	if r == nil || r.codec == nil || !r.managed() {
		return pick(g, mPlains...)
	}
	switch r.kind {
	case mVisitorK:
		return g.visitorValue(r, browser, how)
	case mFlaskK:
		return g.flaskValue(r, how)
	}
	plain := pick(g, mPlains...)
	if r.kind == mFormatK && g.chance(2) {
		plain = pick(g, "alice", "bob", "a b", "x=y", "dark session=admin")
	}
	codec, name, ts := r.codec, browser, mNow-int64(g.intn(100))
	switch how {
	case "other name":
		name = pick(g, "other", "session", "enc", "sess_b")
	case "forged":
		if r.kind == mFormatK {
			codec = mCodec(mCodecKey{kind: "attacker-format", salt: "itsdangerous"})
		} else {
			codec = mCodec(mCodecKey{kind: "ring", ring: 2, encrypt: r.kind == mEncrypt})
		}
	case "expired":
		ts = mNow - int64(r.spec.maxAge/time.Second) - 100
	case "other kind":
		if r.kind != mFormatK {
			codec = mCodec(mCodecKey{kind: "ring", ring: r.spec.ring, encrypt: r.kind != mEncrypt})
		}
	case "old key":
		if r.kind != mFormatK {
			codec = mCodec(mCodecKey{kind: "ring", ring: 0, encrypt: r.kind == mEncrypt})
		}
	}
	enc, err := codec.AppendEncodeAt(nil, name, []byte(plain), ts)
	if err != nil {
		return plain
	}
	v := string(enc)
	switch how {
	case "tampered":
		i := g.intn(len(v))
		c := byte('A')
		if v[i] == 'A' {
			c = 'B'
		}
		v = v[:i] + string(c) + v[i+1:]
	case "truncated":
		v = v[:g.intn(len(v))]
	case "quoted":
		v = `"` + v + `"`
	}
	return v
}

func (g *mGen) visitorValue(r *mRule, browser, how string) string {
	v := r.spec.visitor
	id := cookie.NewVisitorID()
	payload := id[:]
	if how == "tampered" || how == "truncated" {
		payload = payload[:15] // signed, but no ID
	}
	if v.dangerous {
		payload = []byte(cookie.UUIDString(id[:]))
		if how == "truncated" {
			payload = []byte("not a uuid")
		}
	}
	codec, ts := r.codec, mNow-int64(g.intn(3*24*3600))
	switch how {
	case "forged":
		if v.dangerous {
			codec = mCodec(mCodecKey{kind: "attacker-format", salt: "visitor", maxAge: 400 * 24 * time.Hour})
		} else {
			codec = mCodec(mCodecKey{kind: "ring", ring: 2, encrypt: v.encrypt})
		}
	case "expired":
		ts = mNow - 401*24*3600
	case "old key":
		if !v.dangerous {
			codec = mCodec(mCodecKey{kind: "ring", ring: 0, encrypt: v.encrypt, maxAge: 400 * 24 * time.Hour})
		}
	case "other name":
		browser = "other"
	}
	enc, err := codec.AppendEncodeAt(nil, browser, payload, ts)
	if err != nil {
		return "x"
	}
	if how == "quoted" {
		return `"` + string(enc) + `"`
	}
	return string(enc)
}

// flaskValue is a Flask session cookie (itsdangerous URLSafeTimedSerializer, "hmac" key
// derivation, salt "cookie-session"), as Flask writes an uncompressed one.
func (g *mGen) flaskValue(r *mRule, how string) string {
	keys := mKeys().format[r.spec.flask.keys]
	key := keys[len(keys)-1]
	payload := pick(g, `{"user_id":42,"role":"admin"}`, `{"user_id":"7"}`, `{"role":"a\u0001b"}`, `{"_fresh":true}`)
	ts := mNow - int64(g.intn(1000))
	switch how {
	case "forged":
		key = mKeys().attacker[0]
	case "expired":
		ts = mNow - 32*24*3600
	case "truncated":
		payload = `[1,2]`
	}
	v := mFlaskSign(key, "cookie-session", payload, ts)
	if how == "tampered" {
		v = strings.Replace(v, ".", ".A", 1)
	}
	return v
}

func mFlaskSign(secret []byte, salt, payload string, ts int64) string {
	b64 := base64.RawURLEncoding.EncodeToString
	dk := hmac.New(sha1.New, secret)
	dk.Write([]byte(salt))
	var tb [8]byte
	binary.BigEndian.PutUint64(tb[:], uint64(ts))
	t := tb[:]
	for len(t) > 1 && t[0] == 0 {
		t = t[1:]
	}
	val := b64([]byte(payload)) + "." + b64(t)
	mac := hmac.New(sha1.New, dk.Sum(nil))
	mac.Write([]byte(val))
	return val + "." + b64(mac.Sum(nil))
}

// nginxValue is nginx userid's cookie: an ID in nginx's layout (or one of this module's), or
// garbage.
func (g *mGen) nginxValue() string {
	var id [16]byte
	for i := range id {
		id[i] = byte(g.intn(256))
	}
	id[15] |= 1
	switch g.intn(4) {
	case 0:
		id = cookie.NewVisitorID()
	case 1:
		return "garbage=="
	}
	id[6] = 0x12
	return nginxuid.Encode(id)
}

// setCookie generates one Set-Cookie line of the upstream.
func (g *mGen) setCookie(md *mModel) string {
	name := pick(g, mVocabulary...)
	if r := md.rule(name); r != nil && g.chance(6) {
		name = pick(g, r.browser(), r.browser()+"__1")
	}
	value := pick(g, mPlains...)
	switch g.intn(6) {
	case 0:
		value = strings.Repeat("v", pick(g, 3000, 5000, 9000, 14000))
	case 1:
		value = ""
	}
	line := name + "=" + value
	for n := g.intn(4); n > 0; n-- {
		line += "; " + pick(g, "Path=/", "HttpOnly", "Max-Age=600", "Max-Age=0", "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
			"Expires="+time.Unix(mNow+7200, 0).UTC().Format(http.TimeFormat), "Domain=example.com", "Secure", "SameSite=Lax", "Max-Age=60")
	}
	return line
}

// mStats counts what a run of the model covered.
type mStats struct {
	executions, configs, refused, incompatible, exchanges int
}

// modelOnce generates a path and an exchange from data (and seed) and compares the engine
// with the model; it returns the violations with a reproduction.
func modelOnce(data []byte, seed uint64, st *mStats) (string, bool) {
	exchanges := -1 // from the generator
	if data != nil {
		exchanges = 1 // fuzzing: one execution, one exchange
	}
	st.executions++
	g := newGen(data, seed)
	var pathSeed uint16
	if data != nil {
		// Fuzzing: the first two bytes choose the path, the rest the exchange, so that most
		// mutations keep the path (compiled once, cached) and explore exchanges.
		var b [2]byte
		copy(b[:], data)
		pathSeed = uint16(b[0])<<8 | uint16(b[1])
		g = newGen(nil, uint64(pathSeed))
	}
	pth := g.path()
	var pols []*Policy
	var errPol *Policy
	var why string
	if data != nil {
		g = newGen(data[min(2, len(data)):], 0)
		if c, ok := mCompiled.Load(pathSeed); ok {
			c := c.(mCompiledPath)
			for _, s := range pth.all() {
				s.config() // the codecs, which the model reads
			}
			pols, errPol, why = c.pols, c.errPol, c.why
		} else {
			pols, errPol, why = pth.compile()
			mCompiled.Store(pathSeed, mCompiledPath{pols, errPol, why})
		}
	} else {
		pols, errPol, why = pth.compile()
	}
	switch why {
	case "refused":
		st.refused++
		return "", true
	case "incompatible":
		st.incompatible++
		return "", true
	}
	st.configs++
	if exchanges < 0 {
		exchanges = 2 + g.intn(4)
	}
	for n := exchanges; n > 0; n-- {
		st.exchanges++
		x := g.exchange(pth)
		x.fillNginx(g, pth)
		out := x.run(pth, pols, errPol)
		if bad, _ := mCheck(pth, x, out); len(bad) > 0 {
			return fmt.Sprintf("path:\n%sexchange:\n%sforwarded: %q\nfinal Set-Cookie: %.300q\nviolations:\n  %s",
				pth, x, out.forwarded, out.final, strings.Join(bad, "\n  ")), false
		}
	}
	return "", true
}

// fillNginx gives an nginx userid cookie to some requests of paths that adopt it.
func (x *mExchange) fillNginx(g *mGen, pth *mPath) {
	for _, s := range pth.all() {
		if v := s.visitor; v != nil && v.nginx != "" && g.chance(2) {
			pair := v.nginx + "=" + g.nginxValue()
			if len(x.cookies) == 0 {
				x.cookies = []string{pair}
			} else {
				x.cookies[0] = pair + "; " + x.cookies[0]
			}
			return
		}
	}
}

// TestModel runs the model against the engine over seeded generated paths and exchanges.
// MODEL_SEEDS=N runs N seeds instead of 3000 (CI runs 20,000: deterministic, unlike the
// fuzzer). MODEL_SURVEY=N runs N seeds and lists every kind of violation with its first
// example, instead of stopping at the first (FuzzModel then fails on none).
func TestModel(t *testing.T) {
	n := 3000
	if raceEnabled || testing.Short() {
		n = 300
	}
	if s := os.Getenv("MODEL_SEEDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			t.Fatalf("MODEL_SEEDS=%q: want a number of seeds", s)
		}
	}
	var st mStats
	start := time.Now()
	survey := os.Getenv("MODEL_SURVEY") != ""
	if survey {
		n, _ = strconv.Atoi(os.Getenv("MODEL_SURVEY"))
	}
	classes := map[string]int{}
	for seed := uint64(1); seed <= uint64(n); seed++ {
		if msg, ok := modelOnce(nil, seed, &st); !ok {
			if !survey {
				t.Fatalf("seed %d:\n%s", seed, msg)
			}
			_, v, _ := strings.Cut(msg, "violations:\n  ")
			for _, line := range strings.Split(v, "\n  ") {
				k := regexp.MustCompile(`"[^"]*"|\[[^\]]*\]|[0-9a-f-]{20,}`).ReplaceAllString(line, "…")
				if classes[k]++; classes[k] == 1 {
					t.Logf("seed %d: first of class %q:\n%s", seed, k, msg)
				}
			}
		}
	}
	for k, c := range classes {
		t.Logf("%5d × %s", c, k)
	}
	t.Logf("%d executions: %d paths compiled (%d refused by New, %d incompatible), %d exchanges, %v",
		st.executions, st.configs, st.refused, st.incompatible, st.exchanges, time.Since(start).Round(time.Millisecond))
}

// FuzzModel is TestModel driven by the fuzzer's bytes.
func FuzzModel(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x01\x02\x03", "model", strings.Repeat("\x05", 64)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var st mStats
		if msg, ok := modelOnce(data, 0, &st); !ok && os.Getenv("MODEL_SURVEY") == "" {
			t.Fatal(msg)
		}
	})
}
