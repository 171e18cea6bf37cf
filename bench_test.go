package signedcookies

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/cputime"
)

// The whole ServeHTTP on a provisioned handler with a trivial next, next to a no-op
// middleware doing the same work around the same next; the difference is the module's cost:
//
//	go test -run XXX -bench ServeHTTP -benchmem .
//
// Targets: verify ≤ 2 µs; the allocation counts (verify 2, and no more with 10 or 50 unmanaged
// cookies) are held by TestServeHTTPAllocations. The request, its context and the response
// writer are reused, so that the harness costs (almost) nothing, and the context has no
// replacer (no placeholders); BenchmarkServeHTTPFreshRequest adds the per-request context
// Caddy builds, with a new replacer, to which the module adds its placeholders. cpu-ns/op is
// the process's CPU time per iteration (GC included): on a busy machine it is steadier than
// ns/op.

// benchSecret is a fixed 32-byte secret, so the handler needs no storage.
var benchSecret = fixedSecret("bench secret")

// benchWriter is a reusable ResponseWriter: the header map is cleared, not reallocated.
type benchWriter struct {
	header http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.header }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	return len(b), nil
}

func (w *benchWriter) reset() {
	clear(w.header)
	w.status, w.n = 0, 0
}

// benchNoop is the baseline: a middleware that only calls next.
type benchNoop struct{}

func (benchNoop) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return next.ServeHTTP(w, r)
}

var benchOK = []byte("ok")

// benchNext answers 200 "ok", setting the given Set-Cookie lines first. They are copied into
// a slice of its own each time, without allocating: a handler may rewrite the lines in place.
func benchNext(setCookies []string) caddyhttp.Handler {
	lines := make([]string, 0, len(setCookies))
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		if setCookies != nil {
			lines = append(lines[:0], setCookies...)
			w.Header()["Set-Cookie"] = lines
		}
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(benchOK)
		return err
	})
}

// benchHandler provisions the module as the benchmark Caddyfile does: track with defaults
// (vid, X-Visitor-Id, forward plain), sign session, a configured secret.
func benchHandler(b testing.TB) *Handler {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	h := &Handler{Secrets: []string{benchSecret}, Track: &Track{}, Sign: []string{"session"}}
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	return h
}

// benchRequest is a GET with the headers a browser sends and Caddy's vars in its context.
func benchRequest(cookieLine string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1/page", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) bench")
	r.Header.Set("Accept", "text/html,application/xhtml+xml")
	r.Header.Set("Accept-Encoding", "gzip, deflate, br")
	if cookieLine != "" {
		r.Header.Set("Cookie", cookieLine)
	}
	return r.WithContext(benchContext(r, false))
}

// benchContext gives r the vars map Caddy gives every request, and its replacer if withRepl.
// A reused request has none: the module registers its placeholders with each request's
// replacer, which would pile up in one that is never renewed.
func benchContext(r *http.Request, withRepl bool) context.Context {
	ctx := r.Context()
	if withRepl {
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
	}
	return context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{
		caddyhttp.TrustedProxyVarKey: false,
		caddyhttp.ClientIPVarKey:     "127.0.0.1",
	})
}

// benchMint runs the handler once and returns the name=value of the Set-Cookie it sent for
// name: the issue path for the visitor cookie, the sign path for an upstream cookie.
func benchMint(b testing.TB, h *Handler, cookieLine string, next caddyhttp.Handler, name string) string {
	b.Helper()
	w := &benchWriter{header: http.Header{}}
	if err := h.ServeHTTP(w, benchRequest(cookieLine), next); err != nil {
		b.Fatal(err)
	}
	for _, line := range w.header["Set-Cookie"] {
		if strings.HasPrefix(line, name+"=") {
			pair, _, _ := strings.Cut(line, ";")
			return pair
		}
	}
	b.Fatalf("no Set-Cookie for %s: %q", name, w.header["Set-Cookie"])
	return ""
}

