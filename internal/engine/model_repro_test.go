// Minimal reproductions of the disagreements between the engine and the model (model_test.go)
// that the model's generated exchanges found: each states what the model requires, through
// the engine's entry points only (New, Compose, Request, Finalize, Done).

package engine

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// reproCodecs are the codecs of the reproductions: one key, values signed at t0, accepted
// for an hour (the visitor cookie's for 400 days).
func reproCodecs() (sign, long, vid Codec) {
	ring := mKeys().rings[0]
	return cookie.NewCodec(ring, cookie.Options{MaxAge: time.Hour}),
		cookie.NewCodec(ring, cookie.Options{MaxAge: time.Hour, MaxLength: mSplitMaxLength}),
		cookie.NewCodec(ring, cookie.Options{MaxAge: 400 * 24 * time.Hour})
}

// reproPolicy compiles a policy that signs session (and what edit adds).
func reproPolicy(t *testing.T, name string, edit func(*Config)) *Policy {
	t.Helper()
	sign, long, _ := reproCodecs()
	c := Config{Sign: []string{"session"}, SignCodec: sign, LongSignCodec: long, MaxAge: time.Hour, KeyID: "repro", Name: name}
	if edit != nil {
		edit(&c)
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func reproVisitor(consent string) *Visitor {
	_, _, vid := reproCodecs()
	return &Visitor{Name: "vid", Codec: vid, MaxAge: 400 * 24 * time.Hour, Refresh: 24 * time.Hour, Path: "/",
		Header: "X-Visitor-Id", HTTPOnly: true, Consent: consent, Fingerprint: "repro vid " + consent}
}

func reproEncode(t *testing.T, c Codec, name, plain string) string {
	t.Helper()
	v, err := c.AppendEncodeAt(nil, name, []byte(plain), t0-10)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

// reproExchange runs policies in order on a request carrying cookieHeader, then the
// upstream's Set-Cookie lines through them innermost first; it returns what the upstream
// read (nil if a policy refused the request), the Set-Cookie lines the client receives, and
// the flow (for an error route to follow).
func reproExchange(t *testing.T, pols []*Policy, cookieHeader string, setCookie ...string) (http.Header, []string, *Flow, error) {
	t.Helper()
	r := &http.Request{Method: "GET", Header: http.Header{}, Body: http.NoBody}
	if cookieHeader != "" {
		r.Header.Set("Cookie", cookieHeader)
	}
	f := new(Flow)
	clock := func() int64 { return t0 }
	var passes []*Pass
	var err error
	for _, p := range pols {
		ps, e := p.Request(f, r, t0, clock)
		passes = append(passes, ps)
		if err = e; err != nil {
			break
		}
	}
	hdr := http.Header{}
	var read http.Header
	if err == nil {
		read = r.Header.Clone()
		hdr["Set-Cookie"] = setCookie
	}
	for i := len(passes) - 1; i >= 0; i-- {
		passes[i].Done(hdr)
		defer passes[i].Release()
	}
	return read, hdr["Set-Cookie"], reproFlow{f, r}.flow(), err
}

// reproFlow keeps the request with its flow, for an error route.
type reproFlow struct {
	f *Flow
	r *http.Request
}

func (rf reproFlow) flow() *Flow {
	reproRequests[rf.f] = rf.r
	return rf.f
}

var reproRequests = map[*Flow]*http.Request{}

// errorRoute runs p as an error route's handler on the request of f, its upstream setting
// setCookie; it returns what that upstream read and the lines the client receives (added to
// lines, what the handlers before it left).
func errorRoute(t *testing.T, p *Policy, f *Flow, lines []string, setCookie ...string) (http.Header, []string) {
	t.Helper()
	r := reproRequests[f]
	ps, err := p.Request(f, r, t0, func() int64 { return t0 })
	defer ps.Release()
	if err != nil {
		t.Fatalf("error route: %v", err)
	}
	read := r.Header.Clone()
	hdr := http.Header{"Set-Cookie": append(slices.Clone(lines), setCookie...)}
	ps.Done(hdr)
	return read, hdr["Set-Cookie"]
}

// A handler further in with a cookie rule that only edits attributes (composable with
// anything) must not make the outer handler's managed cookie leave unsigned.
func TestModelReproAttributeRuleUnsignsOuterCookie(t *testing.T) {
	outer := reproPolicy(t, "outer", nil)
	on := true
	inner := reproPolicy(t, "inner", func(c *Config) {
		c.Sign = nil
		c.Cookies = []CookieRule{{Names: []string{"session"}, Secure: &on}}
	})
	if err := Compose(outer, inner); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	_, lines, _, err := reproExchange(t, []*Policy{outer, inner}, "", "session=admin; Path=/")
	if err != nil {
		t.Fatal(err)
	}
	sign, _, _ := reproCodecs()
	for _, l := range lines {
		sc := mParseSetCookie(l, t0)
		if sc.name != "session" {
			continue
		}
		if d, err := sign.AppendDecodeAt(nil, "session", sc.value, t0); err != nil || string(d.Value) != "admin" {
			t.Errorf("the client receives %q: the managed cookie leaves unsigned (%v)", l, err)
		}
	}
}

// Two handlers with the same prefix rule (one snippet imported twice composes): the second
// must not drop, as an unprefixed copy, the value the first read from the prefixed cookie.
func TestModelReproPrefixTwice(t *testing.T) {
	edit := func(c *Config) { c.Cookies = []CookieRule{{Names: []string{"session"}, Prefix: "__Host-"}} }
	a, b := reproPolicy(t, "a", edit), reproPolicy(t, "b", edit)
	if err := Compose(a, b); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	sign, _, _ := reproCodecs()
	read, _, _, err := reproExchange(t, []*Policy{a, b}, "__Host-session="+reproEncode(t, sign, "__Host-session", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if got := read.Get("Cookie"); got != "session=alice" {
		t.Errorf("the upstream reads Cookie %q, want %q", got, "session=alice")
	}
}

// The upstream sets a managed cookie under the name the browser holds it by (the prefixed
// name, a split value's chunk): the line must not leave unsigned, nor pass the consent gate.
func TestModelReproUpstreamSetsBrowserName(t *testing.T) {
	p := reproPolicy(t, "p", func(c *Config) {
		c.Sign = []string{"session", "big"}
		c.Visitor = reproVisitor("cc")
		c.Cookies = []CookieRule{{Names: []string{"session"}, Prefix: "__Host-"}, {Names: []string{"big"}, Split: true},
			{Names: []string{"ad"}, Prefix: "__Host-", NeedsConsent: true}}
	})
	_, lines, _, err := reproExchange(t, []*Policy{p}, "", "__Host-session=admin; Path=/; Secure", "big__1=admin", "__Host-ad=tracked; Path=/; Secure")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		if strings.HasSuffix(strings.SplitN(l, ";", 2)[0], "=admin") || strings.HasPrefix(l, "__Host-ad=") {
			t.Errorf("the client receives %q: a managed cookie unsigned, or a cookie that waits for consent without it", l)
		}
	}
}

// The first valid copy wins: a split value sent before a single-cookie copy of the same name.
func TestModelReproSplitFirstValidWins(t *testing.T) {
	p := reproPolicy(t, "p", func(c *Config) {
		c.Sign = []string{"big"}
		c.Cookies = []CookieRule{{Names: []string{"big"}, Split: true}}
	})
	sign, long, _ := reproCodecs()
	first := strings.Repeat("0123456789", 500)
	enc := reproEncode(t, long, "big", first)
	header := "big=2*" + enc[:len(enc)/2] + "; big__1=" + enc[len(enc)/2:] + "; big=" + reproEncode(t, sign, "big", "second")
	read, _, _, err := reproExchange(t, []*Policy{p}, header)
	if err != nil {
		t.Fatal(err)
	}
	if got := read.Get("Cookie"); got != "big="+first {
		t.Errorf("the upstream reads Cookie %.40q…, want the first valid copy, big=%.20q…", got, first)
	}
}

// A request refused (on_invalid reject) goes to an error route whose handler tracks the same
// visitor: the valid visitor cookie verified, and its ID reaches the error route's upstream
// (and the placeholders); it is not replaced by a new one.
func TestModelReproErrorRouteKeepsVisitor(t *testing.T) {
	edit := func(c *Config) { c.Visitor, c.Reject = reproVisitor(""), true }
	main, errs := reproPolicy(t, "main", edit), reproPolicy(t, "errors", edit)
	_, _, vid := reproCodecs()
	id := cookie.NewVisitorID()
	valid := reproEncode(t, vid, "vid", string(id[:]))
	_, lines, f, err := reproExchange(t, []*Policy{main}, "vid="+valid+"; session=forged")
	if err != ErrInvalidCookie {
		t.Fatalf("main route: %v, want ErrInvalidCookie", err)
	}
	read, lines := errorRoute(t, errs, f, lines)
	want := cookie.UUIDString(id[:])
	if got := read.Get("X-Visitor-Id"); got != want {
		t.Errorf("the error route's upstream reads X-Visitor-Id %q, want the cookie's %q", got, want)
	}
	if got, _ := f.VisitorID(); got != want {
		t.Errorf("the visitor placeholder is %q, want the cookie's %q", got, want)
	}
	for _, l := range lines {
		if strings.HasPrefix(l, "vid=") && !strings.HasPrefix(l, "vid=;") {
			if d, err := vid.AppendDecodeAt(nil, "vid", mParseSetCookie(l, t0).value, t0); err != nil || string(d.Value) != string(id[:]) {
				t.Errorf("the client receives %.60q…: a valid visitor cookie replaced by another ID", l)
			}
		}
	}
}

// An error route's page sets a cookie that a handler before it holds back until consent:
// without consent, the line is dropped there too.
func TestModelReproErrorRouteConsent(t *testing.T) {
	main := reproPolicy(t, "main", func(c *Config) {
		c.Visitor = reproVisitor("cc")
		c.Cookies = []CookieRule{{Names: []string{"ad"}, NeedsConsent: true}}
		c.Reject = true
	})
	errs := reproPolicy(t, "errors", func(c *Config) { c.Sign = []string{"other"} })
	if err := Compose(main, errs); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	_, lines, f, err := reproExchange(t, []*Policy{main}, "session=forged")
	if err != ErrInvalidCookie {
		t.Fatalf("main route: %v, want ErrInvalidCookie", err)
	}
	_, lines = errorRoute(t, errs, f, lines, "ad=tracked; Path=/")
	if slices.Contains(lines, "ad=tracked; Path=/") {
		t.Errorf("the client receives %q: a cookie that waits for consent, without it", lines)
	}
}

// A glob matches a name with a trailing space ("sess_a "), which parsers read as sess_a: while
// plain values pass (adopt, unwrap), such a pair is a second copy of sess_a for the upstream,
// and the adopted value's upgrade is signed for a name the browser does not keep.
func TestModelReproGlobTrailingSpace(t *testing.T) {
	p := reproPolicy(t, "p", func(c *Config) {
		c.Sign = []string{"sess_*"}
		c.Adopt = []Adoption{{Names: []string{"sess_*"}, Until: time.Unix(t0+3600, 0), Attributes: "Path=/"}}
	})
	sign, _, _ := reproCodecs()
	read, lines, _, err := reproExchange(t, []*Policy{p}, "sess_a="+reproEncode(t, sign, "sess_a", "alice")+"; sess_a =mallory")
	if err != nil {
		t.Fatal(err)
	}
	var copies []string
	for _, c := range (&http.Request{Header: read}).Cookies() {
		if c.Name == "sess_a" {
			copies = append(copies, c.Value)
		}
	}
	if len(copies) != 1 {
		t.Errorf("Go's parser reads sess_a %q in %q: one copy, the valid one, expected", copies, read.Get("Cookie"))
	}
	for _, l := range lines {
		if sc := mParseSetCookie(l, t0); sc.name == "sess_a" {
			if _, err := sign.AppendDecodeAt(nil, "sess_a", sc.value, t0); err != nil {
				t.Errorf("the client receives %q, which it keeps as sess_a; it does not verify as sess_a (%v)", l, err)
			}
		}
	}
}
