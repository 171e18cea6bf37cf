// Log out everywhere, at the edge: revocations stored through the CLI and the admin API reach
// two Caddy processes sharing one storage, in front of the real Flask app and of an app that
// sets a plain session cookie; two cookie jars per user stand for two browsers. Each test
// waits for conditions (an instance listing the revocation), not for time.

package signedcookies

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

// adminRevokeCall posts a revocation to an instance's admin API.
func adminRevokeCall(t testing.TB, ci caddyInstance, body string) (int, revokeResponse, string) {
	t.Helper()
	cl := &http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Post("http://"+ci.AdminAddr+"/signed_cookies/revoke", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out revokeResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("POST /signed_cookies/revoke answered %s: %v", b, err)
		}
	}
	return resp.StatusCode, out, string(b)
}

// heldRevocationsOf is what an instance's admin API lists.
func heldRevocationsOf(t testing.TB, ci caddyInstance) []revokedEntry {
	t.Helper()
	resp, err := http.Get("http://" + ci.AdminAddr + "/signed_cookies/revocations")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out revocationList
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /signed_cookies/revocations: %d %v", resp.StatusCode, err)
	}
	return out.Revocations
}

// awaitHeld waits until the instance holds a revocation of kind and name made at or after
// before (its re-read of storage has brought it).
func awaitHeld(t testing.TB, ci caddyInstance, kind, name string, before time.Time) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, e := range heldRevocationsOf(t, ci) {
			if e.Kind == kind && e.Name == name && !e.Before.Before(before) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never held the revocation %s %s of %s: %+v", ci.URL, kind, name, before, heldRevocationsOf(t, ci))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// awaitPast waits until the clock has passed T's second: a cookie signed now is signed after
// a revocation at T.
func awaitPast(t testing.TB, T time.Time) {
	t.Helper()
	for time.Now().Unix() <= T.Unix() {
		time.Sleep(20 * time.Millisecond)
	}
}

func storageOf(dir string) *certmagic.FileStorage { return &certmagic.FileStorage{Path: dir} }

var revokedAt = regexp.MustCompile(`signed at or before (\S+)\n`)

// cliRevokeRun runs caddy signed-cookies revoke with ci's config and returns when it says
// cookies are revoked from.
func cliRevokeRun(t *testing.T, ci caddyInstance, args ...string) (time.Time, string) {
	t.Helper()
	dir := t.TempDir()
	config := cliWriteFile(t, dir, "Caddyfile", ci.Caddyfile)
	out, errOut, code := cliRun(t, dir, nil, append([]string{"signed-cookies", "revoke", "--config", config, "--adapter", "caddyfile"}, args...)...)
	m := revokedAt.FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("revoke %q: status %d\n%s%s", args, code, out, errOut)
	}
	T, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatal(err)
	}
	return T, out
}

// whoami is the first line of what the Flask app says about the jar's session, through ci,
// and whether the response cleared the session cookie.
func whoami(t testing.TB, c *http.Client, ci caddyInstance) (string, bool) {
	t.Helper()
	resp, body := get(t, c, ci.URL+"/whoami")
	line, _, _ := strings.Cut(body, "\n")
	return line, slicesContain(setCookies(resp, "session"), "session=; Path=/; Max-Age=0")
}

