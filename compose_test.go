// Several signed_cookies handlers on one request path, through a real Caddy, a real upstream
// and a real client: each enforces its own names in every way Caddy composes handlers, no
// value is verified, signed or issued twice, and what cannot be composed is refused (at load
// where the walk of the config sees it, with a 500 per request where it cannot).

package signedcookies

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// sc writes a signed_cookies directive with an optional matcher.
func sc(matcher string, lines ...string) string {
	var b strings.Builder
	b.WriteString("signed_cookies ")
	if matcher != "" {
		b.WriteString(matcher + " ")
	}
	b.WriteString("{\n")
	for _, l := range lines {
		b.WriteString("\t" + l + "\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// compUpstreamHandler answers "ok" and sets, for each name in the query's set list,
// name=plain-name with attributes the module must keep byte for byte.
func compUpstreamHandler(w http.ResponseWriter, r *http.Request) {
	if s := r.URL.Query().Get("set"); s != "" {
		for n := range strings.SplitSeq(s, ",") {
			w.Header().Add("Set-Cookie", n+"=plain-"+n+"; Path=/; HttpOnly")
		}
	}
	_, _ = io.WriteString(w, "ok")
}

const (
	xInvalid = "header X-Invalid {http.signed_cookies.invalid}\n"
	// what the error page of the respond form shows of the request it answers
	xSeen = "header X-Seen-Cookie \"{http.request.header.Cookie}\"\nheader X-Seen-Id \"{http.request.header.X-Visitor-Id}\"\n"
)

// compForm is one way Caddy composes two handlers: a is the first (outer) handler's
// directive lines, b the second's. The second one's route sets X-Invalid and reaches the
// upstream, or (respond) answers itself and shows the request it saw. In the error forms the
// response passes through the second handler only (the first one has returned when the error
// routes run), so the response sets only the second handler's cookies.
type compForm struct {
	name       string
	path       string
	respond    bool
	errorRoute bool
	build      func(a, b []string, up, dead string) (top, site string)
}

var compForms = []compForm{
	{name: "handle", path: "/app/x", build: func(a, b []string, up, _ string) (string, string) {
		return "", sc("", a...) + "handle /app/* {\n" + sc("", b...) + xInvalid + "reverse_proxy " + up + "\n}\n"
	}},
	{name: "handle_path", path: "/app/x", build: func(a, b []string, up, _ string) (string, string) {
		return "", sc("", a...) + "handle_path /app/* {\n" + sc("", b...) + xInvalid + "reverse_proxy " + up + "\n}\n"
	}},
	{name: "route", path: "/app/x", build: func(a, b []string, up, _ string) (string, string) {
		return "", "route /app/* {\n" + sc("", a...) + sc("", b...) + xInvalid + "reverse_proxy " + up + "\n}\n"
	}},
	{name: "sibling", path: "/app/x", build: func(a, b []string, up, _ string) (string, string) {
		return "", sc("", a...) + sc("/app/*", b...) + xInvalid + "reverse_proxy " + up + "\n"
	}},
	// Caddy 2.11 keeps only the first handler of a named route whose directives have no
	// matcher (extractNamedRoutes takes HandlersRaw[0]): a route block keeps them all.
	{name: "invoke", path: "/app/x", build: func(a, b []string, up, _ string) (string, string) {
		return "&(app) {\nroute {\n" + sc("", b...) + xInvalid + "reverse_proxy " + up + "\n}\n}\n",
			sc("", a...) + "invoke app\n"
	}},
	{name: "handle_errors", path: "/app/x", errorRoute: true, build: func(a, b []string, up, dead string) (string, string) {
		return "", sc("", a...) + "reverse_proxy " + dead + "\nhandle_errors {\n" + sc("", b...) + xInvalid +
			"reverse_proxy " + up + "\n}\n"
	}},
	{name: "handle_errors_respond", path: "/app/x", respond: true, errorRoute: true, build: func(a, b []string, _, dead string) (string, string) {
		site := sc("", a...) + "reverse_proxy " + dead + "\nhandle_errors {\n" + sc("", b...) + xInvalid + xSeen + "@set query set=*\n"
		for _, n := range managedNames(b) {
			site += "header @set +Set-Cookie \"" + n + "=plain-" + n + "; Path=/; HttpOnly\"\n"
		}
		return "", site + "respond \"error page\" 502\n}\n"
	}},
}

// The kinds of cookie one handler of a pair manages; the other handler manages the two
// other kinds, and both manage "common" the same way (verified once, signed once).
var compKinds = []struct{ name, line string }{
	{"track", "track"},
	{"sign", "sign session"},
	{"encrypt", "encrypt prefs"},
}

// compManaged are the upstream cookies of the matrix, each managed by one handler or both.
var compManaged = []string{"session", "prefs", "common"}

// managedNames are the upstream cookies a handler's directive lines sign or encrypt.
func managedNames(lines []string) []string {
	var names []string
	for _, l := range lines {
		if f := strings.Fields(l); len(f) > 1 && (f[0] == "sign" || f[0] == "encrypt") {
			names = append(names, f[1:]...)
		}
	}
	return names
}

func compCodec(t testing.TB, name string) *cookie.Codec {
	if name == "prefs" {
		return encryptCodec(t)
	}
	return signCodec(t)
}

// compSeen is what the upstream (or the error page) saw of one request.
type compSeen struct {
	req *http.Request
	ids []string // X-Visitor-Id values
}

func (f compForm) seen(t testing.TB, resp *http.Response, up *upstream, before int) compSeen {
	t.Helper()
	if f.respond {
		r := &http.Request{Header: http.Header{}}
		if c := resp.Header.Get("X-Seen-Cookie"); c != "" {
			r.Header.Set("Cookie", c)
		}
		var ids []string
		if v := resp.Header.Get("X-Seen-Id"); v != "" {
			ids = strings.Split(v, ",")
		}
		return compSeen{req: r, ids: ids}
	}
	if n := up.count(); n != before+1 {
		t.Fatalf("upstream reached %d times by one request, want once (response %s, headers %q)", n-before, resp.Status, resp.Header)
	}
	r := up.last()
	return compSeen{req: r, ids: r.Header.Values("X-Visitor-Id")}
}

// checkComposed runs the three requests of a matrix cell: a new visitor whose response sets
// the managed cookies in set, a return with valid values (each sent twice), and forged values.
func checkComposed(t *testing.T, f compForm, ci caddyInstance, up *upstream, set []string) {
	url := ci.URL + f.path
	count := func() int {
		if up == nil {
			return 0
		}
		return up.count()
	}

	// (1) a new visitor; the response sets every managed cookie
	n := count()
	resp, _ := get(t, http.DefaultClient, url+"?set="+strings.Join(set, ","))
	s := f.seen(t, resp, up, n)
	id, k := upstreamCookie(s.req, "vid")
	if k != 1 || len(id) != 36 {
		t.Errorf("new visitor: upstream vid %q x%d, want one UUID", id, k)
	}
	if len(s.ids) != 1 || s.ids[0] != id {
		t.Errorf("new visitor: X-Visitor-Id %q, want [%s]", s.ids, id)
	}
	for _, name := range compManaged {
		if _, k := upstreamCookie(s.req, name); k != 0 {
			t.Errorf("new visitor: upstream got %s x%d, the client sent none", name, k)
		}
	}
	lines := resp.Header.Values("Set-Cookie")
	if len(lines) != 1+len(set) {
		t.Errorf("new visitor: %d Set-Cookie lines, want %d:\n%s", len(lines), 1+len(set), shortLines(lines))
	}
	valid := map[string]string{}
	for _, name := range compManaged {
		sl := setCookies(resp, name)
		if !slices.Contains(set, name) {
			if len(sl) != 0 {
				t.Errorf("new visitor: Set-Cookie for %s, which the response did not set:\n%s", name, shortLines(sl))
			}
			valid[name] = encodeFor(t, compCodec(t, name), name, "plain-"+name)
			continue
		}
		if len(sl) != 1 {
			t.Errorf("new visitor: %d Set-Cookie lines for %s, want 1:\n%s", len(sl), name, shortLines(sl))
			continue
		}
		_, v, rest := splitSetCookie(sl[0])
		d, err := compCodec(t, name).Decode(name, v)
		switch {
		case err != nil:
			t.Errorf("new visitor: %s does not decode in one step (double-encoded or plain?): %v: %.80q", name, err, sl[0])
		case string(d.Value) != "plain-"+name:
			t.Errorf("new visitor: %s decodes to %q, want plain-%s", name, d.Value, name)
		case rest != "; Path=/; HttpOnly":
			t.Errorf("new visitor: %s attributes %q changed", name, rest)
		}
		valid[name] = v
	}
	vl := setCookies(resp, "vid")
	if len(vl) != 1 {
		t.Errorf("new visitor: %d visitor cookies, want 1:\n%s", len(vl), shortLines(vl))
	} else {
		_, v, _ := splitSetCookie(vl[0])
		d, err := signCodec(t).Decode("vid", v)
		if err != nil || cookie.UUIDString(d.Value) != id {
			t.Errorf("new visitor: vid cookie decodes to %x (%v), want the ID the upstream got (%s)", d.Value, err, id)
		}
		valid["vid"] = v
	}
	if inv := resp.Header.Get("X-Invalid"); inv != "" {
		t.Errorf("new visitor: X-Invalid %q, want none", inv)
	}
	if t.Failed() {
		return
	}

	// (2) valid values, each sent twice: each reaches the upstream decoded, once
	var pairs []string
	for _, name := range append([]string{"vid"}, compManaged...) {
		pairs = append(pairs, name+"="+valid[name])
	}
	hdr := strings.Join(pairs, "; ") + "; other=1; " + strings.Join(pairs, "; ")
	n = count()
	resp, _ = get(t, http.DefaultClient, url, "Cookie", hdr)
	s = f.seen(t, resp, up, n)
	for _, name := range compManaged {
		if v, k := upstreamCookie(s.req, name); k != 1 || v != "plain-"+name {
			t.Errorf("valid: upstream %s = %q x%d, want plain-%s once", name, v, k, name)
		}
	}
	if v, k := upstreamCookie(s.req, "vid"); k != 1 || v != id {
		t.Errorf("valid: upstream vid = %q x%d, want %s once", v, k, id)
	}
	if v, k := upstreamCookie(s.req, "other"); k != 1 || v != "1" {
		t.Errorf("valid: upstream other = %q x%d, want 1 once", v, k)
	}
	if len(s.ids) != 1 || s.ids[0] != id {
		t.Errorf("valid: X-Visitor-Id %q, want [%s]", s.ids, id)
	}
	if l := resp.Header.Values("Set-Cookie"); len(l) != 0 {
		t.Errorf("valid: Set-Cookie on a request with valid cookies:\n%s", shortLines(l))
	}
	if inv := resp.Header.Get("X-Invalid"); inv != "" {
		t.Errorf("valid: X-Invalid %q, want none", inv)
	}

	// (3) forged values: none reaches the upstream, each is cleared (the visitor cookie
	// replaced by one new ID), and X-Invalid lists the drops of both handlers
	n = count()
	resp, _ = get(t, http.DefaultClient, url, "Cookie",
		"vid=forged-vid; session=forged-session; prefs=forged-prefs; common=forged-common; other=1")
	s = f.seen(t, resp, up, n)
	if c := strings.Join(s.req.Header.Values("Cookie"), "; "); strings.Contains(c, "forged") {
		t.Errorf("forged: upstream Cookie %q holds a forged value", c)
	}
	for _, name := range compManaged {
		if _, k := upstreamCookie(s.req, name); k != 0 {
			t.Errorf("forged: upstream got %s x%d", name, k)
		}
	}
	nid, k := upstreamCookie(s.req, "vid")
	if k != 1 || len(nid) != 36 || nid == id {
		t.Errorf("forged: upstream vid %q x%d, want one new UUID", nid, k)
	}
	if len(s.ids) != 1 || s.ids[0] != nid {
		t.Errorf("forged: X-Visitor-Id %q, want [%s]", s.ids, nid)
	}
	lines = resp.Header.Values("Set-Cookie")
	if len(lines) != 1+len(compManaged) {
		t.Errorf("forged: %d Set-Cookie lines, want %d:\n%s", len(lines), 1+len(compManaged), shortLines(lines))
	}
	for _, name := range compManaged {
		if c := countLine(lines, name+"=; Path=/; Max-Age=0"); c != 1 {
			t.Errorf("forged: %s cleared %d times, want once:\n%s", name, c, shortLines(lines))
		}
	}
	if vl := setCookies(resp, "vid"); len(vl) != 1 {
		t.Errorf("forged: %d visitor cookies, want 1:\n%s", len(vl), shortLines(vl))
	} else {
		_, v, _ := splitSetCookie(vl[0])
		if d, err := signCodec(t).Decode("vid", v); err != nil || cookie.UUIDString(d.Value) != nid {
			t.Errorf("forged: new vid cookie decodes to %x (%v), want %s", d.Value, err, nid)
		}
	}
	inv := strings.Split(resp.Header.Get("X-Invalid"), ",")
	slices.Sort(inv)
	if want := []string{"common", "prefs", "session", "vid"}; !slices.Equal(inv, want) {
		t.Errorf("forged: X-Invalid %q, want each of %q once", resp.Header.Get("X-Invalid"), want)
	}
}

// Every composition form × the kind of cookie the first or the second handler manages.
func TestCompositionMatrix(t *testing.T) {
	up := startUpstream(t, compUpstreamHandler)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	common := []string{"secret " + testSecret, "sign common"}
	for _, f := range compForms {
		for _, kind := range compKinds {
			var rest []string
			for _, o := range compKinds {
				if o.name != kind.name {
					rest = append(rest, o.line)
				}
			}
			one := append(slices.Clone(common), kind.line)
			other := append(slices.Clone(common), rest...)
			for _, dir := range []struct {
				name string
				a, b []string
			}{{"first", one, other}, {"second", other, one}} {
				t.Run(f.name+"/"+kind.name+"_in_"+dir.name, func(t *testing.T) {
					top, site := f.build(dir.a, dir.b, up.Addr, dead)
					ci := startCaddy(t, site, withTop(top))
					var u *upstream
					if !f.respond {
						u = up
					}
					set := compManaged
					if f.errorRoute {
						set = managedNames(dir.b)
					}
					checkComposed(t, f, ci, u, set)
					if t.Failed() {
						t.Logf("config:\n%s%s", top, site)
					}
				})
			}
		}
	}
}

// The same handler block reached twice by one request (a snippet imported in the site and in
// handle_errors, a named route invoked twice, an identical block nested) verifies, signs and
// issues once.
func TestCompositionRepeatedHandler(t *testing.T) {
	up := startUpstream(t, compUpstreamHandler)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	all := []string{"secret " + testSecret, "track", "sign session", "encrypt prefs", "sign common"}
	f := compForm{path: "/app/x"}
	for _, c := range []struct{ name, top, site string }{
		{"import_site_and_handle_errors", "(sc) {\n" + sc("", all...) + "}\n",
			"import sc\nreverse_proxy " + dead + "\nhandle_errors {\nimport sc\n" + xInvalid + "reverse_proxy " + up.Addr + "\n}\n"},
		{"invoke_twice", "&(sc) {\n" + sc("", all...) + "}\n",
			"route {\ninvoke sc\ninvoke sc\n" + xInvalid + "reverse_proxy " + up.Addr + "\n}\n"},
		{"import_nested", "(sc) {\n" + sc("", all...) + "}\n",
			"import sc\nhandle /app/* {\nimport sc\n" + xInvalid + "reverse_proxy " + up.Addr + "\n}\n"},
		{"import_route_twice", "(sc) {\n" + sc("", all...) + "}\n",
			"route {\nimport sc\nimport sc\n" + xInvalid + "reverse_proxy " + up.Addr + "\n}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ci := startCaddy(t, c.site, withTop(c.top))
			checkComposed(t, f, ci, up, compManaged)
			if t.Failed() {
				t.Logf("config:\n%s%s", c.top, c.site)
			}
		})
	}
}

// The cookies of the primary path's handler, set by the error route after that handler has
// returned, must not leave Caddy plain (an encrypted one would show its value), also when the
// error route has a signed_cookies handler of its own.
func TestCompositionErrorRouteSetsFirstHandlersCookie(t *testing.T) {
	up := startUpstream(t, compUpstreamHandler)
	dead := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ci := startCaddy(t, sc("", "secret "+testSecret, "sign session", "encrypt prefs")+"reverse_proxy "+dead+
		"\nhandle_errors {\n"+sc("", "secret "+testSecret, "sign other")+"reverse_proxy "+up.Addr+"\n}\n")
	resp, _ := get(t, http.DefaultClient, ci.URL+"/?set=session,prefs,other")
	for _, name := range []string{"session", "prefs", "other"} {
		sl := setCookies(resp, name)
		if len(sl) != 1 {
			t.Errorf("%d Set-Cookie lines for %s, want 1:\n%s", len(sl), name, shortLines(resp.Header.Values("Set-Cookie")))
			continue
		}
		_, v, _ := splitSetCookie(sl[0])
		if d, err := compCodec(t, name).Decode(name, v); err != nil || string(d.Value) != "plain-"+name {
			t.Errorf("%s leaves as %q: not encoded once (%v)", name, sl[0], err)
		}
	}
}

// compConflicts are pairs of handlers that cannot share a request path. Each names a cookie
// only it manages (a_only, b_only), so that the error can be seen to name both.
var compConflicts = []struct {
	name string
	a, b []string
	why  string
}{
	{"secrets", []string{"secret " + testSecret, "sign session a_only"},
		[]string{"secret " + otherSecret, "sign session b_only"}, `both manage cookies named "session", differently`},
	{"realm", []string{"secret " + testSecret, "realm one", "sign session a_only"},
		[]string{"secret " + testSecret, "realm two", "sign session b_only"}, `both manage cookies named "session", differently`},
	{"max_age", []string{"secret " + testSecret, "max_age 1h", "sign session a_only"},
		[]string{"secret " + testSecret, "sign session b_only"}, `both manage cookies named "session", differently`},
	{"sign_vs_encrypt", []string{"secret " + testSecret, "sign session a_only"},
		[]string{"secret " + testSecret, "encrypt session", "sign b_only"}, `both manage cookies named "session", differently`},
	{"glob_overlap", []string{"secret " + testSecret, "sign sess_* a_only"},
		[]string{"secret " + testSecret, "encrypt sess_a", "sign b_only"}, `both manage cookies named`},
	{"two_visitor_cookies", []string{"secret " + testSecret, "track", "sign a_only"},
		[]string{"secret " + testSecret, "track uid", "sign b_only"}, "one request path can carry one visitor cookie"},
	{"visitor_settings", []string{"secret " + testSecret, "track", "sign a_only"},
		[]string{"secret " + testSecret, "track {\n\t\tmax_age 30d\n\t}", "sign b_only"}, "one request path can carry one visitor cookie"},
	{"lookalike", []string{"secret " + testSecret, "sign session a_only"},
		[]string{"secret " + testSecret, "sign Session b_only"}, `can name one cookie for the upstream`},
}

// What cannot share a request path fails to load, in every form, with an error naming both
// handlers; the same pairs on paths no request takes together load and each keeps its keys.
func TestCompositionRefused(t *testing.T) {
	dead := "127.0.0.1:9"
	for _, f := range compForms {
		for _, c := range compConflicts {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				top, site := f.build(c.a, c.b, dead, dead)
				err := loadCaddyErr(t, site, withTop(top))
				if err == nil {
					t.Fatalf("loaded:\n%s\n%s", top, site)
				}
				msg := err.Error()
				if !strings.Contains(msg, "a_only") || !strings.Contains(msg, "b_only") || !strings.Contains(msg, c.why) {
					t.Errorf("error does not name both handlers and the conflict (%q): %v", c.why, err)
				}
			})
		}
	}

	// The pair of every kind of conflict at once: other secret, encrypt instead of sign,
	// another visitor cookie.
	a := []string{"secret " + testSecret, "track", "sign session"}
	b := []string{"secret " + otherSecret, "track uid", "encrypt session"}
	otherEnc := cookie.NewCodec(mustRing(t, otherSecret), cookie.Options{Encrypt: true})
	check := func(t *testing.T, ci caddyInstance, up *upstream, hostA, pathA, hostB, pathB string) {
		t.Helper()
		send := func(host, path, cookieHdr string) *http.Response {
			req, err := http.NewRequest(http.MethodGet, ci.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if host != "" {
				req.Host = host
			}
			if cookieHdr != "" {
				req.Header.Set("Cookie", cookieHdr)
			}
			resp, _ := do(t, http.DefaultClient, req)
			return resp
		}
		resp := send(hostA, pathA, "session="+signedFor(t, "session", "alice"))
		if v, k := upstreamCookie(up.last(), "session"); v != "alice" || k != 1 {
			t.Errorf("first handler: upstream session %q x%d, want alice", v, k)
		}
		if len(setCookies(resp, "vid")) != 1 || len(setCookies(resp, "uid")) != 0 {
			t.Errorf("first handler: Set-Cookie %q, want a vid only", resp.Header.Values("Set-Cookie"))
		}
		resp = send(hostB, pathB, "session="+encodeFor(t, otherEnc, "session", "bob"))
		if v, k := upstreamCookie(up.last(), "session"); v != "bob" || k != 1 {
			t.Errorf("second handler: upstream session %q x%d, want bob", v, k)
		}
		if len(setCookies(resp, "uid")) != 1 || len(setCookies(resp, "vid")) != 0 {
			t.Errorf("second handler: Set-Cookie %q, want a uid only", resp.Header.Values("Set-Cookie"))
		}
		send(hostB, pathB, "session="+signedFor(t, "session", "mallory"))
		if v, k := upstreamCookie(up.last(), "session"); k != 0 {
			t.Errorf("second handler accepted the first one's cookie: session %q", v)
		}
	}
	up := startUpstream(t, nil)
	rp := "reverse_proxy " + up.Addr + "\n"
	for _, c := range []struct{ name, site string }{
		{"exclusive_handle", "handle /a/* {\n" + sc("", a...) + rp + "}\nhandle {\n" + sc("", b...) + rp + "}\n"},
		{"exclusive_handle_path", "handle_path /a/* {\n" + sc("", a...) + rp + "}\nhandle_path /b/* {\n" + sc("", b...) + rp + "}\n"},
		{"disjoint_siblings", sc("/a/*", a...) + sc("/b/*", b...) + rp},
		{"disjoint_routes", "route /a/* {\n" + sc("", a...) + rp + "}\nroute /b/* {\n" + sc("", b...) + rp + "}\n"},
	} {
		t.Run("loads/"+c.name, func(t *testing.T) {
			ci := startCaddy(t, c.site)
			check(t, ci, up, "", "/a/x", "", "/b/x")
		})
	}
	t.Run("loads/other_host", func(t *testing.T) {
		cf, ci := caddyfileFor(t, sc("", a...)+rp)
		cf += fmt.Sprintf("\nhttp://localhost:%d {\n\tbind 127.0.0.1\n%s%s}\n", ci.Port, sc("", b...), rp)
		startCaddy(t, "", withCaddyfile(string(caddyfile.Format([]byte(cf))), ci.URL))
		check(t, ci, up, "", "/x", fmt.Sprintf("localhost:%d", ci.Port), "/x")
	})
}

// Compositions the load-time walk cannot see (handlers inside reverse_proxy's or intercept's
// handle_response routes) that conflict with the site's handler are refused per request: a
// 500, through handle_errors when there are error routes, and nothing forged gets past.
func TestCompositionRuntimeConflict(t *testing.T) {
	pairs := []struct{ name, outer, inner, why string }{
		{"session", sc("", "secret "+testSecret, "sign session a_only"), sc("", "secret "+otherSecret, "sign session b_only"),
			`both manage cookies named "session", differently`},
		{"visitor", sc("", "secret "+testSecret, "track", "sign session a_only"), sc("", "secret "+testSecret, "track uid", "sign b_only"),
			"one request path can carry one visitor cookie"},
	}
	// intercept leaves the intercepted response's header fields in place, Content-Length: 0
	// of the upstream's 404 among them, which would cut the error page's body (Caddy's doing)
	errRoute := "handle_errors {\nheader -Content-Length\nheader X-Err {err.status_code}\nheader X-Err-Msg \"{err.message}\"\nrespond \"handled\"\n}\n"
	forms := []struct {
		name   string
		status int // the first upstream's answer
		site   func(outer, inner, up, up2 string) string
	}{
		{"reverse_proxy_handle_response", 200, func(outer, inner, up, up2 string) string {
			return outer + "reverse_proxy " + up + " {\n@ok status 2xx\nhandle_response @ok {\n" + inner + "reverse_proxy " + up2 + "\n}\n}\n"
		}},
		{"intercept", 404, func(outer, inner, up, up2 string) string {
			return outer + "intercept {\n@nf status 404\nhandle_response @nf {\n" + inner + "reverse_proxy " + up2 + "\n}\n}\nreverse_proxy " + up + "\n"
		}},
	}
	for _, p := range pairs {
		for _, f := range forms {
			for _, withErrors := range []bool{false, true} {
				name := f.name + "/" + p.name
				if withErrors {
					name += "/handle_errors"
				}
				t.Run(name, func(t *testing.T) {
					up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
						w.Header().Add("Set-Cookie", "session=plain-session; Path=/")
						w.WriteHeader(f.status)
					})
					up2 := startUpstream(t, nil)
					site := f.site(p.outer, p.inner, up.Addr, up2.Addr)
					if withErrors {
						site += errRoute
					}
					ci := startCaddy(t, site)
					resp, body := get(t, http.DefaultClient, ci.URL+"/", "Cookie",
						"session=forged; a_only="+signedFor(t, "a_only", "a"))
					if withErrors {
						if resp.Header.Get("X-Err") != "500" || body != "handled" {
							t.Errorf("status %d, X-Err %q, body %q: want the 500 through handle_errors", resp.StatusCode, resp.Header.Get("X-Err"), body)
						}
						if msg := resp.Header.Get("X-Err-Msg"); !strings.Contains(msg, "a_only") || !strings.Contains(msg, "b_only") ||
							!strings.Contains(msg, p.why) {
							t.Errorf("error %q does not name both handlers and the conflict", msg)
						}
					} else if resp.StatusCode != http.StatusInternalServerError {
						t.Errorf("status %d, want 500", resp.StatusCode)
					}
					if up.count() != 1 {
						t.Fatalf("first upstream reached %d times", up.count())
					}
					r := up.last()
					if c := r.Header.Get("Cookie"); strings.Contains(c, "forged") {
						t.Errorf("first upstream got Cookie %q", c)
					}
					if v, k := upstreamCookie(r, "a_only"); v != "a" || k != 1 {
						t.Errorf("first upstream a_only %q x%d, want a once", v, k)
					}
					if up2.count() != 0 {
						t.Errorf("the conflicting handler's upstream was reached with Cookie %q", up2.last().Header.Get("Cookie"))
					}
					for _, l := range resp.Header.Values("Set-Cookie") {
						if strings.HasPrefix(l, "session=plain") || strings.HasPrefix(l, "uid=") {
							t.Errorf("Set-Cookie %q on the refused request", l)
						}
					}
				})
			}
		}
	}
}

