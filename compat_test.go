// The compatibility test: the configs, cookies and key rings the previous release made, kept in
// testdata/compat/<release>/ (recorded by testdata/compat/make.sh with a real Caddy of that
// release; its README says what each file is), are read by this build through a real Caddy,
// without the old source. Each config loads, or is refused on purpose with a CHANGELOG entry
// naming its replacement; each cookie sent with the same keys (the configured secrets, a copy
// of the stored ring) reaches the upstream as the old release's upstream read it, or, once
// past its max_age, is refused as expired. The tests hold on any later date.

package signedcookies

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// compatDir holds what the previous release made.
const compatDir = "testdata/compat/v0.1.0"

// compatMargin is how near its expiry a cookie is checked only at the bytes level: a request
// that close to the boundary may see it either way.
const compatMargin = 2 * time.Minute

// compatManifest is testdata/compat/<release>/manifest.json (see its README).
type compatManifest struct {
	Release string            `json:"release"`
	Made    string            `json:"made"`
	Secrets map[string]string `json:"secrets"`
	Configs []compatConfig    `json:"configs"`
	Cookies []compatCookie    `json:"cookies"`
}

type compatConfig struct {
	Name    string            `json:"name"`
	File    string            `json:"file"`
	Adapter string            `json:"adapter"`
	Covers  string            `json:"covers"`
	Env     map[string]string `json:"env"`
	Secrets []string          `json:"secrets"`
	Realm   string            `json:"realm"`
	Ring    *struct {
		File string `json:"file"`
		Path string `json:"path"`
	} `json:"ring"`
	WeakSecret    string `json:"weak_secret"`
	WeakAt        int    `json:"weak_position"`
	VisitorMaxAge int64  `json:"visitor_max_age"`
	MaxAge        int64  `json:"max_age"`
}

// compatRead is what the old release's upstream read of one cookie sent back alone.
type compatRead struct {
	Status     int               `json:"status"`
	Cookie     *string           `json:"cookie"`
	Header     map[string]string `json:"header"`
	Resigned   bool              `json:"resigned"`
	ResignedBy string            `json:"resigned_by"`
}

type compatCookie struct {
	Name      string     `json:"name"`
	Value     string     `json:"value"`
	Config    string     `json:"config"`
	Kind      string     `json:"kind"`
	Encrypted bool       `json:"encrypted"`
	Realm     string     `json:"realm"`
	Secret    string     `json:"secret"`
	Ring      string     `json:"ring"`
	RingIndex *int       `json:"ring_index"`
	Path      string     `json:"path"`
	Plain     string     `json:"plain"`
	VisitorID string     `json:"visitor_id"`
	SignedAt  int64      `json:"signed_at"`
	MaxAge    int64      `json:"max_age"`
	Read      compatRead `json:"read"`
	Under     []struct {
		Config string     `json:"config"`
		Read   compatRead `json:"read"`
	} `json:"verify_under"`
}

func (c compatCookie) label() string { return c.Config + "/" + c.Name + "@" + fmt.Sprint(c.SignedAt) }

// compatRefusal is a config of the previous release that this build refuses at load on purpose.
type compatRefusal struct {
	err         string   // what the load error says
	changelog   string   // the CHANGELOG.md entry that names the replacement
	replacement string   // a site body that replaces it and must load; {{X}} is secret X
	lost        []string // cookies of the refused config the replacement cannot read (Upgrading says so)
}

