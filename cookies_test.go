// The cookie blocks through a real Caddy in front of real upstreams: attributes added and
// removed, Domain and Path rewritten (nginx's proxy_cookie_*), transparent __Host-/__Secure-
// prefixes, values split over several cookies, cookies held back until consent, the Flask
// legacy app behind all of it, and sticky load balancing on the visitor ID.

package signedcookies

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/nginxtest"
)

// httpsClient is newClient for startCaddyHTTPS sites. Caddy's internal CA lives in the
// test's temporary storage and is trusted nowhere, so the client skips verification.
func httpsClient(t testing.TB) *http.Client {
	t.Helper()
	c := newClient(t)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	c.Transport = tr
	return c
}

// readable returns the response's Set-Cookie lines with every value that verifies (signed
// with the test secret for that line's name) written as {plain}, so that whole lines
// compare byte for byte while the signature's timestamp varies. A value that does not
// verify stays as it is: a plain value the module should have signed shows up as plain.
func readable(t testing.TB, resp *http.Response, codec *cookie.Codec) []string {
	t.Helper()
	var out []string
	for _, l := range resp.Header.Values("Set-Cookie") {
		name, rest, _ := strings.Cut(l, "=")
		v, tail := rest, ""
		if i := strings.IndexByte(rest, ';'); i >= 0 {
			v, tail = rest[:i], rest[i:]
		}
		if v != "" {
			if d, err := codec.Decode(name, v); err == nil {
				l = name + "={" + string(d.Value) + "}" + tail
			}
		}
		out = append(out, l)
	}
	return out
}

func sameLines(t testing.TB, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: Set-Cookie lines\n got: %q\nwant: %q", what, got, want)
	}
}

// cookieHeader is the Cookie header the upstream last received, "" when it had none.
func cookieHeader(u *upstream) string {
	return strings.Join(u.last().Header.Values("Cookie"), "; ")
}

// Attributes, Domain and Path, on managed and unmanaged names, globs and deletions; every
// byte the rule does not name stays as the upstream wrote it.
func TestCookieRuleAttributes(t *testing.T) {
	const expired = "Thu, 01 Jan 1970 00:00:00 GMT"
	up := startUpstream(t, scriptedApp(map[string][]string{
		"/set": {
			"session=alice; Path=/app/cart; Domain=example.COM; Partitioned; SameSite=None; Max-Age=3600; Priority=High",
			"theme=dark;path=/app;  domain=.example.com;secure",
			"theme=light; Domain=other.example; Path=/else",
			"ui_lang=en; Path=/; Secure; HttpOnly; SameSite=Lax",
			"gone=1; Domain=example.com; Path=/app/x",
			"other=keep;  Path=/app ; Domain=example.com;HttpOnly",
		},
		"/logout": {
			"session=; Path=/app/cart; Domain=example.com; Max-Age=0",
			"session=stale; Path=/app; Domain=example.com; Expires=" + expired,
			"theme=deleted; Path=/app; Domain=.example.com; Expires=" + expired,
			"ui_lang=; Path=/; Secure; Max-Age=0",
			"gone=; Domain=example.com; Path=/app/x; Max-Age=0",
			"other=; Path=/app; Domain=example.com; Max-Age=0",
		},
	}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie session theme {
			secure
			http_only
			same_site strict
			-partitioned
			domain .Example.com shop.test
			path /app /shop
		}
		cookie ui_* {
			-secure
			-http_only
			-same_site
			-partitioned
		}
		cookie gone {
			domain example.com -
			path /app /
		}`))
	codec := signCodec(t)

	resp, _ := get(t, http.DefaultClient, ci.URL+"/set")
	sameLines(t, "set", readable(t, resp, codec), []string{
		// managed: signed, and edited in place; what the rule adds goes at the end
		"session={alice}; Path=/shop/cart; Domain=shop.test; SameSite=Strict; Max-Age=3600; Priority=High; Secure; HttpOnly",
		// unmanaged: the value as it was; a Secure already there stays as written
		"theme=dark; Path=/shop; Domain=shop.test;secure; HttpOnly; SameSite=Strict",
		// another Domain and a Path outside the prefix are not rewritten
		"theme=light; Domain=other.example; Path=/else; Secure; HttpOnly; SameSite=Strict",
		"ui_lang=en; Path=/",
		// Domain removed; "/app" → "/" turns /app/x into /x
		"gone=1; Path=/x",
		// no rule: untouched, spacing and all
		"other=keep;  Path=/app ; Domain=example.com;HttpOnly",
	})

	// Deletions get the same rewrites, or they would not match the cookie they delete.
	resp, _ = get(t, http.DefaultClient, ci.URL+"/logout")
	sameLines(t, "logout", readable(t, resp, codec), []string{
		"session=; Path=/shop/cart; Domain=shop.test; Max-Age=0; Secure; HttpOnly; SameSite=Strict",
		"session=stale; Path=/shop; Domain=shop.test; Expires=" + expired + "; Secure; HttpOnly; SameSite=Strict",
		"theme=deleted; Path=/shop; Domain=shop.test; Expires=" + expired + "; Secure; HttpOnly; SameSite=Strict",
		"ui_lang=; Path=/; Max-Age=0",
		"gone=; Path=/x; Max-Age=0",
		"other=; Path=/app; Domain=example.com; Max-Age=0",
	})

	// On the way in a rule changes nothing of an unmanaged value; a managed one is verified.
	get(t, http.DefaultClient, ci.URL+"/", "Cookie", "theme=dark; ui_lang=en; session="+signedFor(t, "session", "alice")+"; gone=1")
	if got := cookieHeader(up); got != "theme=dark; ui_lang=en; session=alice; gone=1" {
		t.Errorf("upstream Cookie %q", got)
	}
}

// nginx's proxy_cookie_domain, proxy_cookie_path and proxy_cookie_flags and the cookie
// blocks the README gives as their equivalents do the same to the same app: the real nginx
// and Caddy in front of one upstream, each line compared as a browser reads it. (Where they
// differ on purpose, the test says so: nginx turns "/app/x" under "proxy_cookie_path /app /"
// into "//x", and has no way to remove Domain; a block does both.)
func TestCookieRuleAgreesWithNginx(t *testing.T) {
	lines := []string{
		"session=alice; Path=/app/cart; Domain=example.COM; SameSite=None; Max-Age=3600",
		"theme=dark;path=/app;  domain=.example.com;secure",
		"gone=1; Domain=example.com; Path=/app/x; HttpOnly",
		"a=1; Path=/APP/x",
		"b=1; Path=/application",
		"d=1",
		"e=1; Domain=sub.example.com; SameSite=Lax",
		"theme=; Path=/app; Domain=.example.com; Max-Age=0",
	}
	up := startUpstream(t, scriptedApp(map[string][]string{"/": lines}))
	nginx := nginxtest.Start(t, `
		location / {
			proxy_pass http://`+up.Addr+`;
			proxy_cookie_domain example.com shop.test;
			proxy_cookie_path /app /shop;
			proxy_cookie_flags session nohttponly samesite=lax;
			proxy_cookie_flags ~ secure httponly samesite=strict;
		}`)
	// In nginx the three directives apply independently; a cookie's block holds all it
	// does, and the most specific block applies alone, so session's repeats the rewrites.
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign unrelated
		cookie session {
			-http_only
			same_site lax
			domain example.com shop.test
			path /app /shop
		}
		cookie * {
			secure
			http_only
			same_site strict
			domain example.com shop.test
			path /app /shop
		}`))
	// as a browser reads a line: a leading dot of Domain means nothing (RFC 6265 5.2.3)
	read := func(base string) []string {
		resp, _ := get(t, http.DefaultClient, base+"/")
		var out []string
		for _, l := range resp.Header.Values("Set-Cookie") {
			c, err := http.ParseSetCookie(l)
			if err != nil {
				t.Fatalf("%s: Set-Cookie %q: %v", base, l, err)
			}
			out = append(out, fmt.Sprintf("%s=%s path=%q domain=%q max-age=%d secure=%v httponly=%v samesite=%d",
				c.Name, c.Value, c.Path, strings.ToLower(strings.TrimPrefix(c.Domain, ".")), c.MaxAge, c.Secure, c.HttpOnly, c.SameSite))
		}
		return out
	}
	fromNginx, fromCaddy := read(nginx), read(ci.URL)
	if len(fromNginx) != len(lines) || !slices.Equal(fromNginx, fromCaddy) {
		t.Errorf("the same app through nginx and through Caddy:\nnginx: %q\ncaddy: %q", fromNginx, fromCaddy)
	}
}

