// The module with a real browser: headless Chromium driven through the DevTools protocol
// (internal/testsupport/cdp), against a real Caddy. What a cookie-jar client cannot show: persistence in
// a browser profile, Secure/SameSite/Partitioned as the browser stores them, and what the
// page's JavaScript reads and writes.

package signedcookies

import (
	"context"
	"crypto/tls"
	"fmt"
	"html"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/cdp"
)

const chromiumPath = "/usr/bin/chromium" // Debian's chromium package

// testBrowser is a tab of a running headless Chromium.
type testBrowser struct {
	ctx      context.Context // the browser's lifetime: every call is bounded by it
	browser  *cdp.Browser
	tab      *cdp.Tab
	close    func() // graceful: Chromium writes its cookie store to the profile
	closeErr error
}

// startBrowser starts headless Chromium on the profile directory and stops it when the test
// ends (or earlier, with close). Extra flags (such as ignore-certificate-errors) are switched on.
func startBrowser(t testing.TB, profile string, extraFlags ...string) *testBrowser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		missingTool(t, "Chromium ("+chromiumPath+": apt-get install chromium)")
	}
	out := &lockedBuffer{}
	// One deadline for the browser's whole life, so a hung browser cannot hang the suite:
	// the process is killed when it passes.
	lifetime, stop := context.WithTimeout(context.Background(), 45*time.Second)
	browser, err := cdp.Start(lifetime, cdp.Options{
		ExecPath:    chromiumPath,
		UserDataDir: profile,
		Flags: append([]string{
			"headless", "no-sandbox", "disable-gpu", "disable-quic", "no-first-run",
			"disable-background-networking", "disable-component-update", "disable-sync",
		}, extraFlags...),
		Output: out,
	})
	if err != nil {
		stop()
		t.Fatalf("starting chromium: %v\n%s", err, withoutDBus(out.String()))
	}
	b := &testBrowser{ctx: lifetime, browser: browser}
	var once sync.Once
	b.close = func() {
		once.Do(func() {
			b.closeErr = browser.Close(lifetime) // Browser.close, then wait for the process to exit
			stop()
		})
	}
	t.Cleanup(func() {
		b.close()
		if t.Failed() {
			t.Logf("chromium output (D-Bus complaints left out):\n%s", withoutDBus(out.String()))
		}
	})
	if b.tab, err = browser.NewTab(lifetime, false); err != nil {
		t.Fatalf("opening a tab: %v\n%s", err, withoutDBus(out.String()))
	}
	return b
}

