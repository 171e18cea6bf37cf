// The cookie blocks where only a browser decides: whether Chromium stores a __Host- cookie
// with the attributes the module gave it, sends the chunks of a split value back, and which
// of two same-named cookies a page's script can make it send.

package signedcookies

import (
	"fmt"
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/cdp"
)

// rulePage is an upstream page that sets, on each path, the Set-Cookie lines given for it,
// and shows the Cookie header it received.
func rulePage(routes map[string][]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		scriptedApp(routes)(w, r)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>page</title><link rel="icon" href="data:,">
<p>Cookie: <span id="seen">%s</span></p>
`, html.EscapeString(r.Header.Get("Cookie")))
	}
}

// requestTo is the last request the upstream received for path and query, nil when none.
func requestTo(u *upstream, pathAndQuery string) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.reqs) - 1; i >= 0; i-- {
		if u.reqs[i].URL.RequestURI() == pathAndQuery {
			return u.reqs[i]
		}
	}
	return nil
}

// Chromium stores what the app sets as session (Path=/app, Domain=localhost) as a
// __Host-session it accepts: Secure, Path=/, host-only; it sends it back and the app reads
// session. A plain session the page's script sets next to it never reaches the app.
func TestBrowserCookieRuleHostPrefix(t *testing.T) {
	up := startUpstream(t, rulePage(map[string][]string{"/set": {
		"session=alice; Path=/app; Domain=localhost; HttpOnly; SameSite=Lax",
		"legacy=plain-v; Path=/x; Domain=localhost",
	}}))
	ci := startCaddyHTTPS(t, ruleSite(up.Addr, `
		sign session
		cookie session legacy {
			prefix __Host-
		}`))
	b := startBrowser(t, t.TempDir(), "ignore-certificate-errors")
	page := ci.URL + "/page"

	b.navigate(t, ci.URL+"/set")
	for name, want := range map[string]string{"__Host-session": "alice", "__Host-legacy": "plain-v"} {
		c := b.cookie(t, page, name)
		if c == nil {
			t.Fatalf("the browser did not store %s", name)
		}
		// host-only: the DevTools protocol writes a Domain cookie's domain with a leading dot
		if !c.Secure || c.Path != "/" || c.Domain != "localhost" {
			t.Errorf("%s stored as %+v: want Secure, Path=/, host-only on localhost", name, c)
		}
		value := c.Value
		if d, err := signCodec(t).Decode(name, c.Value); err == nil {
			value = string(d.Value)
		} else if name == "__Host-session" {
			t.Errorf("stored __Host-session %q does not verify: %v", c.Value, err)
		}
		if value != want {
			t.Errorf("stored %s holds %q, want %q", name, value, want)
		}
	}
	if c := b.cookie(t, page, "__Host-session"); c != nil && (!c.HTTPOnly || c.SameSite != cdp.CookieSameSiteLax) {
		t.Errorf("__Host-session lost the app's HttpOnly or SameSite=Lax: %+v", c)
	}
	for _, name := range []string{"session", "legacy"} {
		if c := b.cookie(t, page, name); c != nil {
			t.Errorf("the browser holds an unprefixed %s: %+v", name, c)
		}
	}

	b.navigate(t, page)
	check := func(what, pathAndQuery string) {
		t.Helper()
		r := requestTo(up, pathAndQuery)
		if r == nil {
			t.Fatalf("%s: the upstream never received %s", what, pathAndQuery)
		}
		for name, want := range map[string]string{"session": "alice", "legacy": "plain-v"} {
			if v, n := upstreamCookie(r, name); v != want || n != 1 {
				t.Errorf("%s: upstream %s = %q (x%d), want %q once", what, name, v, n, want)
			}
		}
		if got := strings.Join(r.Header.Values("Cookie"), "; "); strings.Contains(got, "tossed") || strings.Contains(got, "__Host-") {
			t.Errorf("%s: upstream Cookie %q", what, got)
		}
	}
	check("sent back", "/page")

	// The page's script sets plain cookies of the app's names, as a sibling subdomain could;
	// one on a deeper path, which the browser sends first.
	js := b.eval(t, `document.cookie = "session=tossed; path=/"; document.cookie = "legacy=tossed; path=/page"; document.cookie`)
	if !strings.Contains(js, "session=tossed") || !strings.Contains(js, "legacy=tossed") {
		t.Fatalf("the script could not set the plain cookies: document.cookie %q", js)
	}
	b.navigate(t, page+"?tossed")
	check("tossed", "/page?tossed")
}

// Chromium stores every chunk of a split value (each within its 4096-byte limit, each a
// valid __Host- cookie), sends them all back, and the upstream reads the whole value; when
// the value shrinks the stale chunks leave the browser. A value longer than a split takes by
// default (3 cookies, which Caddy's default request header limit lets in over HTTP/2) is not
// set at all: the browser keeps what it had and the site stays reachable.
func TestBrowserCookieRuleSplit(t *testing.T) {
	routes, values := map[string][]string{}, map[int]string{}
	for _, k := range []int{2, 3, 8} {
		values[k] = randomText(plainForChunks(t, "__Host-big", k), uint64(k))
		routes[fmt.Sprintf("/set%d", k)] = []string{"big=" + values[k] + "; Path=/; HttpOnly"}
	}
	up := startUpstream(t, rulePage(routes))
	ci := startCaddyHTTPS(t, ruleSite(up.Addr, `
		sign big
		cookie big {
			split
			prefix __Host-
		}`))
	b := startBrowser(t, t.TempDir(), "ignore-certificate-errors")
	page := ci.URL + "/page"
	chunk := func(i int) string {
		if i == 0 {
			return "__Host-big"
		}
		return fmt.Sprintf("__Host-big__%d", i)
	}

	for step, k := range []int{3, 2} {
		b.navigate(t, ci.URL+fmt.Sprintf("/set%d", k))
		for i := range 8 {
			c := b.cookie(t, page, chunk(i))
			switch {
			case i >= k && c != nil:
				t.Errorf("%d chunks: the browser still holds %s", k, chunk(i))
			case i < k && c == nil:
				t.Errorf("%d chunks: the browser did not store %s", k, chunk(i))
			case i < k && (c.Size > 4096 || !c.Secure || c.Path != "/" || c.Domain != "localhost" || !c.HTTPOnly):
				t.Errorf("%d chunks: %s stored as size %d, %+v", k, chunk(i), c.Size, c)
			}
		}
		visit := fmt.Sprintf("/page?step=%d", step)
		b.navigate(t, ci.URL+visit)
		r := requestTo(up, visit)
		if r == nil {
			t.Errorf("%d chunks: the page view after them never reached the upstream (the request was refused before the module ran)", k)
			continue
		}
		if v, n := upstreamCookie(r, "big"); v != values[k] || n != 1 {
			t.Errorf("%d chunks: the upstream got big of %d bytes (x%d), want the %d set", k, len(v), n, len(values[k]))
		}
		if got := strings.Join(r.Header.Values("Cookie"), "; "); strings.Contains(got, "big__") {
			t.Errorf("%d chunks: the upstream got chunk cookies", k)
		}
	}
	b.navigate(t, ci.URL+"/set8")
	b.navigate(t, ci.URL+"/page?after8")
	if r := requestTo(up, "/page?after8"); r == nil {
		t.Error("after a value too long to split, the site is not reachable")
	} else if v, _ := upstreamCookie(r, "big"); v != values[2] {
		t.Errorf("after a value too long to split, the upstream got big of %d bytes, want the %d of before", len(v), len(values[2]))
	}
}