func slicesContain(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// A real Flask app; alice logged in from two browsers (two cookie jars), bob from a third.
// `revoke --flask user_id=42`, then the admin API, log both of alice's browsers out at their
// next request through either of two Caddy instances sharing storage, clearing the session;
// bob stays logged in; a session issued after the revocation works.
func TestRevokeFlaskUserEverywhere(t *testing.T) {
	t.Setenv("FLASK_SECRET_KEY", formatKey("revoke"))
	app := startFlask(t)
	dir := t.TempDir()
	site := `
	signed_cookies {
		check_interval 200ms
		track
		flask_session {
			secret_key {env.FLASK_SECRET_KEY}
			expose user_id role
		}
	}
	reverse_proxy ` + app.Addr
	a := startCaddy(t, site, withStorage(dir), asProcess())
	b := startCaddy(t, site, withStorage(dir), asProcess())
	direct := "http://" + app.Addr
	alice1, alice2, bob := newClient(t), newClient(t), newClient(t)
	login := func(c *http.Client, ci caddyInstance, user string) {
		t.Helper()
		flaskLogin(t, c, ci.URL, ci.URL, direct, user)
	}
	expect := func(step string, c *http.Client, ci caddyInstance, want string) {
		t.Helper()
		held := jarValue(t, c, ci.URL, "session") != ""
		got, cleared := whoami(t, c, ci)
		if got != want {
			t.Errorf("%s: through %s the app says %q, want %q", step, ci.URL, got, want)
		}
		// a revoked session is cleared in the browser; one cleared already is not sent again
		if wantCleared := held && want == "not logged in"; cleared != wantCleared {
			t.Errorf("%s: through %s the session cookie cleared: %v, want %v", step, ci.URL, cleared, wantCleared)
		}
		if want == "not logged in" && jarValue(t, c, ci.URL, "session") != "" {
			t.Errorf("%s: the browser still holds the revoked session", step)
		}
	}
	const aliceIn, bobIn, out = "user_id=42 role=admin", "user_id=7 role=editor", "not logged in"
	login(alice1, a, "alice")
	login(alice2, b, "alice")
	login(bob, a, "bob")
	for _, ci := range []caddyInstance{a, b} {
		expect("logged in", alice1, ci, aliceIn)
		expect("logged in", alice2, ci, aliceIn)
		expect("logged in", bob, ci, bobIn)
	}

	// The CLI: every instance applies it at its next re-read.
	T, said := cliRevokeRun(t, a, "--flask", "user_id=42")
	if !strings.Contains(said, "Flask sessions whose user_id holds the value") || strings.Contains(said, "42") && !strings.Contains(said, "user_id") {
		t.Errorf("revoke said:\n%s", said)
	}
	awaitHeld(t, a, "flask", "user_id", T)
	awaitHeld(t, b, "flask", "user_id", T)
	expect("after revoke --flask", alice1, b, out)
	expect("after revoke --flask", alice2, a, out)
	expect("after revoke --flask, the other instance", alice1, a, out)
	for _, ci := range []caddyInstance{a, b} {
		expect("bob after revoke --flask user_id=42", bob, ci, bobIn)
	}
	// a session issued after the revocation works, on both
	awaitPast(t, T)
	login(alice1, a, "alice")
	login(alice2, b, "alice")
	for _, ci := range []caddyInstance{a, b} {
		expect("alice logged in again", alice1, ci, aliceIn)
		expect("alice logged in again", alice2, ci, aliceIn)
	}

	// The admin API: the instance that takes it applies it before answering.
	code, resp, body := adminRevokeCall(t, b, `{"flask": "user_id", "value": 42}`)
	if code != http.StatusOK || len(resp.Revoked) != 1 || resp.Revoked[0].Kind != "flask" || resp.Revoked[0].Name != "user_id" ||
		resp.OthersWithin != "200ms" || strings.Contains(body, `"42"`) {
		t.Fatalf("POST /signed_cookies/revoke: %d %s", code, body)
	}
	T2 := resp.Revoked[0].Before
	expect("at once after POST /signed_cookies/revoke", alice1, b, out)
	awaitHeld(t, a, "flask", "user_id", T2)
	expect("after POST /signed_cookies/revoke", alice2, a, out)
	for _, ci := range []caddyInstance{a, b} {
		expect("bob after POST /signed_cookies/revoke", bob, ci, bobIn)
	}
	awaitPast(t, T2)
	login(alice2, a, "alice")
	expect("alice logged in again after the admin API", alice2, b, aliceIn)
}

// revokeApp sets session=<user> on /?login=<user> and answers with the session and the
// visitor ID it reads.
func revokeApp(t testing.TB) *upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if u := r.URL.Query().Get("login"); u != "" {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: u, Path: "/"})
		}
		s := "-"
		if c, err := r.Cookie("session"); err == nil {
			s = c.Value
		}
		fmt.Fprintf(w, "%s %s", s, r.Header.Get("X-Visitor-Id"))
	})
}