// withoutDBus drops the D-Bus errors Chromium prints in containers with no system bus.
func withoutDBus(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if !strings.Contains(line, "dbus/") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// freshContext opens a tab in a new, empty browser context of the same browser: a second
// profile without the cost of a second browser.
func (b *testBrowser) freshContext(t testing.TB) *testBrowser {
	t.Helper()
	tab, err := b.browser.NewTab(b.ctx, true)
	if err != nil {
		t.Fatalf("opening a new browser context: %v", err)
	}
	fresh := &testBrowser{ctx: b.ctx, browser: b.browser, tab: tab}
	var once sync.Once
	fresh.close = func() { once.Do(func() { fresh.closeErr = tab.Close(b.ctx) }) }
	t.Cleanup(fresh.close)
	return fresh
}

// shutdown closes the browser gracefully, so that it writes its cookie store, and fails the
// test if it did not stop cleanly.
func (b *testBrowser) shutdown(t testing.TB) {
	t.Helper()
	b.close()
	if b.closeErr != nil {
		t.Fatalf("closing chromium: %v", b.closeErr)
	}
}

func (b *testBrowser) navigate(t testing.TB, url string) {
	t.Helper()
	if err := b.tab.Navigate(b.ctx, url); err != nil {
		t.Fatalf("navigating to %s: %v", url, err)
	}
}

// eval runs JavaScript in the page and returns its string result.
func (b *testBrowser) eval(t testing.TB, js string) string {
	t.Helper()
	var s string
	if err := b.tab.Evaluate(b.ctx, js, &s); err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return s
}

// cookie returns the browser's stored cookie, as the DevTools protocol reports it (nil when
// there is none). It asks the cookie store directly (Storage.getCookies), which includes
// partitioned cookies, and cross-checks Network.getCookies for the page's URL.
func (b *testBrowser) cookie(t testing.TB, pageURL, name string) *cdp.Cookie {
	t.Helper()
	all, err := b.tab.AllCookies(b.ctx)
	if err != nil {
		t.Fatalf("Storage.getCookies: %v", err)
	}
	var found *cdp.Cookie
	for _, c := range all {
		if c.Name == name {
			if found != nil {
				t.Fatalf("the browser holds %s twice: %+v and %+v", name, found, c)
			}
			found = c
		}
	}
	forURL, err := b.tab.Cookies(b.ctx, pageURL)
	if err != nil {
		t.Fatalf("Network.getCookies: %v", err)
	}
	for _, c := range forURL {
		if c.Name == name && (found == nil || c.Value != found.Value) {
			t.Fatalf("Network.getCookies(%s) reports %s=%q, the cookie store %+v", pageURL, name, c.Value, found)
		}
	}
	return found
}

// cookiePage is an upstream that renders what it received and, through the page's
// JavaScript, document.cookie. On /set it also sets the given cookies.
func cookiePage(setCookies ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/set" {
			for _, sc := range setCookies {
				w.Header().Add("Set-Cookie", sc)
			}
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><title>page</title><link rel="icon" href="data:,">
<p>X-Visitor-Id: <span id="visitor">%s</span></p>
<p>Cookie: <span id="seen">%s</span></p>
<p>document.cookie: <span id="cookies"></span></p>
<script>document.getElementById("cookies").textContent = document.cookie;</script>
`, html.EscapeString(r.Header.Get("X-Visitor-Id")), html.EscapeString(r.Header.Get("Cookie")))
	}
}

// lastTo is the last request the upstream received for path (browsers fetch more than the
// page, favicons for one).
func (u *upstream) lastTo(t testing.TB, path string) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	for i := len(u.reqs) - 1; i >= 0; i-- {
		if u.reqs[i].URL.Path == path {
			return u.reqs[i]
		}
	}
	t.Fatalf("the upstream never received %s", path)
	return nil
}

// readPayload is JavaScript that takes a cookie from document.cookie and decodes the payload
// of its securecookie layout, base64url("timestamp|" + base64url(payload) + "|mac").
func readPayload(name string) string {
	return `(() => {
		const m = document.cookie.match(/(?:^|; )` + name + `=([^;]*)/);
		const b64 = (s) => atob(s.replace(/-/g, "+").replace(/_/g, "/"));
		try { return m ? b64(b64(m[1]).split("|")[1]) : ""; } catch (e) { return "error: " + e.message; }
	})()`
}

// cookiePairs parses a document.cookie string.
func cookiePairs(s string) map[string]string {
	m := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		if k, v, ok := strings.Cut(strings.TrimSpace(part), "="); ok {
			m[k] = v
		}
	}
	return m
}

// startCaddyHTTPS runs Caddy in this process with siteBody in an https://localhost site
// served with a certificate from Caddy's internal CA (kept in a temp storage, never installed
// in the system's trust store). It returns once a TLS handshake succeeds.
func startCaddyHTTPS(t testing.TB, siteBody string) caddyInstance {
	t.Helper()
	ci := caddyInstance{Port: freePort(t), AdminAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	ci.URL = fmt.Sprintf("https://localhost:%d", ci.Port)
	cf := fmt.Sprintf(`{
	admin %s
	persist_config off
	local_certs
	skip_install_trust
	auto_https disable_redirects
	storage file_system %s
	servers {
		protocols h1 h2
	}
	log {
		level ERROR
	}
}

https://localhost:%d {
	bind 127.0.0.1
	tls internal
%s
}
`, ci.AdminAddr, t.TempDir(), ci.Port, siteBody)
	if err := caddy.Load(adapt(t, cf), true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	addr := fmt.Sprintf("127.0.0.1:%d", ci.Port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr,
			&tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
		if err == nil {
			conn.Close()
			return ci
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS handshake with %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestBrowserVisitorIDSurvivesRestart(t *testing.T) {
	app := startFlask(t)
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		track
	}
	reverse_proxy `+app.Addr)
	page := ci.URL + "/visitor"
	profile := t.TempDir()

	b := startBrowser(t, profile)
	b.navigate(t, page)
	id := b.eval(t, `document.getElementById("visitor").textContent`)
	if !uuidV4.MatchString(id) {
		t.Fatalf("the app's page shows visitor ID %q, want a v4 UUID", id)
	}
	if js := b.eval(t, `document.getElementById("cookies").textContent`); strings.Contains(js, "vid=") {
		t.Errorf("the HttpOnly visitor cookie is visible to JavaScript: %q", js)
	}
	c := b.cookie(t, page, "vid")
	if c == nil || c.Session || !c.HTTPOnly || c.Secure || c.SameSite != cdp.CookieSameSiteLax {
		t.Fatalf("stored vid cookie %+v: want persistent, HttpOnly, not Secure over HTTP, SameSite=Lax", c)
	}
	b.shutdown(t)

	// The same profile in a new browser process: the cookie was persisted, and the app sees
	// the same ID.
	b = startBrowser(t, profile)
	b.navigate(t, page)
	if got := b.eval(t, `document.getElementById("visitor").textContent`); got != id {
		t.Errorf("after a browser restart the app's page shows %q, want %q", got, id)
	}

	// A fresh profile (an incognito-like browser context of the same browser) is a new
	// visitor: the ID comes from the profile's cookie, nothing else.
	fresh := b.freshContext(t)
	fresh.navigate(t, page)
	if other := fresh.eval(t, `document.getElementById("visitor").textContent`); other == id || !uuidV4.MatchString(other) {
		t.Errorf("a fresh profile got visitor ID %q, want a new one (not %q)", other, id)
	}

	// The app's log holds the module's ID for both visits of the first profile.
	var ids []string
	for _, r := range app.waitRequests(t, "/visitor", 3) {
		ids = append(ids, r[1])
	}
	if ids[0] != id || ids[1] != id || ids[2] == id {
		t.Errorf("app log visitor IDs %q: want %s twice, then another", ids, id)
	}
}