// Where several blocks match a name, one applies (they do not merge): a literal name before
// any glob, a glob with more literal characters before one with fewer, then the first
// configured. The config is JSON, as the admin API would receive it.
func TestCookieRuleMostSpecificWins(t *testing.T) {
	names := []string{"session", "sessionx", "sx", "sesion", "legion", "tie_x_tie", "two_x_two", "plain"}
	var lines []string
	for _, n := range names {
		lines = append(lines, n+"=v; Path=/")
	}
	up := startUpstream(t, scriptedApp(map[string][]string{"/": lines}))
	on := true
	rules := []CookieRule{
		{Names: []string{"s*"}, SameSite: "strict"},
		{Names: []string{"session"}, SameSite: "lax"},             // a literal beats every glob, configured later or not
		{Names: []string{"sess*"}, SameSite: "none", Secure: &on}, // 4 literal characters beat s*'s 1
		{Names: []string{"*ion"}, HTTPOnly: &on},                  // 3 beat s*'s 1: sesion, legion
		{Names: []string{"tie_*"}, SameSite: "strict"},            // 4 and 4: the first,
		{Names: []string{"*_tie"}, SameSite: "lax"},               //
		{Names: []string{"*_two"}, SameSite: "strict"},            // whichever side its star is on
		{Names: []string{"two_*"}, SameSite: "lax"},               //
	}
	ci := startCaddy(t, "", withJSON(&Handler{Secrets: []string{testSecret}, Sign: []string{"unrelated"}, Cookie: rules},
		map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": up.Addr}}}))
	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	sameLines(t, "most specific", resp.Header.Values("Set-Cookie"), []string{
		"session=v; Path=/; SameSite=Lax",
		"sessionx=v; Path=/; Secure; SameSite=None",
		"sx=v; Path=/; SameSite=Strict",
		"sesion=v; Path=/; HttpOnly",
		"legion=v; Path=/; HttpOnly",
		"tie_x_tie=v; Path=/; SameSite=Strict",
		"two_x_two=v; Path=/; SameSite=Strict",
		"plain=v; Path=/",
	})
	// A literal name in two blocks would make one of them dead: refused, naming both.
	dup := append(rules, CookieRule{Names: []string{"dup"}, SameSite: "strict"}, CookieRule{Names: []string{"dup", "other"}, SameSite: "lax"})
	err := loadCaddyErr(t, "", withJSON(&Handler{Secrets: []string{testSecret}, Sign: []string{"unrelated"}, Cookie: dup}))
	if err == nil || !strings.Contains(err.Error(), `cookie dup other: "dup" already has a rule in cookie dup`) {
		t.Errorf("a literal name in two blocks: %v", err)
	}
}

// prefixApp is the app of the prefix tests: it sets and deletes session (managed), legacy
// and pref (not), with attributes a prefixed cookie may not have.
var prefixApp = scriptedApp(map[string][]string{
	"/login": {
		"session=alice; Path=/app; Domain=localhost; HttpOnly",
		"legacy=plain-v; Path=/x; Domain=.localhost",
		"pref=dark; Path=/; Domain=localhost",
	},
	"/logout": {
		"session=; Path=/app; Max-Age=0",
		"legacy=; Path=/x; Domain=.localhost; Max-Age=0",
		"pref=; Path=/; Domain=localhost; Max-Age=0",
	},
})

// The app sets and reads session; the browser holds __Host-session, Secure, Path=/ and no
// Domain, whatever the app wrote. Signed (the MAC covers the prefixed name) or not.
func TestCookieRulePrefix(t *testing.T) {
	up := startUpstream(t, prefixApp)
	ci := startCaddyHTTPS(t, ruleSite(up.Addr, `
		sign session
		cookie session legacy {
			prefix __Host-
		}
		cookie pref {
			prefix __Secure-
		}`))
	codec := signCodec(t)
	c := httpsClient(t)

	resp, _ := get(t, c, ci.URL+"/login")
	sameLines(t, "login", readable(t, resp, codec), []string{
		"__Host-session={alice}; Path=/; HttpOnly; Secure",
		"__Host-legacy=plain-v; Path=/; Secure",
		"__Secure-pref=dark; Path=/; Domain=localhost; Secure",
	})
	if v := jarValue(t, c, ci.URL, "__Host-session"); v != "" {
		if _, err := codec.Decode("session", v); err == nil {
			t.Errorf("__Host-session verifies under the name session: the MAC must cover the name the browser holds")
		}
	}

	// The jar sends the prefixed cookies back; the app reads its own names.
	get(t, c, ci.URL+"/read")
	r := up.last()
	for name, want := range map[string]string{"session": "alice", "legacy": "plain-v", "pref": "dark"} {
		if v, n := upstreamCookie(r, name); v != want || n != 1 {
			t.Errorf("upstream %s = %q (x%d), want %q once", name, v, n, want)
		}
	}
	if got := cookieHeader(up); strings.Contains(got, "__Host-") || strings.Contains(got, "__Secure-") {
		t.Errorf("upstream Cookie %q carries a prefixed name", got)
	}

	// A sibling subdomain can set a plain session; it never reaches the app, alone or next
	// to the prefixed one (before or after it), and the prefixed one wins.
	hostSession := jarValue(t, c, ci.URL, "__Host-session")
	for _, tc := range []struct{ cookies, session, legacy string }{
		{"session=tossed; legacy=tossed", "", ""},
		{"session=tossed; __Host-session=" + hostSession + "; legacy=tossed; __Host-legacy=plain-v", "alice", "plain-v"},
		{"__Host-session=" + hostSession + "; session=tossed; __Host-legacy=plain-v; legacy=tossed", "alice", "plain-v"},
		// the plain name's value signed for the plain name: not the prefixed cookie either
		{"session=" + signedFor(t, "session", "mallory"), "", ""},
		{"__Host-session=" + signedFor(t, "session", "mallory"), "", ""},
		{"__Host-session=alice", "", ""},
	} {
		get(t, httpsClient(t), ci.URL+"/read", "Cookie", tc.cookies)
		r := up.last()
		for name, want := range map[string]string{"session": tc.session, "legacy": tc.legacy} {
			v, n := upstreamCookie(r, name)
			if want == "" && n != 0 || want != "" && (v != want || n != 1) {
				t.Errorf("Cookie %q: upstream %s = %q (x%d), want %q", tc.cookies, name, v, n, want)
			}
		}
		if strings.Contains(cookieHeader(up), "tossed") || strings.Contains(cookieHeader(up), "mallory") {
			t.Errorf("Cookie %q: the upstream got %q", tc.cookies, cookieHeader(up))
		}
	}

	// The app's deletions delete the cookies the browser holds: same name, Path, no Domain.
	resp, _ = get(t, c, ci.URL+"/logout")
	sameLines(t, "logout", resp.Header.Values("Set-Cookie"), []string{
		"__Host-session=; Path=/; Max-Age=0; Secure",
		"__Host-legacy=; Path=/; Max-Age=0; Secure",
		"__Secure-pref=; Path=/; Domain=localhost; Max-Age=0; Secure",
	})
	u, _ := url.Parse(ci.URL)
	if left := c.Jar.Cookies(u); len(left) != 0 {
		t.Errorf("after the app's logout the jar still holds %v", left)
	}
}

// A prefix on a cookie the module does not sign is all that keeps a sibling subdomain's
// cookie from the app, so a tossed cookie that some parser reads as the app's name must go
// as well: the look-alikes the module drops for managed names (a case variant, which
// ASP.NET reads; name[x] and %-escapes, which PHP reads; a pair hidden after ',' or a space,
// which ASP.NET Core, old Rack and Python's SimpleCookie split out). The managed session
// next to it shows the same set dropped.
func TestCookieRulePrefixUnmanagedLookalikes(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie session legacy {
			prefix __Host-
		}`))
	session := signedFor(t, "__Host-session", "alice")
	for _, name := range []string{"session", "legacy"} {
		real := "__Host-legacy=real"
		want := "legacy=real"
		if name == "session" {
			real, want = "__Host-session="+session, "session=alice"
		}
		upper := strings.ToUpper(name[:1]) + name[1:]
		for _, tossed := range []string{
			upper + "=tossed",
			name + "[x]=tossed",
			fmt.Sprintf("%%%02x", name[0]) + name[1:] + "=tossed",
			"x=1," + name + "=tossed",
			"x=1 " + name + "=tossed",
		} {
			get(t, http.DefaultClient, ci.URL+"/", "Cookie", tossed+"; "+real)
			if got := cookieHeader(up); got != want {
				t.Errorf("Cookie %q: upstream Cookie %q, want %q", tossed+"; "+real, got, want)
			}
		}
	}
}

// The combinations a prefix forbids fail the config load, Caddyfile or JSON, naming the
// prefix and the setting; the ones it allows load. So do the other rules a block breaks.
func TestCookieRuleConfigErrors(t *testing.T) {
	block := func(lines string) string {
		return ruleSite("127.0.0.1:9", "\t\tsign session\n\t\tcookie session {\n"+lines+"\n\t\t}")
	}
	for _, tc := range []struct {
		site string
		want []string // in the error; none: it loads
	}{
		{block("prefix __Host-\n-secure"), []string{"session", "__Host-", "-secure"}},
		{block("prefix __Secure-\n-secure"), []string{"session", "__Secure-", "-secure"}},
		{block("prefix __Host-\ndomain example.com shop.test"), []string{"session", "__Host-", "domain"}},
		{block("prefix __Host-\npath /app /shop"), []string{"session", "__Host-", "path"}},
		{block("prefix __host-"), []string{"prefix", "__host-"}},
		{block("prefix __Host-\ndomain example.com -\npath /app /"), nil},
		{block("prefix __Secure-\ndomain example.com shop.test\npath /app /shop"), nil},
		{block("prefix __Host-\nsecure\nhttp_only\nsame_site strict"), nil},
		{block("same_site none\n-secure"), []string{"same_site", "-secure"}},
		{block("path app /shop"), []string{"path"}},
		// a glob never matches the visitor cookie, whose attributes track sets; a literal is refused
		{ruleSite("127.0.0.1:9", "track\ncookie v* {\nsecure\n}"), nil},
		{ruleSite("127.0.0.1:9", "track\ncookie vid {\nsecure\n}"), []string{"vid", "visitor cookie"}},
		{ruleSite("127.0.0.1:9", "sign session\ncookie other {\nsplit\n}"), []string{"split", "other"}},
		{ruleSite("127.0.0.1:9", "track\ncookie _ga {\nneeds_consent\n}"), []string{"needs_consent", "consent", "honor_gpc"}},
	} {
		err := loadCaddyErr(t, tc.site)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%q: %v, want it to load", tc.site, err)
		case tc.want != nil && err == nil:
			t.Errorf("%q loaded, want an error naming %q", tc.site, tc.want)
		case err != nil:
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q: error %q does not name %q", tc.site, err, w)
				}
			}
		}
	}
	// JSON: the same check at Provision.
	off := false
	for _, r := range []CookieRule{
		{Names: []string{"session"}, Prefix: "__Host-", Secure: &off},
		{Names: []string{"session"}, Prefix: "__Host-", Path: &Rewrite{From: "/", To: "/app"}},
	} {
		js, _ := json.Marshal(&Handler{Secrets: []string{testSecret}, Sign: []string{"session"}, Cookie: []CookieRule{r}})
		h := new(Handler)
		if err := json.Unmarshal(js, h); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := h.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "__Host-") {
			t.Errorf("JSON %s: Provision error %v, want one naming __Host-", js, err)
		}
	}
}

// splitPairs returns the name=value pairs the response sets for name and its chunks (not
// deletions), checking each against the browser's 4096-byte limit.
func splitPairs(t testing.TB, resp *http.Response, name string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range resp.Header.Values("Set-Cookie") {
		pair, attrs, _ := strings.Cut(l, ";")
		k, v, _ := strings.Cut(pair, "=")
		if (k == name || strings.HasPrefix(k, name+"__")) && v != "" && !strings.Contains(attrs, "Max-Age=0") {
			if len(k)+len(v) > 4096 {
				t.Errorf("%s: %d bytes of name and value, more than a browser keeps", k, len(k)+len(v))
			}
			out[k] = v
		}
	}
	return out
}

// pairsHeader renders pairs as a Cookie header, in the order of names.
func pairsHeader(pairs map[string]string, names ...string) string {
	var parts []string
	for _, n := range names {
		parts = append(parts, n+"="+pairs[n])
	}
	return strings.Join(parts, "; ")
}

// largeHeaders are global options with room for 8 chunks in a request: Caddy's default
// max_header_size (16 KB) is less than a split value may take (see
// TestCookieRuleSplitFitsDefaultHeaderLimit).
const largeHeaders = quietLog + "\n\tservers {\n\t\tmax_header_size 64KB\n\t}"

// A value too long for one cookie travels in several and reaches the upstream whole; the
// longest takes 8; stale chunks are cleared when the value shrinks or is deleted.
func TestCookieRuleSplit(t *testing.T) {
	values := map[string]string{
		"/eight": randomText(plainForChunks(t, "session", 8), 8),
		"/four":  randomText(plainForChunks(t, "session", 4), 4),
		"/two":   randomText(plainForChunks(t, "session", 2), 2),
		"/one":   "short",
	}
	routes := map[string][]string{"/del": {"session=; Path=/; Max-Age=0"}}
	for path, v := range values {
		routes[path] = []string{"session=" + v + "; Path=/; HttpOnly"}
	}
	up := startUpstream(t, scriptedApp(routes))
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie session {
			split 8
		}`), withGlobals(largeHeaders))
	u, _ := url.Parse(ci.URL)
	c := newClient(t)
	held := func() []string {
		var names []string
		for _, ck := range c.Jar.Cookies(u) {
			names = append(names, ck.Name)
		}
		slices.Sort(names)
		return names
	}
	chunkNames := func(k int) []string {
		names := []string{"session"}
		for i := 1; i < k; i++ {
			names = append(names, fmt.Sprintf("session__%d", i))
		}
		return names
	}

	for _, step := range []struct {
		path   string
		chunks int
	}{{"/eight", 8}, {"/four", 4}, {"/two", 2}, {"/eight", 8}, {"/one", 1}} {
		resp, _ := get(t, c, ci.URL+step.path)
		if got := splitPairs(t, resp, "session"); len(got) != step.chunks {
			t.Errorf("%s: %d cookies set, want %d: %q", step.path, len(got), step.chunks, resp.Header.Values("Set-Cookie"))
		}
		for _, l := range resp.Header.Values("Set-Cookie") {
			if !strings.HasSuffix(l, "; Path=/; HttpOnly") && !strings.HasSuffix(l, "; Path=/; HttpOnly; Max-Age=0") {
				t.Errorf("%s: line %.60q… lost the app's attributes", step.path, l)
			}
		}
		if got := held(); !slices.Equal(got, chunkNames(step.chunks)) {
			t.Errorf("after %s the jar holds %q, want %q (stale chunks cleared)", step.path, got, chunkNames(step.chunks))
		}
		get(t, c, ci.URL+"/read")
		if v, n := upstreamCookie(up.last(), "session"); v != values[step.path] || n != 1 {
			t.Errorf("after %s the upstream got session of %d bytes (x%d), want the %d bytes set", step.path, len(v), n, len(values[step.path]))
		}
		if strings.Contains(cookieHeader(up), "session__") {
			t.Errorf("after %s the upstream got chunk cookies", step.path)
		}
	}

	// Deleted: the value and whatever chunks a browser could hold go.
	get(t, c, ci.URL+"/eight")
	resp, _ := get(t, c, ci.URL+"/del")
	var deleted []string
	for _, l := range resp.Header.Values("Set-Cookie") {
		name, attrs, _ := strings.Cut(l, "=;")
		if !strings.HasPrefix(attrs, " Path=/; Max-Age=0") {
			t.Errorf("deletion line %q: want an empty value, Path=/ and Max-Age=0", l)
		}
		deleted = append(deleted, name)
	}
	if !slices.Equal(deleted, chunkNames(8)) {
		t.Errorf("the deletion deletes %q, want %q", deleted, chunkNames(8))
	}
	if got := held(); len(got) != 0 {
		t.Errorf("after the deletion the jar holds %q", got)
	}
}