// The same for a signed session value, a visitor ID and the emergency brake, with two
// instances revoking at once (neither revocation is lost), the admin API's errors, and the
// metrics.
func TestRevokeCookieVisitorAndAll(t *testing.T) {
	up := revokeApp(t)
	dir := t.TempDir()
	site := `
	signed_cookies {
		check_interval 200ms
		track
		sign session
	}
	reverse_proxy ` + up.Addr
	a := startCaddy(t, site, withStorage(dir), asProcess())
	b := startCaddy(t, site, withStorage(dir), asProcess())
	alice1, alice2, bob := newClient(t), newClient(t), newClient(t)
	state := func(c *http.Client, ci caddyInstance, query string) (session, vid string, resp *http.Response) {
		t.Helper()
		resp, body := get(t, c, ci.URL+"/"+query)
		session, vid, _ = strings.Cut(body, " ")
		return session, vid, resp
	}
	_, alice1ID, _ := state(alice1, a, "?login=alice")
	_, alice2ID, _ := state(alice2, b, "?login=alice")
	_, bobID, _ := state(bob, a, "?login=bob")
	expect := func(step string, c *http.Client, ci caddyInstance, wantSession, wantID string) string {
		t.Helper()
		session, id, resp := state(c, ci, "")
		if session != wantSession {
			t.Errorf("%s: through %s the app reads session %q, want %q", step, ci.URL, session, wantSession)
		}
		if wantSession == "-" && !slicesContain(setCookies(resp, "session"), "session=; Path=/; Max-Age=0") {
			t.Errorf("%s: through %s the revoked session is not cleared: %q", step, ci.URL, resp.Header.Values("Set-Cookie"))
		}
		if old, isNew := strings.CutPrefix(wantID, "new, not "); isNew && (id == old || id == "") {
			t.Errorf("%s: through %s the revoked visitor kept ID %s", step, ci.URL, id)
		} else if !isNew && id != wantID {
			t.Errorf("%s: through %s the visitor ID changed from %s to %s", step, ci.URL, wantID, id)
		}
		return id
	}
	for _, ci := range []caddyInstance{a, b} {
		expect("logged in", alice1, ci, "alice", alice1ID)
		expect("logged in", alice2, ci, "alice", alice2ID)
		expect("logged in", bob, ci, "bob", bobID)
	}
	ringBefore, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey)))
	if err != nil {
		t.Fatal(err)
	}

	// A signed session value, through the admin API of A: at once on A, at B's next re-read.
	code, resp, body := adminRevokeCall(t, a, `{"cookie": "session", "value": "alice"}`)
	if code != http.StatusOK || len(resp.Revoked) != 1 || strings.Contains(body, "alice") {
		t.Fatalf("revoking session=alice: %d %s", code, body)
	}
	T := resp.Revoked[0].Before
	expect("session=alice revoked, at once", alice1, a, "-", alice1ID)
	awaitHeld(t, b, "cookie", "session", T)
	expect("session=alice revoked", alice2, b, "-", alice2ID)
	for _, ci := range []caddyInstance{a, b} {
		expect("bob after session=alice", bob, ci, "bob", bobID)
	}
	awaitPast(t, T)
	state(alice1, b, "?login=alice")
	state(alice2, a, "?login=alice")
	expect("alice's new session", alice1, a, "alice", alice1ID)
	expect("alice's new session", alice2, b, "alice", alice2ID)

	// What the admin API refuses, and says why.
	for _, c := range []struct {
		body string
		code int
		says string
	}{
		{`{"cookie": "nope", "value": "x"}`, 404, `no signed_cookies handler signs or encrypts cookie \"nope\"`},
		{`{"flask": "user_id", "value": "42"}`, 404, "no flask_session exposes the field"},
		{`{"cookie": "session"}`, 400, "value: empty"},
		{`{"all": true, "visitor": "x"}`, 400, "want exactly one of"},
		{`{"visitor": "not-an-id"}`, 400, "is not a visitor ID"},
		{`{"all": true, "before": "2099-01-01"}`, 400, "more than a day ahead"},
		{`{"all": true, "before": "2001-01-01"}`, 400, "nothing to revoke"},
		{`{"everything": true}`, 400, "unknown field"},
	} {
		if code, _, body := adminRevokeCall(t, a, c.body); code != c.code || !strings.Contains(body, c.says) {
			t.Errorf("POST %s: %d %s, want %d saying %q", c.body, code, body, c.code, c.says)
		}
	}

	// A visitor ID, through the CLI: a new ID, and its session stays.
	Tv, _ := cliRevokeRun(t, a, "--visitor", bobID)
	awaitHeld(t, a, "visitor", "", Tv)
	awaitHeld(t, b, "visitor", "", Tv)
	newBobID := expect("bob's visitor ID revoked", bob, b, "bob", "new, not "+bobID)
	expect("alice's visitor ID", alice1, b, "alice", alice1ID)
	awaitPast(t, Tv)
	expect("bob's new visitor ID", bob, a, "bob", newBobID)

	// Two instances revoking at once: neither revocation is lost.
	var wg sync.WaitGroup
	for _, c := range []struct {
		ci   caddyInstance
		user string
	}{{a, "carol"}, {b, "dave"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _, body := adminRevokeCall(t, c.ci, `{"cookie": "session", "value": "`+c.user+`"}`); code != http.StatusOK {
				t.Errorf("revoking %s through %s: %d %s", c.user, c.ci.URL, code, body)
			}
		}()
	}
	wg.Wait()
	stored, err := revoke.Read(t.Context(), storageOf(dir), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n := stored.Count(); n != 4 {
		t.Errorf("after revoking carol and dave at once the store holds %d entries, want 4 (alice, bob's ID, carol, dave)", n)
	}

	// The emergency brake: everything of the realm, the keys kept.
	awaitPast(t, T)
	code, resp, body = adminRevokeCall(t, b, `{"all": true}`)
	if code != http.StatusOK || len(resp.Revoked) != 1 || resp.Revoked[0].Kind != "all" {
		t.Fatalf("revoking all: %d %s", code, body)
	}
	Ta := resp.Revoked[0].Before
	expect("all revoked, at once", alice1, b, "-", "new, not "+alice1ID)
	awaitHeld(t, a, "all", "", Ta)
	expect("all revoked", bob, a, "-", "new, not "+newBobID)
	expect("all revoked", alice2, a, "-", "new, not "+alice2ID)
	if after, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey))); !bytes.Equal(after, ringBefore) {
		t.Error("revoking all changed the key ring")
	}
	awaitPast(t, Ta)
	_, id, _ := state(alice1, a, "?login=alice")
	expect("after all, a new session", alice1, b, "alice", id)

	m := scrapeMetrics(t, a.AdminAddr)
	if m[`caddy_signed_cookies_invalid_total{reason="revoked"}`] < 3 || m["caddy_signed_cookies_revocations"] != 5 {
		t.Errorf("metrics: revoked %v, revocations held %v", m[`caddy_signed_cookies_invalid_total{reason="revoked"}`], m["caddy_signed_cookies_revocations"])
	}
}