// Conflicts the load-time walk may not follow (a path rewritten between the two handlers'
// path matchers, handlers past the 64 a walk state tracks) are never a silent pass: refused
// at load with both handlers named, or with a 500 per request before the upstream.
func TestCompositionRefusedOrRuntimeConflict(t *testing.T) {
	a := []string{"secret " + testSecret, "sign session a_only"}
	b := []string{"secret " + otherSecret, "sign session b_only"}
	var fillers strings.Builder
	for i := range 64 {
		fmt.Fprintf(&fillers, "handle /f%d/* {\n%srespond f\n}\n", i, sc("", "secret "+testSecret, fmt.Sprintf("sign filler%d", i)))
	}
	for _, c := range []struct{ name, path, site string }{
		{"handle_path_strips_prefix", "/app/x/y", sc("/app/*", a...) + "handle_path /app/* {\n" + sc("/x/*", b...) + "reverse_proxy {up}\n}\n"},
		{"uri_strip_prefix", "/app/x/y", "route {\n" + sc("/app/*", a...) + "uri strip_prefix /app\n" + sc("/x/*", b...) + "reverse_proxy {up}\n}\n"},
		{"rewrite", "/app/y", "route {\n" + sc("/app/*", a...) + "rewrite * /x{path}\n" + sc("/x/*", b...) + "reverse_proxy {up}\n}\n"},
		{"past_64_handlers", "/app/x", fillers.String() + "handle /app/* {\n" + sc("", a...) + sc("", b...) + "reverse_proxy {up}\n}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := startUpstream(t, nil)
			site := strings.ReplaceAll(c.site, "{up}", up.Addr)
			if err := loadCaddyErr(t, site); err != nil {
				if msg := err.Error(); !strings.Contains(msg, "a_only") || !strings.Contains(msg, "b_only") {
					t.Errorf("refused without naming both handlers: %v", err)
				}
				t.Logf("refused at load: %v", err)
				return
			}
			ci := startCaddy(t, site)
			resp, _ := get(t, http.DefaultClient, ci.URL+c.path, "Cookie", "session=forged; a_only="+signedFor(t, "a_only", "a"))
			if resp.StatusCode != http.StatusInternalServerError || up.count() != 0 {
				t.Errorf("loaded and passed: status %d, upstream reached %d times (Cookie %q)", resp.StatusCode, up.count(),
					func() string {
						if r := up.last(); r != nil {
							return r.Header.Get("Cookie")
						}
						return ""
					}())
			}
			t.Logf("loaded; refused per request with %d", resp.StatusCode)
		})
	}
}