func benchUnmanaged(n int) string {
	var s strings.Builder
	for i := range n {
		fmt.Fprintf(&s, "; _ga_%d=GA1.1.%d.1732550000", i, 1000000+i)
	}
	return s.String()
}

// benchCase is one request path.
type benchCase struct {
	name       string
	h          *Handler // the handler configured for it; nil for the shared one
	cookie     string   // the request's Cookie line, "" for none
	setCookies []string // what next sets
	check      func(b testing.TB, w *benchWriter, r *http.Request)
	// floor is the cryptography the path cannot do without, alone: the codec calls (decodes,
	// encodes, a new ID) with the handler's own codecs. It returns what it made, to check.
	floor func() int
}

func benchCases(b testing.TB, h *Handler) []benchCase {
	signSession := []string{"session=alice; Path=/; HttpOnly; SameSite=Lax"}
	vid := benchMint(b, h, "", benchNext(nil), "vid")
	session := benchMint(b, h, vid, benchNext(signSession), "session")
	verified := func(b testing.TB, w *benchWriter, r *http.Request) {
		if got := w.header["Set-Cookie"]; len(got) != 0 {
			b.Fatalf("verify path answered with Set-Cookie %q", got)
		}
		if r.Header.Get("X-Visitor-Id") == "" || !strings.Contains(r.Header.Get("Cookie"), "session=alice") {
			b.Fatalf("upstream would see Cookie %q, X-Visitor-Id %q", r.Header.Get("Cookie"), r.Header.Get("X-Visitor-Id"))
		}
	}
	vidCodec, sessCodec := benchCodec(b, h, "vid"), benchCodec(b, h, "session")
	vidValue, sessValue := strings.TrimPrefix(vid, "vid="), strings.TrimPrefix(session, "session=")
	var buf []byte
	decode := func(c *cookie.Codec, name, value string) int {
		d, err := c.AppendDecodeAt(buf[:0], name, value, 0)
		if err != nil {
			b.Fatal(err)
		}
		buf = d.Value
		return len(d.Value)
	}
	encode := func(c *cookie.Codec, name string, value []byte) int {
		var err error
		if buf, err = c.AppendEncodeAt(buf[:0], name, value, time.Now().Unix()); err != nil {
			b.Fatal(err)
		}
		return len(buf)
	}
	twoDecodes := func() int { return decode(vidCodec, "vid", vidValue) + decode(sessCodec, "session", sessValue) }
	return []benchCase{
		{name: "verify", cookie: vid + "; " + session, check: verified, floor: twoDecodes},
		{name: "verify_10_unmanaged", cookie: vid + "; " + session + benchUnmanaged(10), check: verified, floor: twoDecodes},
		{name: "verify_50_unmanaged", cookie: vid + "; " + session + benchUnmanaged(50), check: verified, floor: twoDecodes},
		{name: "issue", check: func(b testing.TB, w *benchWriter, r *http.Request) {
			if got := w.header["Set-Cookie"]; len(got) != 1 || !strings.HasPrefix(got[0], "vid=") {
				b.Fatalf("issue path answered with Set-Cookie %q", got)
			}
		}, floor: func() int {
			id := cookie.NewVisitorID()
			return encode(vidCodec, "vid", id[:])
		}},
		{name: "upstream_sign", cookie: vid, setCookies: signSession, check: func(b testing.TB, w *benchWriter, r *http.Request) {
			got := w.header["Set-Cookie"]
			if len(got) != 1 || !strings.HasPrefix(got[0], "session=") || strings.HasPrefix(got[0], "session=alice") {
				b.Fatalf("sign path answered with Set-Cookie %q", got)
			}
		}, floor: func() int { return decode(vidCodec, "vid", vidValue) + encode(sessCodec, "session", []byte("alice")) }},
	}
}