// Chunks verify only as the whole they were cut from: swapped between two values, renamed,
// reordered, mixed from two versions, incomplete or headless, the value is absent, never
// wrong, and no chunk reaches the upstream as a cookie of its own.
func TestCookieRuleSplitTampering(t *testing.T) {
	n := plainForChunks(t, "sb", 3)
	values := map[string]string{"/a1": randomText(n, 1), "/a2": randomText(n, 2), "/b1": randomText(n, 3)}
	up := startUpstream(t, scriptedApp(map[string][]string{
		"/a1": {"sa=" + values["/a1"] + "; Path=/"},
		"/a2": {"sa=" + values["/a2"] + "; Path=/"},
		"/b1": {"sb=" + values["/b1"] + "; Path=/"},
	}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign sa sb
		cookie sa sb {
			split
		}`), withGlobals(largeHeaders))
	mint := func(path, name string) map[string]string {
		resp, _ := get(t, http.DefaultClient, ci.URL+path)
		p := splitPairs(t, resp, name)
		if len(p) != 3 {
			t.Fatalf("%s: %d cookies, want 3", path, len(p))
		}
		return p
	}
	a1, a2, b1 := mint("/a1", "sa"), mint("/a2", "sa"), mint("/b1", "sb")

	// Whole sets, in any order a browser sends them, verify.
	for _, h := range []string{
		pairsHeader(a1, "sa", "sa__1", "sa__2"),
		pairsHeader(a1, "sa__2", "sa__1", "sa"),
		pairsHeader(a1, "sa__1", "sa", "sa__2") + "; " + pairsHeader(b1, "sb__2", "sb", "sb__1"),
	} {
		get(t, http.DefaultClient, ci.URL+"/read", "Cookie", h)
		if v, n := upstreamCookie(up.last(), "sa"); v != values["/a1"] || n != 1 {
			t.Errorf("a whole set (%d bytes of header): upstream sa of %d bytes (x%d)", len(h), len(v), n)
		}
	}
	if v, _ := upstreamCookie(up.last(), "sb"); v != values["/b1"] {
		t.Errorf("sb next to sa: upstream sb of %d bytes", len(v))
	}

	mixed := func(parts ...string) string { return strings.Join(parts, "; ") }
	bHead, _ := strings.CutPrefix(b1["sb"], "3*")
	for what, h := range map[string]string{
		"a chunk of another value":     mixed("sa="+a1["sa"], "sa__1="+b1["sb__1"], "sa__2="+a1["sa__2"]),
		"another value's set, renamed": mixed("sa="+b1["sb"], "sa__1="+b1["sb__1"], "sa__2="+b1["sb__2"]),
		"chunks reordered":             mixed("sa="+a1["sa"], "sa__1="+a1["sa__2"], "sa__2="+a1["sa__1"]),
		"head of one version":          mixed("sa="+a1["sa"], "sa__1="+a2["sa__1"], "sa__2="+a2["sa__2"]),
		"a chunk of the other version": mixed("sa="+a2["sa"], "sa__1="+a1["sa__1"], "sa__2="+a2["sa__2"]),
		"a chunk missing":              mixed("sa="+a1["sa"], "sa__1="+a1["sa__1"]),
		"the head missing":             mixed("sa__1="+a1["sa__1"], "sa__2="+a1["sa__2"]),
		"the head's count changed":     mixed("sa=2*"+strings.TrimPrefix(a1["sa"], "3*"), "sa__1="+a1["sa__1"]),
		"the head without its count":   mixed("sa="+strings.TrimPrefix(a1["sa"], "3*"), "sa__1="+a1["sa__1"], "sa__2="+a1["sa__2"]),
		"another value's head":         mixed("sa=3*"+bHead, "sa__1="+a1["sa__1"], "sa__2="+a1["sa__2"]),
	} {
		get(t, http.DefaultClient, ci.URL+"/read", "Cookie", h+"; keep=1")
		got := cookieHeader(up)
		if v, n := upstreamCookie(up.last(), "sa"); n != 0 {
			t.Errorf("%s: the upstream got sa of %d bytes, want none", what, len(v))
		}
		if got != "keep=1" {
			t.Errorf("%s: upstream Cookie %.80q…, want keep=1", what, got)
		}
	}
}

// The cookies the module sets must come back: a request carrying the longest split value
// has to fit the request header limit of the server that set it, Caddy's default one
// included (max_header_size 16 KB; Go's server allows 4 KB more). Past it every request of
// the visitor fails with 431 before any handler runs, so nothing clears the cookies: the
// visitor is locked out of the site until they expire.
func TestCookieRuleSplitFitsDefaultHeaderLimit(t *testing.T) {
	values, routes := map[int]string{}, map[string][]string{}
	for k := 2; k <= 8; k++ {
		values[k] = randomText(plainForChunks(t, "session", k), uint64(k))
		routes[fmt.Sprintf("/set%d", k)] = []string{"session=" + values[k] + "; Path=/"}
	}
	up := startUpstream(t, scriptedApp(routes))
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie session {
			split
		}`))
	for k := 2; k <= 8; k++ {
		c := newClient(t)
		if resp, _ := get(t, c, ci.URL+fmt.Sprintf("/set%d", k)); len(splitPairs(t, resp, "session")) == 0 {
			continue // not set at all: nothing to send back
		}
		resp, _ := get(t, c, ci.URL+"/read")
		if v, _ := upstreamCookie(up.last(), "session"); resp.StatusCode != http.StatusOK || v != values[k] {
			t.Errorf("a value split in %d cookies: the next request got %d, the upstream %d bytes of the %d set", k, resp.StatusCode, len(v), len(values[k]))
		}
	}
}

