// Attacks on the rollout settings, through a real Caddy: a value adopted and upgraded during
// an adopt window outliving it, and adopt_nginx taking a cookie that holds one of this
// module's own visitor IDs. Split from attack_test.go: these wait for a deadline or run nginx.

package signedcookies

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/nginxuid"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/nginxtest"
)

// 5a. adopt accepts any plain value the client sends until the deadline, and with attributes
// upgrades it to a signed value on the same response. That signature must end with the window:
// on the old code the upgraded value is signed like any cookie the app set, so a value the
// client chose during the window (session=admin) verifies for the upstream's Max-Age (or
// max_age) after the deadline, when plain values are refused. A cookie the app itself set
// during the window is the app's and keeps verifying (the control).
func TestAttackAdoptUpgradeOutlivesWindow(t *testing.T) {
	up := startUpstream(t, scriptedApp(map[string][]string{"/set": {"session=bob; Path=/; Max-Age=3600"}}))
	deadline := time.Now().Add(5 * time.Second).Truncate(time.Second) // Caddy starts within it on a busy machine
	ci := startCaddy(t, ruleSite(up.Addr, `
		sign session
		adopt session until `+deadline.UTC().Format(time.RFC3339)+` {
			attributes "Path=/; Max-Age=3600"
		}`))
	resp, _ := get(t, rolloutRaw, ci.URL+"/", "Cookie", "session=admin")
	if !time.Now().Before(deadline) {
		t.Fatalf("the adoption request ended %v after the deadline: Caddy started too slowly", time.Since(deadline))
	}
	lines := setCookies(resp, "session")
	if len(lines) != 1 {
		t.Fatalf("during the window: Set-Cookie %q, want the upgrade of the adopted value", lines)
	}
	_, upgraded, _ := splitSetCookie(lines[0])
	resp, _ = get(t, rolloutRaw, ci.URL+"/set")
	_, appSet, _ := splitSetCookie(valueLine(t, resp, "session"))

	for time.Now().Before(deadline.Add(time.Second)) { // the module's clock reads whole seconds
		time.Sleep(100 * time.Millisecond)
	}
	get(t, rolloutRaw, ci.URL+"/", "Cookie", "session="+upgraded)
	if v, n := upstreamCookie(up.last(), "session"); n != 0 {
		t.Errorf("after the deadline the upgrade of a plain value adopted in the window still verifies: the upstream read session=%q; "+
			"want it refused (the window's values end with it)", v)
	}
	get(t, rolloutRaw, ci.URL+"/", "Cookie", "session="+appSet)
	if v, _ := upstreamCookie(up.last(), "session"); v != "bob" {
		t.Errorf("after the deadline the cookie the app set in the window reads %q, want bob: only adopted values end with the window", v)
	}
}

// valueLine returns the one Set-Cookie line for name.
func valueLine(t testing.TB, resp *http.Response, name string) string {
	t.Helper()
	lines := setCookies(resp, name)
	if len(lines) != 1 {
		t.Fatalf("Set-Cookie for %s: %q, want one line", name, lines)
	}
	return lines[0]
}

// attackIsV4 reports whether 16 bytes have the layout of this module's visitor IDs: a v4
// UUID (version nibble 4, variant 10xx).
func attackIsV4(id []byte) bool { return id[6]>>4 == 4 && id[8]>>6 == 2 }

// 5b. adopt_nginx keeps the ID of nginx userid's cookie, which is unsigned: anyone can write
// one. An nginx cookie whose 16 bytes have this module's own ID layout (a v4 UUID) is not
// nginx's (nginx's words are its address, a time, a start value and a sequence), but can be a
// victim's visitor ID learnt from a log or an analytics export; on the old code it is adopted,
// and the attacker's browser gets the victim's ID signed. It must get a new ID instead. A
// genuine nginx 1.22 uid is still adopted.
func TestAttackNginxAdoptsModuleID(t *testing.T) {
	up := startUpstream(t, nil)
	ci := startCaddy(t, ruleSite(up.Addr, `
		track vid {
			adopt_nginx uid until `+attackFuture()+`
		}`)+"\n\theader X-New {http.signed_cookies.visitor_new}")

	// The victim's ID: one the module issued.
	get(t, rolloutRaw, ci.URL+"/")
	victim := up.last().Header.Get("X-Visitor-Id")
	vb, ok := cookie.ParseUUID(victim)
	if !ok || !attackIsV4(vb[:]) {
		t.Fatalf("the module issued %q: not a v4 UUID", victim)
	}
	resp, _ := get(t, rolloutRaw, ci.URL+"/", "Cookie", "uid="+nginxuid.Encode(vb))
	got := up.last().Header.Get("X-Visitor-Id")
	if got == victim || resp.Header.Get("X-New") != "true" {
		t.Errorf("uid holding the module's visitor ID %s: the upstream reads visitor %s (visitor_new %q), want a new ID: "+
			"an nginx cookie with a v4 UUID's layout is not nginx's", victim, got, resp.Header.Get("X-New"))
	}
	for _, l := range setCookies(resp, "vid") {
		if d, _ := rolloutDecodeLine(t, signCodec(t), l); string(d.Value) == string(vb[:]) {
			t.Errorf("the attacker's browser gets the victim's ID signed: Set-Cookie %.60q", l)
		}
	}

	// A genuine nginx 1.22 cookie is adopted.
	base := nginxtest.Start(t, `
		userid on;
		userid_name uid;
		default_type text/plain;
		location / { return 200 "ok"; }`)
	nresp, _ := get(t, rolloutRaw, base+"/")
	var uid string
	for _, c := range nresp.Cookies() {
		if c.Name == "uid" {
			uid = c.Value
		}
	}
	raw, err := base64.StdEncoding.DecodeString(uid)
	if err != nil || len(raw) != 16 {
		t.Fatalf("nginx's uid %q: %v", uid, err)
	}
	if attackIsV4(raw) {
		t.Logf("this nginx uid happens to have a v4 layout (%x): the genuine case is not checked on this run", raw)
		return
	}
	resp, _ = get(t, rolloutRaw, ci.URL+"/", "Cookie", "uid="+uid)
	if got := up.last().Header.Get("X-Visitor-Id"); got != rolloutUUID(raw) || resp.Header.Get("X-New") != "false" {
		t.Errorf("a genuine nginx uid (%x): the upstream reads visitor %s (visitor_new %q), want nginx's %s kept",
			raw, got, resp.Header.Get("X-New"), rolloutUUID(raw))
	}
	if l := setCookies(resp, "uid"); len(l) != 1 || !strings.HasPrefix(l[0], "uid=;") {
		t.Errorf("a genuine nginx uid: Set-Cookie uid %q, want it cleared", l)
	}
}