// benchCodec is the codec the handler uses for a cookie, as its policy has it.
func benchCodec(b testing.TB, h *Handler, name string) *cookie.Codec {
	b.Helper()
	c, ok := h.policy.Inspect(name, nil, 0).Codec.(*cookie.Codec)
	if !ok {
		b.Fatalf("%s is not managed in securecookie's format", name)
	}
	return c
}

// benchProvision provisions h as Caddy would, with no storage (a configured secret).
func benchProvision(b testing.TB, h *Handler) *Handler {
	b.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	return h
}

// benchFlaskKey and benchFlaskSession: a Flask app's SECRET_KEY and a session it signed
// ({"user": "alice", "role": "member"}, by Flask 3's SecureCookieSessionInterface). No max
// age is configured, so it verifies whenever the benchmark runs.
const (
	benchFlaskKey     = "bench flask secret key, not a real one"
	benchFlaskSession = "eyJ1c2VyIjoiYWxpY2UiLCJyb2xlIjoibWVtYmVyIn0.axY5Cw.KCRk8-xim3TP_npI9osS0QFa7ZE"
)

// benchFeatureCases are the request paths of the features beside tracking and signing, each
// through a handler configured for it, with a visitor cookie and the feature's cookie:
// a cookie block (attributes and a prefix on a signed cookie), a value split over three
// cookies, a Flask session, and a rollout configured but not used (every value encoded).
func benchFeatureCases(b testing.TB) []benchCase {
	on := true
	block := benchProvision(b, &Handler{Secrets: []string{benchSecret}, Track: &Track{}, Sign: []string{"session"},
		Cookie: []CookieRule{{Names: []string{"session"}, HTTPOnly: &on, SameSite: "strict", Path: &Rewrite{From: "/app", To: "/"}}}})
	split := benchProvision(b, &Handler{Secrets: []string{benchSecret}, Track: &Track{}, Encrypt: []string{"cart"},
		Cookie: []CookieRule{{Names: []string{"cart"}, Split: true}}})
	flask := benchProvision(b, &Handler{Secrets: []string{benchSecret}, Track: &Track{},
		FlaskSession: &FlaskSession{SecretKey: []string{benchFlaskKey}, Expose: []string{"user"}}})
	rollout := benchProvision(b, &Handler{Secrets: []string{benchSecret}, Track: &Track{}, Sign: []string{"session"},
		Adopt: []Adoption{{Cookies: []string{"session"}, Until: rolloutFuture(), Attributes: "Path=/; HttpOnly"}}})

	var buf []byte
	// decoder returns the codec call a cookie needs, resolved once: the floor is the
	// cryptography, not the lookup. values are the cookie's values as the client holds them
	// (several for a split value: its long codec then).
	decoder := func(h *Handler, name string, values ...string) func() int {
		v := h.policy.Inspect(name, values, 0).Codec
		value := values[0]
		if k, first, ok := strings.Cut(value, "*"); ok && len(k) == 1 && len(values) > 1 {
			value = first + strings.Join(values[1:], "") // a split value: the pieces joined
		}
		return func() int {
			d, err := v.AppendDecodeAt(buf[:0], name, value, time.Now().Unix())
			if err != nil {
				b.Fatalf("%s: %v", name, err)
			}
			buf = d.Value
			return len(d.Value)
		}
	}
	forwards := func(cookie, want string) func(b testing.TB, w *benchWriter, r *http.Request) {
		return func(b testing.TB, w *benchWriter, r *http.Request) {
			if got := w.header["Set-Cookie"]; len(got) != 0 {
				b.Fatalf("answered with Set-Cookie %q", got)
			}
			if v, n := upstreamCookie(r, cookie); n != 1 || !strings.HasPrefix(v, want) || r.Header.Get("X-Visitor-Id") == "" {
				b.Fatalf("upstream would see Cookie %q, X-Visitor-Id %q", r.Header.Get("Cookie"), r.Header.Get("X-Visitor-Id"))
			}
		}
	}
	var cases []benchCase
	for _, f := range []struct {
		name    string
		h       *Handler
		sets    []string // what the upstream sets once, to mint the cookies; nil: the Flask app's
		app     string   // the cookie the upstream reads, and its plain value's start
		want    string
		cookies []string // the minted cookies the request carries
	}{
		{"cookie_block", block, []string{"session=alice; Path=/"}, "session", "alice", []string{"session"}},
		{"split", split, []string{"cart=" + strings.Repeat("item-0042,", 500) + "; Path=/"}, "cart", "item-0042,", []string{"cart", "cart__1", "cart__2"}},
		{"flask_session", flask, nil, "session", benchFlaskSession, nil},
		{"rollout_unused", rollout, []string{"session=alice; Path=/"}, "session", "alice", []string{"session"}},
	} {
		vid := benchMint(b, f.h, "", benchNext(nil), "vid")
		line, values := vid, []string{benchFlaskSession}
		if f.sets != nil {
			w := &benchWriter{header: http.Header{}}
			if err := f.h.ServeHTTP(w, benchRequest(vid), benchNext(f.sets)); err != nil {
				b.Fatal(err)
			}
			minted := map[string]string{}
			for _, sc := range w.header["Set-Cookie"] {
				pair, _, _ := strings.Cut(sc, ";")
				name, value, _ := strings.Cut(pair, "=")
				minted[name] = value
			}
			values = values[:0]
			for _, name := range f.cookies {
				if minted[name] == "" {
					b.Fatalf("%s: no Set-Cookie for %s: %q", f.name, name, w.header["Set-Cookie"])
				}
				line += "; " + name + "=" + minted[name]
				values = append(values, minted[name])
			}
		} else {
			line += "; session=" + benchFlaskSession
		}
		decodeVid, decodeApp := decoder(f.h, "vid", strings.TrimPrefix(vid, "vid=")), decoder(f.h, f.app, values...)
		cases = append(cases, benchCase{name: f.name, h: f.h, cookie: line, check: forwards(f.app, f.want),
			floor: func() int { return decodeVid() + decodeApp() }})
	}
	return cases
}