// A handler whose path matcher applies to the path as rewritten before it (handle_path, a
// rewrite) runs, and loads: the walk must not call it unreachable by the original path.
func TestCompositionPathRewrites(t *testing.T) {
	h := sc("/x/*", "secret "+testSecret, "sign session")
	// In a handle block the directives are sorted: signed_cookies comes before rewrite and
	// uri, so its /x/* matcher would see the unrewritten path. A route keeps the order as
	// written, and the walk follows the rewrite.
	for _, c := range []struct{ name, site string }{
		{"handle_path", "handle_path /app/* {\n" + h + "reverse_proxy {up}\n}\n"},
		{"route_rewrite", "handle /app/* {\nroute {\nrewrite * /x{path}\n" + h + "reverse_proxy {up}\n}\n}\n"},
		{"route_uri_strip_prefix", "handle /app/* {\nroute {\nuri strip_prefix /app\n" + h + "reverse_proxy {up}\n}\n}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			up := startUpstream(t, nil)
			ci := startCaddy(t, strings.ReplaceAll(c.site, "{up}", up.Addr))
			get(t, http.DefaultClient, ci.URL+"/app/x/y", "Cookie", "session="+signedFor(t, "session", "alice"))
			if v, k := upstreamCookie(up.last(), "session"); v != "alice" || k != 1 {
				t.Errorf("upstream session %q x%d, want alice once", v, k)
			}
		})
	}
}