// compatRefused lists every config of the previous release this build refuses.
var compatRefused = map[string]compatRefusal{
	"header-trailer": {
		err:         `header: "Trailer" cannot carry the visitor ID`,
		changelog:   "`track { header Trailer }` is refused",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t\ttrack\n\t}\n",
	},
	"after-reverse-proxy": {
		err:         "never runs",
		changelog:   "A handler that no request reaches is refused",
		replacement: "\troute {\n\t\tsigned_cookies {\n\t\t\tsecret {{A}}\n\t\t\tsign session\n\t\t}\n\t}\n",
	},
	"two-handlers-one-name": {
		err:         `both manage cookies named "session", differently`,
		changelog:   "Two handlers on one request path that manage one cookie name differently are refused",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t\tsign session\n\t}\n\thandle /app/* {\n\t\treverse_proxy {$COMPAT_UPSTREAM}\n\t}\n",
	},
	"sign-encrypt-overlap": {
		err:         "both claim",
		changelog:   "A cookie name that two rules of one handler match is refused",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t\tsign sess_id\n\t\tencrypt sess_cart\n\t}\n",
	},
	"lookalike-names": {
		err:         "can name one cookie for the upstream",
		changelog:   "Names in one handler that an upstream may read as one cookie",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t\tencrypt session\n\t}\n",
		lost:        []string{"Session"},
	},
	"errors-proxied": {
		err:       "which no signed_cookies handler covers there",
		changelog: "An error route that answers with `reverse_proxy` without a `signed_cookies` of its own is refused",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t\tsign session\n\t}\n\thandle_errors {\n\t\tsigned_cookies {\n\t\t\tsecret {{A}}\n\t\t\tsign session\n\t\t}\n" +
			"\t\treverse_proxy {$COMPAT_UPSTREAM}\n\t}\n",
	},
	"two-visitor-cookies": {
		err:         "both issue visitor IDs",
		changelog:   "Two handlers on one request path that issue different visitor cookies are refused",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t}\n\thandle /shop/* {\n\t\treverse_proxy {$COMPAT_UPSTREAM}\n\t}\n",
	},
}

// compatChange is a config this build loads but reads differently, on purpose.
type compatChange struct {
	changelog  string
	lostHeader string // the old release sent the visitor ID in this header; this build does not
}

var compatChanged = map[string]compatChange{
	"header-off-uppercase": {changelog: "`header OFF` (any case) now means no header", lostHeader: "Off"},
}

// compatCookieRefusal is a cookie the previous release issued that this build refuses on
// purpose: the reason it counts, the CHANGELOG entry, and a site body under which the cookie
// reads again ({{X}} is secret X, {{UNTIL}} a date a month ahead), if there is one.
type compatCookieRefusal struct {
	reason, changelog, replacement string
}

// compatCookieRefused lists them by config/name.
var compatCookieRefused = map[string]compatCookieRefusal{
	"values/v_space": {reason: "unsafe_value", changelog: "A signed value that another parser reads as several cookies"},
	"nested-handlers/session": {reason: "malformed", changelog: "Every handler on a request path now enforces its own cookies",
		replacement: "\tsigned_cookies {\n\t\tsecret {{A}}\n\t}\n\thandle /app/* {\n\t\tsigned_cookies {\n\t\t\tsecret {{A}}\n\t\t\tsign session\n" +
			"\t\t\tadopt session until {{UNTIL}}\n\t\t}\n\t\treverse_proxy {$COMPAT_UPSTREAM}\n\t}\n"},
}

func readCompatManifest(t *testing.T) compatManifest {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(compatDir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m compatManifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(m.Configs) == 0 || len(m.Cookies) == 0 {
		t.Fatal("manifest.json lists no configs or no cookies")
	}
	return m
}

// compatSetup is where one config runs.
type compatSetup struct {
	port, admin int
	storage     string
	upstream    *upstream
}

func newCompatSetup(t *testing.T) compatSetup {
	return compatSetup{port: freePort(t), admin: freePort(t), storage: t.TempDir(), upstream: startUpstream(t, nil)}
}

func (s compatSetup) url() string       { return fmt.Sprintf("http://127.0.0.1:%d", s.port) }
func (s compatSetup) adminAddr() string { return fmt.Sprintf("127.0.0.1:%d", s.admin) }

// text is a config of the manifest with its tokens and secrets filled in.
func (s compatSetup) text(m compatManifest, raw, logLevel string) string {
	r := []string{"{$COMPAT_ADMIN}", s.adminAddr(), "{$COMPAT_PORT}", fmt.Sprint(s.port),
		"{$COMPAT_UPSTREAM}", s.upstream.Addr, "{$COMPAT_STORAGE}", s.storage, "{$COMPAT_LOG_LEVEL}", logLevel}
	for l, v := range m.Secrets {
		r = append(r, "{{"+l+"}}", v)
	}
	return strings.NewReplacer(r...).Replace(raw)
}

func compatConfigText(t *testing.T, m compatManifest, c compatConfig, s compatSetup, logLevel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(compatDir, c.File))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Env {
		t.Setenv(k, v)
	}
	if c.Ring != nil {
		ring, err := os.ReadFile(filepath.Join(compatDir, c.Ring.File))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(s.storage, filepath.FromSlash(c.Ring.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, ring, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s.text(m, string(b), logLevel)
}

// loadCompat loads a config of the manifest (Caddyfile or JSON) and returns the error.
func loadCompat(t *testing.T, text, adapter string) error {
	t.Helper()
	if adapter == "caddyfile" {
		return loadCaddyErr(t, "", withCaddyfile(text, ""))
	}
	err := caddy.Load([]byte(text), true)
	_ = caddy.Stop()
	return err
}

// startCompat runs a config of the manifest in this process until the test ends.
func startCompat(t *testing.T, text, adapter string, s compatSetup) {
	t.Helper()
	if adapter == "caddyfile" {
		startCaddy(t, "", withCaddyfile(text, s.url()))
		return
	}
	if err := caddy.Load([]byte(text), true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, text)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	waitListening(t, fmt.Sprintf("127.0.0.1:%d", s.port))
}

// compatKeys are the keys that signed a cookie, from the manifest's secrets or its ring file.
func compatKeys(t *testing.T, m compatManifest, c compatCookie) *cookie.KeyRing {
	t.Helper()
	var secret string
	switch {
	case c.Secret != "":
		secret = m.Secrets[c.Secret]
	case c.Ring != "" && c.RingIndex != nil:
		f := readCompatRing(t, filepath.Join(compatDir, c.Ring))
		if *c.RingIndex >= len(f.Secrets) {
			t.Fatalf("%s: %s has no secret %d", c.label(), c.Ring, *c.RingIndex+1)
		}
		secret = f.Secrets[*c.RingIndex].Secret
	default:
		t.Fatalf("%s: the manifest names no secret for it", c.label())
	}
	return compatRing(t, c.Realm, secret)
}

// compatRing derives keys as the module does, from the decoded secrets, without the checks
// that refuse weak ones: the previous release accepted secrets this build's checks refuse.
func compatRing(t *testing.T, realm string, secrets ...string) *cookie.KeyRing {
	t.Helper()
	var raw [][]byte
	for _, s := range secrets {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("a secret of the manifest is not base64: %v", err)
		}
		raw = append(raw, b)
	}
	r, err := cookie.NewRealmKeyRing(realm, raw...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// compatRingFile is the stored key ring as the previous release wrote it (the fields it had).
type compatRingFile struct {
	Version int                `json:"version"`
	Secrets []compatRingSecret `json:"secrets"`
	Keep    time.Duration      `json:"keep"`
}

type compatRingSecret struct {
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
	Active  time.Time `json:"active"`
	Retired time.Time `json:"retired"`
}

func readCompatRing(t *testing.T, file string) compatRingFile {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var f compatRingFile
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if f.Version != 1 || len(f.Secrets) == 0 {
		t.Fatalf("%s: version %d with %d secrets", file, f.Version, len(f.Secrets))
	}
	return f
}

// checkCompatBytes decodes a cookie with the cookie package's codec at any age: the plain
// value or visitor ID and the signing time the manifest recorded.
func checkCompatBytes(t *testing.T, m compatManifest, c compatCookie) {
	t.Helper()
	if c.Kind == "plain" {
		if c.Value != c.Plain {
			t.Errorf("a plain cookie holds %q, the manifest says the upstream set %q", c.Value, c.Plain)
		}
		return
	}
	d, err := cookie.NewCodec(compatKeys(t, m, c), cookie.Options{Encrypt: c.Encrypted}).Decode(c.Name, c.Value)
	if err != nil {
		t.Fatalf("the codec does not decode it: %v", err)
	}
	if d.Signed != c.SignedAt {
		t.Errorf("signed at %d, the manifest says %d", d.Signed, c.SignedAt)
	}
	got := string(d.Value)
	want := c.Plain
	if c.Kind == "visitor" {
		got, want = cookie.UUIDString(d.Value), c.VisitorID
	}
	if got != want {
		t.Errorf("decodes to %q, want %q", got, want)
	}
}

// compatFresh says whether a cookie signed at signed is within maxAge now, and whether that
// is certain (not within compatMargin of its expiry).
func compatFresh(signed, maxAge int64) (fresh, certain bool) {
	left := time.Until(time.Unix(signed+maxAge, 0))
	return left > 0, left > compatMargin || left < -compatMargin
}

// invalidCounts are the caddy_signed_cookies_invalid_total samples by reason.
func invalidCounts(t *testing.T, admin string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for k, v := range scrapeMetrics(t, admin) {
		if r, ok := strings.CutPrefix(k, `caddy_signed_cookies_invalid_total{reason="`); ok {
			out[strings.TrimSuffix(r, `"}`)] = v
		}
	}
	return out
}

// upstreamPairs reads the raw pairs of the Cookie header an upstream received.
func upstreamPairs(r *http.Request) map[string]string {
	out := map[string]string{}
	if r == nil {
		return out
	}
	for _, line := range r.Header.Values("Cookie") {
		for p := range strings.SplitSeq(line, "; ") {
			if k, v, ok := strings.Cut(p, "="); ok {
				if _, dup := out[k]; !dup {
					out[k] = v
				}
			}
		}
	}
	return out
}

// sendCompat sends one cookie alone and returns the response and what the upstream got (nil
// when the request did not reach it).
func sendCompat(t *testing.T, s compatSetup, c compatCookie) (*http.Response, *http.Request) {
	t.Helper()
	before := s.upstream.count()
	resp, _ := get(t, &http.Client{Timeout: 10 * time.Second}, s.url()+c.Path, "Cookie", c.Name+"="+c.Value)
	if s.upstream.count() == before {
		return resp, nil
	}
	return resp, s.upstream.last()
}

// checkCompatCookie sends a cookie of the manifest to a running config whose keys verify it:
// the upstream reads what want says, a visitor cookie keeps its ID (re-signed with the
// config's signing keys, read after the request, when want says the old release re-signed
// it), and a cookie past maxAge is refused as expired.
func checkCompatCookie(t *testing.T, m compatManifest, s compatSetup, c compatCookie, cfg compatConfig, want compatRead) {
	t.Helper()
	maxAge := cfg.MaxAge
	if c.Kind == "visitor" {
		maxAge = cfg.VisitorMaxAge
	}
	fresh, certain := compatFresh(c.SignedAt, maxAge)
	if c.Kind == "plain" {
		fresh, certain = true, true // no signature to age
	}
	if !certain {
		t.Logf("%s is within %s of its expiry: checked at the bytes level only", c.label(), compatMargin)
		return
	}
	key := cfg.Name + "/" + c.Name
	refused, onPurpose := compatCookieRefused[key]
	before := invalidCounts(t, s.adminAddr())
	resp, got := sendCompat(t, s, c)
	after := invalidCounts(t, s.adminAddr())
	counted := map[string]float64{}
	for r, v := range after {
		if d := v - before[r]; d > 0 {
			counted[r] = d
		}
	}
	pairs := upstreamPairs(got)
	if !fresh || onPurpose {
		var reasons []string
		if !fresh {
			reasons = append(reasons, "expired")
		}
		if onPurpose {
			reasons = append(reasons, refused.reason)
			checkChangelog(t, refused.changelog)
			if fresh && refused.replacement != "" {
				checkCompatReplaced(t, m, c, want, refused.replacement)
			}
		}
		if !fresh && c.Ring != "" && compatPruned(t, c) {
			// past the ring's keep, this build may have dropped the secret from its copy
			reasons = append(reasons, "bad_mac")
		}
		one := len(counted) == 1
		for r := range counted {
			one = one && slices.Contains(reasons, r)
		}
		if !one {
			t.Errorf("%s (signed %s, max_age %ds): refused as %v, want one of %v", c.label(),
				time.Unix(c.SignedAt, 0).UTC().Format(time.RFC3339), maxAge, counted, reasons)
		}
		if v, ok := pairs[c.Name]; ok && (v == c.Plain || v == c.VisitorID) {
			t.Errorf("%s: the refused value reached the upstream", c.label())
		}
		if c.Kind == "visitor" && got != nil {
			for h, id := range want.Header {
				if got.Header.Get(h) == id {
					t.Errorf("%s: the expired ID reached the upstream in %s", c.label(), h)
				}
			}
		}
		return
	}
	if got == nil {
		t.Fatalf("%s: status %d, the upstream was not reached (the old release: %d)", c.label(), resp.StatusCode, want.Status)
	}
	if len(counted) > 0 {
		t.Errorf("%s: counted invalid %v", c.label(), counted)
	}
	v, ok := pairs[c.Name]
	switch {
	case want.Cookie == nil && ok:
		t.Errorf("%s: the upstream read %s=%q, the old release forwarded none", c.label(), c.Name, v)
	case want.Cookie != nil && (!ok || v != *want.Cookie):
		t.Errorf("%s: the upstream read %q (present %v), the old release's read %q", c.label(), v, ok, *want.Cookie)
	}
	if c.Kind != "visitor" {
		return
	}
	change, changed := compatChanged[cfg.Name]
	for h, id := range want.Header {
		if changed && h == change.lostHeader {
			checkChangelog(t, change.changelog)
			if got.Header.Get(h) != "" {
				t.Errorf("%s: the ID still reaches the upstream in %s", c.label(), h)
			}
			continue
		}
		if g := got.Header.Get(h); g != id {
			t.Errorf("%s: the upstream read %s: %q, the old release's read %q", c.label(), h, g, id)
		}
	}
	lines := setCookies(resp, c.Name)
	if want.Resigned && len(lines) == 0 {
		t.Errorf("%s: not re-signed; the old release re-signed it (verified with an older secret)", c.label())
	}
	for _, l := range lines {
		_, nv, _ := strings.Cut(l, "=")
		nv, _, _ = strings.Cut(nv, ";")
		d, err := cookie.NewCodec(signingKeys(t, m, cfg, s), cookie.Options{Encrypt: c.Encrypted}).Decode(c.Name, nv)
		if err != nil {
			t.Errorf("%s: re-signed value does not verify with the signing keys: %v", c.label(), err)
		} else if id := cookie.UUIDString(d.Value); id != c.VisitorID {
			t.Errorf("%s: re-signed with ID %s, want %s", c.label(), id, c.VisitorID)
		}
	}
}

// compatPruned says whether the secret that signed a ring cookie is past the ring's keep, when
// a build may drop it.
func compatPruned(t *testing.T, c compatCookie) bool {
	f := readCompatRing(t, filepath.Join(compatDir, c.Ring))
	if *c.RingIndex >= len(f.Secrets) {
		return false
	}
	s := f.Secrets[*c.RingIndex]
	retired := s.Retired
	if retired.IsZero() {
		retired = time.Unix(c.SignedAt, 0)
	}
	return time.Since(retired) > f.Keep-compatMargin
}

// checkCompatReplaced runs a replacement site (as a process: this one runs the config under
// test) and checks that its upstream reads the cookie as the old release's did.
func checkCompatReplaced(t *testing.T, m compatManifest, c compatCookie, want compatRead, body string) {
	t.Helper()
	s := newCompatSetup(t)
	body = strings.ReplaceAll(body, "{{UNTIL}}", time.Now().AddDate(0, 1, 0).UTC().Format(time.DateOnly))
	startCaddy(t, "", withCaddyfile(compatSite(m, s, body), s.url()), asProcess())
	_, got := sendCompat(t, s, c)
	if v, ok := upstreamPairs(got)[c.Name]; want.Cookie != nil && (!ok || v != *want.Cookie) {
		t.Errorf("%s: under the replacement the upstream read %q (present %v), the old release's read %q", c.label(), v, ok, *want.Cookie)
	}
}

// compatSite is a whole Caddyfile for a site body of the test's, with s's tokens and m's secrets.
func compatSite(m compatManifest, s compatSetup, body string) string {
	return s.text(m, "{\n\tadmin {$COMPAT_ADMIN}\n\tstorage file_system {$COMPAT_STORAGE}\n\tauto_https off\n\tpersist_config off\n"+
		"\tlog {\n\t\tlevel ERROR\n\t}\n}\n\nhttp://127.0.0.1:{$COMPAT_PORT} {\n\tbind 127.0.0.1\n"+body+"\treverse_proxy {$COMPAT_UPSTREAM}\n}\n", "ERROR")
}

func checkChangelog(t *testing.T, entry string) {
	t.Helper()
	b, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	// compared with lines joined, as Markdown reads them
	if !strings.Contains(strings.Join(strings.Fields(string(b)), " "), entry) {
		t.Errorf("CHANGELOG.md has no entry %q", entry)
	}
}

// signingKeys are the keys a running config signs with now: its first configured secret, or
// every secret of its stored ring (any may sign once rotated in).
func signingKeys(t *testing.T, m compatManifest, cfg compatConfig, s compatSetup) *cookie.KeyRing {
	t.Helper()
	if len(cfg.Secrets) > 0 {
		return compatRing(t, cfg.Realm, m.Secrets[cfg.Secrets[0]])
	}
	f := readCompatRing(t, filepath.Join(s.storage, filepath.FromSlash(cfg.Ring.Path)))
	var secrets []string
	for _, x := range f.Secrets {
		secrets = append(secrets, x.Secret)
	}
	return compatRing(t, cfg.Realm, secrets...)
}

// Every config of the previous release loads with this build, or is refused on purpose, and
// reads every cookie the previous release issued under it as that release's upstream did.
func TestCompatPreviousRelease(t *testing.T) {
	m := readCompatManifest(t)
	names := map[string]compatConfig{}
	for _, c := range m.Configs {
		names[c.Name] = c
	}
	for n := range maps.Keys(compatRefused) {
		if _, ok := names[n]; !ok {
			t.Errorf("compatRefused names %q, which the manifest does not have", n)
		}
	}
	for _, c := range m.Cookies {
		if _, ok := names[c.Config]; !ok {
			t.Errorf("cookie %s: no config %q", c.label(), c.Config)
		}
	}
	for _, cfg := range m.Configs {
		if cfg.WeakSecret != "" {
			continue // TestCompatWeakSecrets
		}
		t.Run(cfg.Name, func(t *testing.T) {
			if r, ok := compatRefused[cfg.Name]; ok {
				checkCompatRefused(t, m, cfg, r)
				return
			}
			s := newCompatSetup(t)
			text := compatConfigText(t, m, cfg, s, "ERROR")
			startCompat(t, text, cfg.Adapter, s)
			for _, c := range m.Cookies {
				want, ok := c.Read, c.Config == cfg.Name
				for _, u := range c.Under {
					if u.Config == cfg.Name {
						want, ok = u.Read, true
					}
				}
				if !ok {
					continue
				}
				t.Run(c.Name+"@"+fmt.Sprint(c.SignedAt), func(t *testing.T) {
					if c.Config == cfg.Name {
						checkCompatBytes(t, m, c)
					}
					checkCompatCookie(t, m, s, c, cfg, want)
				})
			}
			if cfg.Ring != nil {
				checkCompatRingKept(t, cfg, s)
			}
		})
	}
}

// checkCompatRingKept checks that this build kept every secret of the old ring it read that
// can still verify a cookie.
func checkCompatRingKept(t *testing.T, cfg compatConfig, s compatSetup) {
	t.Helper()
	old := readCompatRing(t, filepath.Join(compatDir, cfg.Ring.File))
	now := readCompatRing(t, filepath.Join(s.storage, filepath.FromSlash(cfg.Ring.Path)))
	for i, x := range old.Secrets {
		if !x.Retired.IsZero() && time.Since(x.Retired) > old.Keep-compatMargin {
			continue
		}
		if !slices.ContainsFunc(now.Secrets, func(y compatRingSecret) bool { return y.Secret == x.Secret }) {
			t.Errorf("the stored ring lost secret %d of the old ring", i+1)
		}
	}
}

func checkCompatRefused(t *testing.T, m compatManifest, cfg compatConfig, r compatRefusal) {
	t.Helper()
	s := newCompatSetup(t)
	err := loadCompat(t, compatConfigText(t, m, cfg, s, "ERROR"), cfg.Adapter)
	if err == nil {
		t.Fatalf("loads; it is listed as refused on purpose (%q)", r.err)
	}
	if !strings.Contains(err.Error(), r.err) {
		t.Errorf("refused with %q, want it to say %q", err, r.err)
	}
	checkChangelog(t, r.changelog)
	// The replacement loads and reads the cookies the refused config issued.
	startCaddy(t, "", withCaddyfile(compatSite(m, s, r.replacement), s.url()))
	for _, c := range m.Cookies {
		if c.Config != cfg.Name || slices.Contains(r.lost, c.Name) {
			continue
		}
		fresh, certain := compatFresh(c.SignedAt, c.MaxAge)
		if !fresh || !certain {
			continue
		}
		_, got := sendCompat(t, s, c)
		if v := upstreamPairs(got)[c.Name]; c.Read.Cookie != nil && v != *c.Read.Cookie {
			t.Errorf("under the replacement %s reads %q, the old release's read %q", c.Name, v, *c.Read.Cookie)
		}
	}
}

// compatSecretDate matches a date as a warning would write it.
var compatSecretDate = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)

// The previous release accepted any base64 of at least 32 bytes as a secret: base64 of a hex
// string or of a passphrase, one byte repeated, a sequence, more than 1024 bytes. This build
// refuses them as the signing secret, saying how to make a strong one and to keep the old one
// second; second, after a strong one, such a secret only verifies: the config loads, a warning
// names its position and the date by which its cookies expire, its cookies verify, and the
// visitor cookie is re-signed with the strong secret.
func TestCompatWeakSecrets(t *testing.T) {
	m := readCompatManifest(t)
	kinds := 0
	for _, cfg := range m.Configs {
		if cfg.WeakSecret == "" || cfg.WeakAt != 1 {
			continue
		}
		kinds++
		second := slices.IndexFunc(m.Configs, func(c compatConfig) bool { return c.WeakSecret == cfg.WeakSecret && c.WeakAt == 2 })
		if second < 0 {
			t.Fatalf("%s: the manifest has no config with it second", cfg.Name)
		}
		t.Run(cfg.WeakSecret, func(t *testing.T) {
			weak := m.Secrets[cfg.Secrets[0]]
			t.Run("first_refused", func(t *testing.T) {
				s := newCompatSetup(t)
				err := loadCompat(t, compatConfigText(t, m, cfg, s, "ERROR"), cfg.Adapter)
				if err == nil {
					t.Fatal("a weak signing secret loads")
				}
				checkChangelog(t, "Secrets that are evidently not random are refused as the signing secret")
				msg := err.Error()
				for _, want := range []string{"secret 1", "caddy signed-cookies secret"} {
					if !strings.Contains(msg, want) {
						t.Errorf("the error does not say %q: %s", want, msg)
					}
				}
				if !regexp.MustCompile(`(?i)\bsecond\b`).MatchString(msg) {
					t.Errorf("the error does not say to keep the old secret second: %s", msg)
				}
				plain, _ := base64.StdEncoding.DecodeString(weak)
				if strings.Contains(msg, weak) || len(plain) >= 8 && strings.Contains(msg, string(plain[:8])) {
					t.Errorf("the error echoes the secret: %s", msg)
				}
			})
			t.Run("second_verifies", func(t *testing.T) {
				checkWeakSecond(t, m, m.Configs[second], cfg)
			})
		})
	}
	if kinds == 0 {
		t.Fatal("the manifest has no weak secrets")
	}
}

func checkWeakSecond(t *testing.T, m compatManifest, cfg, weakCfg compatConfig) {
	t.Helper()
	s := newCompatSetup(t)
	text := compatConfigText(t, m, cfg, s, "WARN")
	if err := loadCompat(t, text, cfg.Adapter); err != nil {
		t.Fatalf("secret <strong> <old weak> is refused: %v", err)
	}
	loaded := time.Now()
	ci := startCaddy(t, "", withCaddyfile(text, s.url()), asProcess())
	lifetime := time.Duration(max(cfg.MaxAge, cfg.VisitorMaxAge)) * time.Second
	var dates []string
	for d := -24 * time.Hour; d <= 24*time.Hour; d += 24 * time.Hour {
		dates = append(dates, loaded.Add(lifetime+d).UTC().Format(time.DateOnly))
	}
	warned := false
	for line := range strings.SplitSeq(caddyLog(t, ci.Cmd), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "secret 2") &&
			slices.ContainsFunc(compatSecretDate.FindAllString(line, -1), func(d string) bool { return slices.Contains(dates, d) }) {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning names secret 2 and the date its cookies expire by (one of %v):\n%s", dates, caddyLog(t, ci.Cmd))
	}
	strong := compatRing(t, cfg.Realm, m.Secrets[cfg.Secrets[0]])
	for _, c := range m.Cookies {
		if c.Config != weakCfg.Name {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			checkCompatBytes(t, m, c)
			maxAge := cfg.MaxAge
			if c.Kind == "visitor" {
				maxAge = cfg.VisitorMaxAge
			}
			if fresh, certain := compatFresh(c.SignedAt, maxAge); !fresh || !certain {
				return
			}
			resp, got := sendCompat(t, s, c)
			if got == nil {
				t.Fatalf("status %d, the upstream was not reached", resp.StatusCode)
			}
			want := c.Plain
			if c.Kind == "visitor" {
				want = c.VisitorID
			}
			if v := upstreamPairs(got)[c.Name]; v != want {
				t.Errorf("the upstream read %s=%q, want %q", c.Name, v, want)
			}
			if c.Kind != "visitor" {
				return
			}
			lines := setCookies(resp, c.Name)
			if len(lines) != 1 {
				t.Fatalf("the visitor cookie signed with the old secret was not re-signed: %q", resp.Header.Values("Set-Cookie"))
			}
			_, nv, _ := strings.Cut(lines[0], "=")
			nv, _, _ = strings.Cut(nv, ";")
			d, err := cookie.NewCodec(strong, cookie.Options{}).Decode(c.Name, nv)
			if err != nil || cookie.UUIDString(d.Value) != c.VisitorID {
				t.Errorf("re-signed value: %v, ID %x, want %s signed with the strong secret", err, d.Value, c.VisitorID)
			}
		})
	}
}