// benchServer returns a function that serves one request of case c through mw. Each call puts
// back the request headers the handler replaces (Cookie, X-Visitor-Id) without allocating;
// with fresh, the request gets a new context (replacer, vars…) as Caddy's server makes it.
func benchServer(b testing.TB, mw caddyhttp.MiddlewareHandler, c benchCase, fresh bool) (serve func(), w *benchWriter, r *http.Request) {
	r = benchRequest(c.cookie)
	cookieLines := r.Header["Cookie"]
	next := benchNext(c.setCookies)
	w = &benchWriter{header: make(http.Header, 8)}
	serve = func() {
		w.reset()
		if cookieLines != nil {
			cookieLines[0] = c.cookie // the module rebuilds the request's Cookie line in place
			r.Header["Cookie"] = cookieLines
		} else {
			delete(r.Header, "Cookie")
		}
		delete(r.Header, "X-Visitor-Id")
		caddyhttp.SetVar(r.Context(), flowVar, nil) // a new request, as far as the module knows
		req := r
		if fresh {
			req = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, nil) // as Caddy's server does
		}
		if err := mw.ServeHTTP(w, req, next); err != nil {
			b.Fatal(err)
		}
	}
	return serve, w, r
}

// benchServe runs one case through mw.
func benchServe(b *testing.B, mw caddyhttp.MiddlewareHandler, c benchCase, fresh bool) {
	serve, w, r := benchServer(b, mw, c, fresh)
	// Empty the request-state pool (two GCs: primary, then victim), so that this path's own
	// steady state is measured, not buffers grown by the cookies minted above.
	runtime.GC()
	runtime.GC()
	serve()
	if _, module := mw.(*Handler); module && c.check != nil {
		c.check(b, w, r)
	}
	b.ReportAllocs()
	cpu := cputime.Process()
	for b.Loop() {
		serve()
	}
	reportCPU(b, cpu)
	if _, module := mw.(*Handler); module && c.check != nil {
		c.check(b, w, r) // the last iteration did the work too
	}
}