// With configured secrets there is no key ring: the revocations go to the config's storage,
// where the CLI finds them too; `revocations` lists them without a value.
func TestRevokeWithConfiguredSecrets(t *testing.T) {
	up := revokeApp(t)
	dir := t.TempDir()
	ci := startCaddy(t, `
	signed_cookies {
		secret `+testSecret+`
		sign session
	}
	reverse_proxy `+up.Addr, withStorage(dir))
	c := newClient(t)
	get(t, c, ci.URL+"/?login=alice")
	code, resp, body := adminRevokeCall(t, ci, `{"cookie": "session", "value": "alice"}`)
	if code != http.StatusOK || resp.OthersWithin != "1m0s" {
		t.Fatalf("revoking: %d %s", code, body)
	}
	if _, body := get(t, c, ci.URL+"/"); !strings.HasPrefix(body, "- ") {
		t.Errorf("the revoked session reached the app: %q", body)
	}
	f, err := revoke.Read(t.Context(), storageOf(dir), time.Now())
	if err != nil || f.Count() != 1 {
		t.Fatalf("the config's storage holds %v: %v", f, err)
	}
	cdir := t.TempDir()
	config := cliWriteFile(t, cdir, "Caddyfile", ci.Caddyfile)
	out, errOut, code := cliRun(t, cdir, nil, "signed-cookies", "revocations", "--config", config, "--adapter", "caddyfile")
	if code != 0 || !strings.Contains(out, "revocations: signed_cookies/revocations.json in FileStorage:"+dir) ||
		!strings.Contains(out, "cookie  session  "+f.Realms[""][0].Subject) || strings.Contains(out, "alice") {
		t.Errorf("revocations: status %d\n%s%s", code, out, errOut)
	}
	t.Logf("caddy signed-cookies revocations:\n%s", out)
}