// A value too long even for 8 chunks is dropped and counted, never sent unsigned.
func TestCookieRuleSplitTooLong(t *testing.T) {
	longest := plainForChunks(t, "session", 8)
	tooLong := longest + 1
	for signCodec(t).EncodedLen(tooLong) <= splitMaxLength {
		tooLong++
	}
	up := startUpstream(t, scriptedApp(map[string][]string{
		"/longest":  {"session=" + randomText(longest, 1) + "; Path=/"},
		"/too-long": {"session=" + randomText(tooLong, 2) + "; Path=/", "kept=1; Path=/"},
		"/huge":     {"session=" + randomText(100_000, 3) + "; Path=/"},
	}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		cookie session {
			split 8
		}`), withGlobals("metrics"))
	before := scrapeMetrics(t, ci.AdminAddr)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/longest")
	if got := len(splitPairs(t, resp, "session")); got != 8 {
		t.Errorf("the longest value (%d bytes) took %d cookies, want 8", longest, got)
	}
	for _, path := range []string{"/too-long", "/huge"} {
		resp, _ = get(t, http.DefaultClient, ci.URL+path)
		for _, l := range resp.Header.Values("Set-Cookie") {
			if strings.HasPrefix(l, "session") {
				t.Errorf("%s: Set-Cookie %.80q… sent for a value too long", path, l)
			}
		}
	}
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("/huge: Set-Cookie %q", got)
	}
	after := scrapeMetrics(t, ci.AdminAddr)
	if k := `caddy_signed_cookies_dropped_total{reason="too_long"}`; after[k]-before[k] != 2 {
		t.Errorf("%s grew by %v, want 2", k, after[k]-before[k])
	}
	if k := "caddy_signed_cookies_signed_total"; after[k]-before[k] != 1 {
		t.Errorf("%s grew by %v, want 1", k, after[k]-before[k])
	}
}

// needs_consent: without the consent cookie the app's Set-Cookie lines for these names are
// dropped and the browser's values not forwarded; with it, both pass (a managed one signed
// and verified as usual).
func TestCookieRuleNeedsConsent(t *testing.T) {
	up := startUpstream(t, scriptedApp(map[string][]string{
		"/set": {"_ga=GA1.2.3; Path=/", "prefs=dark; Path=/", "other=1; Path=/"},
	}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			consent cookie_ok=yes
		}
		sign prefs
		cookie _ga* {
			needs_consent
		}
		cookie prefs {
			needs_consent
		}`))
	codec := signCodec(t)
	prefs := signedFor(t, "prefs", "dark")
	stored := "_ga=GA1.2.3; prefs=" + prefs + "; other=1"
	for _, tc := range []struct {
		consent  string
		given    bool
		upstream string
	}{
		{"", false, "other=1"},
		{"cookie_ok=no; ", false, "cookie_ok=no; other=1"},
		{"cookie_ok=yes; ", true, "cookie_ok=yes; _ga=GA1.2.3; prefs=dark; other=1"},
	} {
		resp, _ := get(t, http.DefaultClient, ci.URL+"/set", "Cookie", strings.TrimSuffix(tc.consent, "; "))
		var names []string
		for _, l := range readable(t, resp, codec) {
			name, _, _ := strings.Cut(l, "=")
			names = append(names, name)
			if strings.HasPrefix(l, "prefs=") && !strings.HasPrefix(l, "prefs={dark}") {
				t.Errorf("consent %q: prefs left unsigned: %q", tc.consent, l)
			}
		}
		want := []string{"other"}
		if tc.given {
			want = []string{"_ga", "prefs", "other", "vid"}
		}
		if !slices.Equal(names, want) {
			t.Errorf("consent %q: Set-Cookie for %q, want %q", tc.consent, names, want)
		}
		get(t, http.DefaultClient, ci.URL+"/read", "Cookie", tc.consent+stored)
		got := cookieHeader(up)
		if tc.given {
			got = strings.Join(strings.Split(got, "; ")[:4], "; ") // then the new visitor ID
		}
		if got != tc.upstream {
			t.Errorf("consent %q: upstream Cookie %q, want %q", tc.consent, got, tc.upstream)
		}
	}
}