// reportCPU adds cpu-ns/op: process CPU time since start per iteration (none where the
// process's CPU time cannot be read).
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 && start > 0 {
		b.ReportMetric(float64(cputime.Process()-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkServeHTTP runs each path three ways: a no-op middleware around the same next (the
// harness), the module, and the path's codec calls alone (floor). The module's own cost is
// signed_cookies - noop; divided by floor, it says how close the handler is to the
// cryptography it must do (bench/README.md has the table and how it is made).
func BenchmarkServeHTTP(b *testing.B) {
	h := benchHandler(b)
	for _, c := range append(benchCases(b, h), benchFeatureCases(b)...) {
		mw := h
		if c.h != nil {
			mw = c.h
		}
		b.Run(c.name+"/noop", func(b *testing.B) { benchServe(b, benchNoop{}, c, false) })
		b.Run(c.name+"/signed_cookies", func(b *testing.B) { benchServe(b, mw, c, false) })
		b.Run(c.name+"/floor", func(b *testing.B) { benchFloor(b, c) })
	}
}

// benchFloor runs a path's codec calls alone.
func benchFloor(b *testing.B, c benchCase) {
	b.ReportAllocs()
	made := c.floor()
	cpu := cputime.Process()
	n := 0
	for b.Loop() {
		n = c.floor()
	}
	reportCPU(b, cpu)
	if n != made || n == 0 {
		b.Fatalf("the floor made %d bytes, then %d", made, n)
	}
}

// BenchmarkServeHTTPFreshRequest gives every request the context Caddy's server makes for it
// (caddyhttp.PrepareRequest: a new replacer, vars map, route groups…): closer to a real
// request, at the price of the harness's own allocations (see noop).
func BenchmarkServeHTTPFreshRequest(b *testing.B) {
	h := benchHandler(b)
	for _, c := range benchCases(b, h) {
		if c.name != "verify" && c.name != "issue" {
			continue
		}
		b.Run(c.name+"/noop", func(b *testing.B) { benchServe(b, benchNoop{}, c, true) })
		b.Run(c.name+"/signed_cookies", func(b *testing.B) { benchServe(b, h, c, true) })
	}
}

// BenchmarkServeHTTPParallel is verify under RunParallel: pools and atomics shared between
// cores, as under load.
func BenchmarkServeHTTPParallel(b *testing.B) {
	h := benchHandler(b)
	c := benchCases(b, h)[0]
	for _, mw := range []struct {
		name string
		h    caddyhttp.MiddlewareHandler
	}{{"noop", benchNoop{}}, {"signed_cookies", h}} {
		b.Run(c.name+"/"+mw.name, func(b *testing.B) {
			b.ReportAllocs()
			cpu := cputime.Process()
			defer reportCPU(b, cpu)
			b.RunParallel(func(pb *testing.PB) {
				r := benchRequest(c.cookie)
				cookieLines := r.Header["Cookie"]
				next := benchNext(nil)
				w := &benchWriter{header: make(http.Header, 8)}
				served := 0
				for pb.Next() {
					w.reset()
					cookieLines[0] = c.cookie
					r.Header["Cookie"] = cookieLines
					delete(r.Header, "X-Visitor-Id")
					caddyhttp.SetVar(r.Context(), flowVar, nil) // a new request, as far as the module knows
					if err := mw.h.ServeHTTP(w, r, next); err != nil {
						b.Error(err)
						return
					}
					served++
				}
				// Each goroutine's last request went through the verify path, not around it.
				if _, module := mw.h.(*Handler); module && served > 0 {
					c.check(b, w, r)
				}
			})
		})
	}
}

// Interface guards
var (
	_ http.ResponseWriter         = (*benchWriter)(nil)
	_ caddyhttp.MiddlewareHandler = benchNoop{}
)