// A store damaged under a running instance: the revocations it held stay in force, a new one
// is refused with the way out, and once the damage is moved away the instance stores what it
// holds again.
func TestRevocationStoreDamagedUnderRunningInstance(t *testing.T) {
	up := revokeApp(t)
	dir := t.TempDir()
	ci := startCaddy(t, `
	signed_cookies {
		check_interval 200ms
		sign session
	}
	reverse_proxy `+up.Addr, withStorage(dir), asProcess())
	// withCookie is what the app reads of a request carrying the session value v
	withCookie := func(v string) string {
		t.Helper()
		_, body := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+v)
		s, _, _ := strings.Cut(body, " ")
		return s
	}
	c := newClient(t)
	get(t, c, ci.URL+"/?login=alice")
	stolen := jarValue(t, c, ci.URL, "session")
	code, resp, body := adminRevokeCall(t, ci, `{"cookie": "session", "value": "alice"}`)
	if code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	p := filepath.Join(dir, filepath.FromSlash(revoke.StorageKey))
	if err := os.WriteFile(p, []byte(`{"version": 1, "realms": {"": [{"kind": "all"`), 0o600); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, ci.Cmd, "revocation store re-read failed; keeping the revocations in memory")
	if s := withCookie(stolen); s != "-" {
		t.Errorf("with the store damaged, the revoked session reached the app as %q", s)
	}
	awaitPast(t, resp.Revoked[0].Before)
	get(t, c, ci.URL+"/?login=alice")
	if s := withCookie(jarValue(t, c, ci.URL, "session")); s != "alice" {
		t.Errorf("with the store damaged, a session issued after the revocation reached the app as %q: everyone logged out", s)
	}
	if code, _, body := adminRevokeCall(t, ci, `{"cookie": "session", "value": "bob"}`); code != http.StatusInternalServerError || !strings.Contains(body, "move it away") {
		t.Errorf("revoking over a damaged store: %d %s", code, body)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if f, err := revoke.Read(t.Context(), storageOf(dir), time.Now()); err == nil && f.Count() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revocation store was not restored from the instance's copy")
		}
	}
	if s := withCookie(stolen); s != "-" {
		t.Errorf("after the restore, the revoked session reached the app as %q", s)
	}
}

// A revoked Flask session is dropped and cleared even with on_invalid pass, which forwards
// forged sessions for the app to judge: the app would take a revoked one as valid.
func TestRevokedFlaskSessionNeverPassed(t *testing.T) {
	t.Setenv(flaskKeyEnv, flaskKey)
	up := startUpstream(t, nil)
	ci := startCaddy(t, `
	signed_cookies {
		flask_session {
			secret_key {env.`+flaskKeyEnv+`}
			expose user_id
			on_invalid pass
		}
	}
	reverse_proxy `+up.Addr)
	res := dangerousPy(t, flaskSign(flaskKey, `{"user_id": 42}`), flaskSign(flaskKey, `{"user_id": 7}`))
	if code, _, body := adminRevokeCall(t, ci, `{"flask": "user_id", "value": "42"}`); code != http.StatusOK {
		t.Fatalf("revoking: %d %s", code, body)
	}
	resp, _ := get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+res[0].Token)
	if v, n := upstreamCookie(up.last(), "session"); n != 0 {
		t.Errorf("the revoked session reached the app: %q", v)
	}
	if !slicesContain(setCookies(resp, "session"), "session=; Path=/; Max-Age=0") {
		t.Errorf("the revoked session was not cleared: %q", resp.Header.Values("Set-Cookie"))
	}
	get(t, http.DefaultClient, ci.URL+"/", "Cookie", "session="+res[1].Token)
	if v, _ := upstreamCookie(up.last(), "session"); v != res[1].Token || up.last().Header.Get("X-Flask-Session-User-Id") != "7" {
		t.Errorf("another user's session: forwarded %q, user %q", v, up.last().Header.Get("X-Flask-Session-User-Id"))
	}
}