// A handler after one that always answers, in the same route, fails the load with an error
// that says it never runs; before it, it loads. So does one whose path matcher no request
// that reaches it can match (sorted before the rewrite it relies on).
func TestUnreachableHandlerRefused(t *testing.T) {
	h := sc("", "secret "+testSecret, "sign session")
	hx := sc("/x/*", "secret "+testSecret, "sign session")
	for _, c := range []struct{ name, site string }{
		{"sorted_before_rewrite", "handle /app/* {\nrewrite * /x{path}\n" + hx + "reverse_proxy 127.0.0.1:9\n}\n"},
		{"sorted_before_uri_strip_prefix", "handle /app/* {\nuri strip_prefix /app\n" + hx + "reverse_proxy 127.0.0.1:9\n}\n"},
		{"after_reverse_proxy", "route {\nreverse_proxy 127.0.0.1:9\n" + h + "}\n"},
		{"after_respond", "route {\nrespond \"hi\"\n" + h + "}\n"},
		{"after_reverse_proxy_in_handle", "handle /a/* {\nroute {\nreverse_proxy 127.0.0.1:9\n" + h + "}\n}\n"},
		{"after_error_in_handle_errors", "respond 404\nhandle_errors {\nroute {\nerror 500\n" + h + "}\n}\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := loadCaddyErr(t, c.site)
			if err == nil {
				t.Fatalf("loaded:\n%s", c.site)
			}
			if !strings.Contains(err.Error(), "never runs") || !strings.Contains(err.Error(), "signed_cookies {sign session}") {
				t.Errorf("error does not say which handler never runs: %v", err)
			}
		})
	}
	t.Run("before_reverse_proxy_loads", func(t *testing.T) {
		if err := loadCaddyErr(t, "route {\n"+h+"reverse_proxy 127.0.0.1:9\n}\n"); err != nil {
			t.Errorf("refused: %v", err)
		}
	})
}