func TestBrowserHTTPSHostCookie(t *testing.T) {
	up := startUpstream(t, cookiePage())
	ci := startCaddyHTTPS(t, `
	signed_cookies {
		secret `+testSecret+`
		track __Host-vid {
			same_site none
			partitioned
		}
	}
	reverse_proxy `+up.Addr)
	b := startBrowser(t, t.TempDir(), "ignore-certificate-errors")
	page := ci.URL + "/"

	b.navigate(t, page)
	id := up.lastTo(t, "/").Header.Get("X-Visitor-Id")
	if !uuidV4.MatchString(id) {
		t.Fatalf("upstream X-Visitor-Id %q is not a v4 UUID", id)
	}
	c := b.cookie(t, page, "__Host-vid")
	if c == nil {
		t.Fatal("the browser did not store the __Host-vid cookie")
	}
	if !c.Secure {
		t.Errorf("__Host-vid is not Secure: %+v", c)
	}
	if c.SameSite != cdp.CookieSameSiteNone {
		t.Errorf("__Host-vid SameSite = %q, want None", c.SameSite)
	}
	if c.PartitionKey == nil || c.PartitionKey.TopLevelSite != "https://localhost" || c.PartitionKeyOpaque {
		t.Errorf("__Host-vid partition key %+v (opaque %v), want partitioned under https://localhost", c.PartitionKey, c.PartitionKeyOpaque)
	}
	if !c.HTTPOnly || c.Path != "/" || c.Domain != "localhost" || c.Session {
		t.Errorf("__Host-vid %+v: want HttpOnly, Path=/, host-only on localhost, persistent", c)
	}
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode("__Host-vid", c.Value)
	if err != nil || string(cookie.AppendUUID(nil, d.Value)) != id {
		t.Errorf("stored __Host-vid %q does not verify as %s: %v", c.Value, id, err)
	}

	// Sent back: the next page view carries the same ID, plain for the upstream.
	b.navigate(t, ci.URL+"/again")
	r := up.lastTo(t, "/again")
	if got := r.Header.Get("X-Visitor-Id"); got != id {
		t.Errorf("second page view: X-Visitor-Id %q, want %q", got, id)
	}
	if v, n := upstreamCookie(r, "__Host-vid"); v != id || n != 1 {
		t.Errorf("second page view: upstream Cookie __Host-vid = %q (x%d), want %q once", v, n, id)
	}
	if r.Header.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("the upstream was not reached through HTTPS: X-Forwarded-Proto %q", r.Header.Get("X-Forwarded-Proto"))
	}
	if again := b.cookie(t, ci.URL+"/again", "__Host-vid"); again == nil || again.Value != c.Value {
		t.Errorf("the cookie changed on the second view: %+v", again)
	}
}