// honor_gpc is a gate too: Sec-GPC: 1 holds the cookies back both ways.
func TestCookieRuleNeedsConsentGPC(t *testing.T) {
	up := startUpstream(t, scriptedApp(map[string][]string{"/set": {"_ga=GA1.2.3; Path=/"}}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			honor_gpc
		}
		cookie _ga {
			needs_consent
		}`))
	for _, gpc := range []bool{true, false} {
		hdr := []string{"Cookie", "_ga=GA1.2.3"}
		if gpc {
			hdr = append(hdr, "Sec-GPC", "1")
		}
		resp, _ := get(t, http.DefaultClient, ci.URL+"/set", hdr...)
		if got := len(setCookies(resp, "_ga")); got != map[bool]int{true: 0, false: 1}[gpc] {
			t.Errorf("Sec-GPC %v: %d Set-Cookie lines for _ga", gpc, got)
		}
		if _, n := upstreamCookie(up.last(), "_ga"); n != map[bool]int{true: 0, false: 1}[gpc] {
			t.Errorf("Sec-GPC %v: the upstream got _ga %d times", gpc, n)
		}
	}
}

// A cookie set while consent was given stays in the browser once it is withdrawn; the app's
// deletion of it must reach the browser (it stores nothing), or the cookie lingers where the
// page's scripts still read it.
func TestCookieRuleNeedsConsentDeletionPasses(t *testing.T) {
	up := startUpstream(t, scriptedApp(map[string][]string{"/forget": {"_ga=; Path=/; Max-Age=0"}}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			consent cookie_ok
		}
		cookie _ga {
			needs_consent
		}`))
	resp, _ := get(t, http.DefaultClient, ci.URL+"/forget", "Cookie", "_ga=GA1.2.3")
	if got := setCookies(resp, "_ga"); !slices.Equal(got, []string{"_ga=; Path=/; Max-Age=0"}) {
		t.Errorf("without consent the app's deletion of _ga became %q, want it sent", got)
	}
}