// compWarnings loads a config with Caddy's log at WARN in a file, stops it and returns the log.
func compWarnings(t *testing.T, globals, top, site string) string {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	g := fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel WARN\n\t}\n\t%s", logFile, globals)
	if err := loadCaddyErr(t, site, withGlobals(g), withTop(top)); err != nil {
		t.Fatalf("loading config: %v\n%s\n%s", err, top, site)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// Every site of these configs is plain HTTP, which Caddy warns about: a log without that
	// line was not captured, and its lack of other warnings would prove nothing.
	if !strings.Contains(string(b), "HTTP/2 skipped because it requires TLS") {
		t.Fatalf("Caddy's WARN log was not captured:\n%s", b)
	}
	return string(b)
}

const secureWarning = "a cookie that needs the Secure attribute, set on a response to a plain-HTTP request"

// A cookie the module sets with the Secure attribute (or one that needs it) on a response to
// a plain-HTTP request is a warning in Caddy's log, once per cookie: only at runtime can the
// module tell a plain-HTTP site from one behind a TLS-terminating proxy. Over HTTPS, through
// a trusted proxy that says https, or for a cookie that does not need Secure, no warning.
func TestSecureOnPlainHTTPWarns(t *testing.T) {
	app := scriptedApp(map[string][]string{"/": {"pref=dark; Path=/", "plain=1; Path=/"}})
	run := func(t *testing.T, globals, lines string, proto string, hdr ...string) string {
		t.Helper()
		up := startUpstream(t, app)
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		g := fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel WARN\n\t}\n\t%s", logFile, globals)
		opts := []caddyOpt{withGlobals(g)}
		if proto != "h1" {
			opts = append(opts, withTLS())
		}
		ci := startCaddy(t, sc("", "secret "+testSecret, lines)+"reverse_proxy "+up.Addr+"\n", opts...)
		for range 3 {
			resp, _ := get(t, ci.client(t, proto), ci.url(proto)+"/", hdr...)
			if len(resp.Header.Values("Set-Cookie")) == 0 {
				t.Fatal("no Set-Cookie: nothing was set that could need Secure")
			}
		}
		_ = caddy.Stop()
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, c := range []struct{ name, lines, cookie string }{
		{"host_prefix", "track __Host-vid", "__Host-vid"},
		{"secure_prefix", "track __Secure-vid", "__Secure-vid"},
		{"same_site_none", "track {\n\t\tsame_site none\n\t}", "vid"},
		{"partitioned", "track {\n\t\tpartitioned\n\t}", "vid"},
		{"secure_on", "track {\n\t\tsecure on\n\t}", "vid"},
		{"cookie_secure", "cookie pref {\n\t\tsecure\n\t}", "pref"},
		{"cookie_prefix", "cookie pref {\n\t\tprefix __Host-\n\t}", "__Host-pref"},
		{"cookie_same_site_none", "cookie pref {\n\t\tsame_site none\n\t}", "pref"},
		{"cookie_partitioned", "cookie pref {\n\t\tpartitioned\n\t}", "pref"},
	} {
		t.Run(c.name, func(t *testing.T) {
			log := run(t, "", c.lines, "h1")
			if strings.Count(log, secureWarning) != 1 || !strings.Contains(log, `"cookie":"`+c.cookie+`"`) {
				t.Errorf("want one warning naming %s:\n%s", c.cookie, log)
			}
		})
	}
	t.Run("fixed/default_track", func(t *testing.T) {
		if log := run(t, "", "track\n\tcookie pref {\n\t\thttp_only\n\t}", "h1"); strings.Contains(log, secureWarning) {
			t.Errorf("warned for cookies that do not need Secure:\n%s", log)
		}
	})
	t.Run("fixed/trusted_proxies", func(t *testing.T) {
		log := run(t, "servers {\n\t\ttrusted_proxies static private_ranges\n\t}", "track __Host-vid", "h1", "X-Forwarded-Proto", "https")
		if strings.Contains(log, secureWarning) {
			t.Errorf("warned behind a trusted proxy that says https:\n%s", log)
		}
	})
	t.Run("fixed/https", func(t *testing.T) {
		if log := run(t, "", "track __Host-vid\n\tcookie pref {\n\t\tprefix __Host-\n\t}", "h2"); strings.Contains(log, secureWarning) {
			t.Errorf("warned over HTTPS:\n%s", log)
		}
	})
}