func TestBrowserScriptSeesSignedCookies(t *testing.T) {
	up := startUpstream(t, cookiePage("js_signed=hello-js; Path=/", "js_secret=top-secret; Path=/"))
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign js_signed
		encrypt js_secret
	}
	reverse_proxy `+up.Addr)
	ring := mustRing(t, testSecret)
	b := startBrowser(t, t.TempDir())

	b.navigate(t, ci.URL+"/set")
	b.navigate(t, ci.URL+"/page")
	shown := b.eval(t, `document.getElementById("cookies").textContent`)
	if now := b.eval(t, `document.cookie`); now != shown {
		t.Fatalf("document.cookie %q differs from what the page's script showed: %q", now, shown)
	}
	js := cookiePairs(shown)

	// sign: the script reads the signed string, which verifies as the upstream's value.
	signed, ok := js["js_signed"]
	if !ok || signed == "hello-js" || strings.Contains(shown, "hello-js") {
		t.Errorf("document.cookie %q: want js_signed holding a signed value, not hello-js", shown)
	} else if d, err := cookie.NewCodec(ring, cookie.Options{}).Decode("js_signed", signed); err != nil || string(d.Value) != "hello-js" {
		t.Errorf("js_signed=%q as the script reads it does not verify as hello-js: %v", signed, err)
	}
	if c := b.cookie(t, ci.URL+"/page", "js_signed"); c == nil || c.Value != signed || c.HTTPOnly {
		t.Errorf("stored js_signed %+v, want the value the script read, not HttpOnly", c)
	}

	// encrypt: the script sees a value, but nothing readable in it.
	secret, ok := js["js_secret"]
	if !ok || secret == "" || strings.Contains(shown, "top-secret") {
		t.Errorf("document.cookie %q: want js_secret present but not readable", shown)
	} else if d, err := cookie.NewCodec(ring, cookie.Options{Encrypt: true}).Decode("js_secret", secret); err != nil || string(d.Value) != "top-secret" {
		t.Errorf("js_secret=%q as the script reads it does not decrypt to top-secret: %v", secret, err)
	}
	// What a script can make of the values: a signed one is readable (base64 inside base64,
	// the securecookie layout), an encrypted one is not.
	if got := b.eval(t, readPayload("js_signed")); got != "hello-js" {
		t.Errorf("the script decoded js_signed to %q, want hello-js (signed values stay readable)", got)
	}
	if got := b.eval(t, readPayload("js_secret")); got == "" || strings.Contains(got, "top-secret") {
		t.Errorf("the script decoded js_secret to %q, want unreadable bytes", got)
	}

	// Meanwhile the upstream reads its plain values.
	r := up.lastTo(t, "/page")
	for name, want := range map[string]string{"js_signed": "hello-js", "js_secret": "top-secret"} {
		if v, n := upstreamCookie(r, name); v != want || n != 1 {
			t.Errorf("upstream %s = %q (x%d), want %q once", name, v, n, want)
		}
	}
	if seen := b.eval(t, `document.getElementById("seen").textContent`); !strings.Contains(seen, "js_signed=hello-js") {
		t.Errorf("the upstream's page shows Cookie %q, want the plain js_signed", seen)
	}
}

func TestBrowserScriptForgeryDropped(t *testing.T) {
	up := startUpstream(t, cookiePage("session=alice; Path=/"))
	ci := startCaddy(t, trackAndSignSite(up.Addr))
	b := startBrowser(t, t.TempDir())
	page := ci.URL + "/page"

	b.navigate(t, ci.URL+"/set")
	b.navigate(t, page)
	if v, n := upstreamCookie(up.lastTo(t, "/page"), "session"); v != "alice" || n != 1 {
		t.Fatalf("before the forgery the upstream got session %q (x%d), want alice", v, n)
	}
	id := up.lastTo(t, "/page").Header.Get("X-Visitor-Id")

	// The page's script overwrites the managed cookie; the browser accepts it.
	after := b.eval(t, `document.cookie = "session=forged; path=/"; document.cookie`)
	if cookiePairs(after)["session"] != "forged" {
		t.Fatalf("the script could not overwrite session: document.cookie %q", after)
	}

	b.navigate(t, page+"?after-forgery")
	r := up.lastTo(t, "/page")
	if r.URL.RawQuery != "after-forgery" {
		t.Fatalf("the upstream did not receive the page view after the forgery")
	}
	if v, n := upstreamCookie(r, "session"); n != 0 {
		t.Errorf("the forged session reached the upstream: %q (x%d)", v, n)
	}
	if strings.Contains(strings.Join(r.Header.Values("Cookie"), "; "), "forged") {
		t.Errorf("the forged value reached the upstream: Cookie %q", r.Header.Values("Cookie"))
	}
	if got := r.Header.Get("X-Visitor-Id"); got != id {
		t.Errorf("X-Visitor-Id %q after the forgery, want %q", got, id)
	}
	// The module cleared it in the browser.
	if c := b.cookie(t, page, "session"); c != nil {
		t.Errorf("the forged session is still in the browser: %+v", c)
	}
	if _, ok := cookiePairs(b.eval(t, `document.cookie`))["session"]; ok {
		t.Errorf("the forged session is still visible to the page")
	}

	// A script-made cookie on a deeper path (sent first by the browser) is dropped as well.
	b.eval(t, `document.cookie = "session=forged2; path=/page"; document.cookie`)
	b.navigate(t, page+"?deeper-forgery")
	r = up.lastTo(t, "/page")
	if r.URL.RawQuery != "deeper-forgery" {
		t.Fatalf("the upstream did not receive the page view after the second forgery")
	}
	if v, n := upstreamCookie(r, "session"); n != 0 {
		t.Errorf("the forged session on path /page reached the upstream: %q (x%d)", v, n)
	}
}