// A split value that needs consent is held back like any other: all its chunks.
func TestCookieRuleNeedsConsentSplit(t *testing.T) {
	value := randomText(plainForChunks(t, "big", 3), 1)
	up := startUpstream(t, scriptedApp(map[string][]string{"/set": {"big=" + value + "; Path=/"}}))
	ci := startCaddy(t, ruleSite(up.Addr, `
		track {
			consent cookie_ok
		}
		sign big
		cookie big {
			split
			needs_consent
		}`))
	resp, _ := get(t, http.DefaultClient, ci.URL+"/set", "Cookie", "cookie_ok=1")
	pairs := splitPairs(t, resp, "big")
	if len(pairs) != 3 {
		t.Fatalf("with consent: %d cookies for big, want 3", len(pairs))
	}
	stored := pairsHeader(pairs, "big", "big__1", "big__2")
	get(t, http.DefaultClient, ci.URL+"/read", "Cookie", "cookie_ok=1; "+stored)
	if v, _ := upstreamCookie(up.last(), "big"); v != value {
		t.Errorf("with consent: upstream big of %d bytes, want the %d set", len(v), len(value))
	}
	get(t, http.DefaultClient, ci.URL+"/read", "Cookie", stored)
	if v, n := upstreamCookie(up.last(), "big"); n != 0 {
		t.Errorf("without consent the upstream got big (%d bytes): a split value skips the consent gate", len(v))
	}
	resp, _ = get(t, http.DefaultClient, ci.URL+"/set")
	if got := resp.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("without consent: %d Set-Cookie lines", len(got))
	}
}