const sharedKeysWarning = "two handlers share keys and a cookie name without a realm"

// Handlers on different paths that share keys and a cookie name without a realm accept each
// other's cookies: a warning in Caddy's log, gone once each has its own realm.
func TestSharedKeysWithoutRealmWarns(t *testing.T) {
	pair := func(extraA, extraB string) string {
		a := []string{"secret " + testSecret, "sign session"}
		b := []string{"secret " + testSecret, "sign session"}
		if extraA != "" {
			a = append(a, extraA)
		}
		if extraB != "" {
			b = append(b, extraB)
		}
		return "handle /a/* {\n" + sc("", a...) + "respond a\n}\nhandle {\n" + sc("", b...) + "respond b\n}\n"
	}
	t.Run("warns/exclusive_handle", func(t *testing.T) {
		log := compWarnings(t, "", "", pair("", ""))
		if !strings.Contains(log, sharedKeysWarning) || !strings.Contains(log, `"cookie":"session"`) {
			t.Errorf("no warning naming the cookie:\n%s", log)
		}
	})
	t.Run("warns/other_host", func(t *testing.T) {
		cf := sc("", "secret "+testSecret, "track") + "respond a\n"
		log := compWarnings(t, "", fmt.Sprintf("http://localhost:%d {\n\tbind 127.0.0.1\n%srespond b\n}\n", freePort(t),
			sc("", "secret "+testSecret, "track")), cf)
		if !strings.Contains(log, sharedKeysWarning) || !strings.Contains(log, `"cookie":"vid"`) {
			t.Errorf("no warning naming the cookie:\n%s", log)
		}
	})
	for _, c := range []struct{ name, site string }{
		{"realms", pair("realm a", "realm b")},
		{"one_realm", pair("realm a", "")},
		{"other_secret", "handle /a/* {\n" + sc("", "secret "+testSecret, "sign session") + "respond a\n}\nhandle {\n" +
			sc("", "secret "+otherSecret, "sign session") + "respond b\n}\n"},
		{"other_names", "handle /a/* {\n" + sc("", "secret "+testSecret, "sign session") + "respond a\n}\nhandle {\n" +
			sc("", "secret "+testSecret, "sign other") + "respond b\n}\n"},
	} {
		t.Run("fixed/"+c.name, func(t *testing.T) {
			if log := compWarnings(t, "", "", c.site); strings.Contains(log, sharedKeysWarning) {
				t.Errorf("warned:\n%s", log)
			}
		})
	}
	// Two handlers composed on one path that manage a name the same way must share its keys
	// (with a realm each, the config is refused): no warning tells them to take a realm each.
	t.Run("composed_same_way", func(t *testing.T) {
		site := sc("", "secret "+testSecret, "track", "sign common") + "handle /app/* {\n" +
			sc("", "secret "+testSecret, "sign session", "sign common") + "respond ok\n}\n"
		if log := compWarnings(t, "", "", site); strings.Contains(log, sharedKeysWarning) {
			t.Errorf("warned about handlers that must share their keys:\n%s", log)
		}
		realms := sc("", "secret "+testSecret, "realm a", "track", "sign common") + "handle /app/* {\n" +
			sc("", "secret "+testSecret, "realm b", "sign session", "sign common") + "respond ok\n}\n"
		if err := loadCaddyErr(t, realms); err == nil {
			t.Errorf("the warning's advice (a realm each) loaded, want it refused")
		}
	})
}