// The Flask legacy app behind a prefix and attribute edits, over HTTPS: my_cookie leaves as
// __Host-my_cookie with the attributes configured, and the app reads my_cookie again; a
// plain my_cookie tossed in never reaches it. Signed, and not.
func TestCookieRuleFlask(t *testing.T) {
	app := startFlask(t)
	for _, tc := range []struct {
		name, config, line string
		signed             bool
	}{
		{"signed", `
		track
		sign my_cookie
		cookie my_cookie {
			prefix __Host-
			http_only
			same_site strict
		}`, "__Host-my_cookie={my_value}; Path=/; Secure; HttpOnly; SameSite=Strict", true},
		{"unmanaged", `
		track
		cookie my_cookie {
			prefix __Host-
			same_site lax
			partitioned
		}`, "__Host-my_cookie=my_value; Path=/; Secure; SameSite=Lax; Partitioned", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci := startCaddyHTTPS(t, ruleSite(app.Addr, tc.config))
			c := httpsClient(t)
			resp, body := get(t, c, ci.URL+"/")
			if !strings.HasPrefix(body, "set my_cookie\n") {
				t.Fatalf("first visit: the app said %q", body)
			}
			var lines []string
			for _, l := range readable(t, resp, signCodec(t)) {
				if strings.Contains(l, "my_cookie") {
					lines = append(lines, l)
				}
			}
			sameLines(t, "first visit", lines, []string{tc.line})
			for i := range 2 {
				if _, body = get(t, c, ci.URL+"/"); !strings.HasPrefix(body, "my_cookie is my_value\n") {
					t.Errorf("visit %d: the app said %q", i+2, body)
				}
			}
			held := jarValue(t, c, ci.URL, "__Host-my_cookie")
			vid := jarValue(t, c, ci.URL, "vid")
			for _, tossed := range []string{
				"my_cookie=evil; __Host-my_cookie=" + held + "; vid=" + vid,
				"__Host-my_cookie=" + held + "; my_cookie=evil; vid=" + vid,
			} {
				if _, body = get(t, httpsClient(t), ci.URL+"/", "Cookie", tossed); !strings.HasPrefix(body, "my_cookie is my_value\n") {
					t.Errorf("Cookie %q: the app said %q", tossed, body)
				}
			}
			if _, body = get(t, httpsClient(t), ci.URL+"/", "Cookie", "my_cookie=my_value; vid="+vid); !strings.HasPrefix(body, "set my_cookie\n") {
				t.Errorf("a plain my_cookie alone: the app said %q, want it absent", body)
			}
			if tc.signed {
				if _, body = get(t, httpsClient(t), ci.URL+"/", "Cookie", "__Host-my_cookie=my_value; vid="+vid); !strings.HasPrefix(body, "set my_cookie\n") {
					t.Errorf("an unsigned __Host-my_cookie: the app said %q, want it absent", body)
				}
			}
			for _, r := range app.requests("/") {
				if r[2] == "evil" {
					t.Errorf("the app read the tossed my_cookie")
				}
			}
		})
	}
}

// The same visitor reaches the same upstream from its very first request with lb_policy
// header on the module's ID header; Caddy's lb_policy cookie keeps a visitor on the upstream
// its own cookie names.
func TestStickyOnVisitorID(t *testing.T) {
	backend := func(name string) *upstream {
		return startUpstream(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, name) })
	}
	a, b := backend("a"), backend("b")
	site := func(policy string) string {
		return ruleSite(a.Addr+" "+b.Addr+" {\n\t\tlb_policy "+policy+"\n\t}", "\t\ttrack")
	}
	// visits sends n requests and returns which upstream answered each.
	visits := func(t *testing.T, c *http.Client, ci caddyInstance, n int) []string {
		var got []string
		for range n {
			_, body := get(t, c, ci.URL+"/")
			got = append(got, body)
		}
		return got
	}

	t.Run("header", func(t *testing.T) {
		ci := startCaddy(t, site("header X-Visitor-Id"))
		per := map[string]int{}
		for i := range 40 {
			c := newClient(t)
			got := visits(t, c, ci, 4)
			per[got[0]]++
			if got[1] != got[0] || got[2] != got[0] || got[3] != got[0] {
				t.Errorf("visitor %d went to %q", i, got)
			}
			// The first request carried the ID its cookie then holds: the ID was set before
			// reverse_proxy chose.
			first := map[string]*upstream{"a": a, "b": b}[got[0]]
			first.mu.Lock()
			firstID := first.reqs[len(first.reqs)-4].Header.Get("X-Visitor-Id")
			first.mu.Unlock()
			if id := visitorIDOf(t, c, ci.URL, "vid"); firstID != id {
				t.Errorf("visitor %d: first request's X-Visitor-Id %q, cookie's ID %q", i, firstID, id)
			}
			// The ID alone decides: the cookie replayed from anywhere, with nothing else.
			if i < 5 {
				vid := jarValue(t, c, ci.URL, "vid")
				for range 5 {
					if _, body := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "vid="+vid); body != got[0] {
						t.Errorf("visitor %d's cookie replayed went to %s, not %s", i, body, got[0])
					}
				}
			}
		}
		if per["a"] == 0 || per["b"] == 0 {
			t.Errorf("40 visitors spread as %v, want both upstreams used", per)
		}
	})

	t.Run("cookie", func(t *testing.T) {
		ci := startCaddy(t, site("cookie"))
		per := map[string]int{}
		for i := range 20 {
			c := newClient(t)
			resp, body := get(t, c, ci.URL+"/")
			per[body]++
			// What happens: the first request has no lb cookie yet, so lb_policy cookie's
			// fallback (random) chooses, and the response sets lb naming that upstream; later
			// requests follow lb. So a client that stores lb stays where its first request
			// went, but the choice is held in Caddy's own cookie, not derived from the visitor.
			if len(setCookies(resp, "lb")) != 1 {
				t.Errorf("visitor %d: first response set lb %q", i, setCookies(resp, "lb"))
			}
			if got := visits(t, c, ci, 3); got[0] != body || got[1] != body || got[2] != body {
				t.Errorf("visitor %d went to %s, then %q", i, body, got)
			}
		}
		if per["a"] == 0 || per["b"] == 0 {
			t.Errorf("20 visitors spread as %v, want both upstreams used", per)
		}
		// The visitor without its lb cookie (a new browser profile holds no lb yet, a client
		// that drops it, parallel first requests) is not sticky: the same visitor ID lands on
		// either upstream, chosen at random each time.
		c := newClient(t)
		get(t, c, ci.URL+"/")
		vid := jarValue(t, c, ci.URL, "vid")
		seen := map[string]int{}
		for range 30 {
			_, body := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "vid="+vid)
			seen[body]++
		}
		if len(seen) != 2 {
			t.Errorf("one visitor ID without lb went to %v in 30 requests, want both (random)", seen)
		}
	})
}

// BenchmarkCookieRulesOverhead runs BenchmarkServeHTTP's request paths through the module
// without cookie blocks and with blocks for names these requests never carry or set (an
// attribute glob, a Domain and Path rewrite, a __Host- prefix), side by side; the blocks
// should cost nothing there. On a busy machine the two sides drift apart with the load, so
// paired alternates batches of the two in one loop and reports their ratio: with/without
// over all batches, and min-with/min-without over the fastest batch of each.
//
//	go test -run XXX -bench CookieRulesOverhead -benchmem .
func BenchmarkCookieRulesOverhead(b *testing.B) {
	without := benchHandler(b)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	b.Cleanup(cancel)
	on := true
	with := &Handler{Secrets: []string{benchSecret}, Track: &Track{}, Sign: []string{"session"}, Cookie: []CookieRule{
		{Names: []string{"legacy_*", "cart"}, Secure: &on, HTTPOnly: &on, SameSite: "strict"},
		{Names: []string{"prefs"}, Domain: &Rewrite{From: "app.internal", To: "example.com"}, Path: &Rewrite{From: "/app", To: "/"}},
		{Names: []string{"account"}, Prefix: "__Host-"},
	}}
	if err := with.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	for _, c := range benchCases(b, without) {
		b.Run(c.name+"/without_blocks", func(b *testing.B) { benchServe(b, without, c, false) })
		b.Run(c.name+"/with_blocks", func(b *testing.B) { benchServe(b, with, c, false) })
		b.Run(c.name+"/paired", func(b *testing.B) {
			serveWithout, w, r := benchServer(b, without, c, false)
			serveWith, w2, r2 := benchServer(b, with, c, false)
			const batch = 32
			timed := func(serve func()) time.Duration {
				start := time.Now()
				for range batch {
					serve()
				}
				return time.Since(start)
			}
			var sumWithout, sumWith time.Duration
			minWithout, minWith := time.Duration(1<<62), time.Duration(1<<62)
			for i := 0; b.Loop(); i++ {
				var dw, dm time.Duration
				if i%2 == 0 { // alternate which side goes first
					dw, dm = timed(serveWithout), timed(serveWith)
				} else {
					dm, dw = timed(serveWith), timed(serveWithout)
				}
				sumWithout, sumWith = sumWithout+dw, sumWith+dm
				minWithout, minWith = min(minWithout, dw), min(minWith, dm)
			}
			c.check(b, w, r)
			c.check(b, w2, r2)
			b.ReportMetric(float64(sumWith)/float64(sumWithout), "with/without")
			b.ReportMetric(float64(minWith)/float64(minWithout), "min-with/min-without")
			b.ReportMetric(float64(minWithout)/batch, "min-ns-without/op")
			b.ReportMetric(float64(minWith)/batch, "min-ns-with/op")
		})
	}
}
