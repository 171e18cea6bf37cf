// Command make writes testdata/compat/<release>/ with a real Caddy built from that release: it
// runs each config of plans.go in front of a small upstream and records, with real HTTP requests,
// the cookies that Caddy issued, what the upstream read when each came back, and the key
// rings it stored. make.sh builds the release from a worktree of its tag and runs this; it
// also runs the rolling-upgrade check (-rolling), old and new releases on one storage.
//
// It uses the standard library only, and checks every signature it records with its own
// HKDF and HMAC (not the module's code), so the record says what the old release did.
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Manifest is manifest.json: what the old release was given and what it did.
type Manifest struct {
	Release string `json:"release"`
	Commit  string `json:"commit"`
	Made    string `json:"made"`
	Note    string `json:"note"`
	// Tokens are replaced in every config before it is loaded (Caddyfiles may also take them
	// from the environment, as Caddy's {$VAR}).
	Tokens map[string]string `json:"tokens"`
	// Secrets are the configured secrets by label, as written in the configs: test-only
	// secrets made for this record.
	Secrets map[string]string `json:"secrets"`
	Configs []Config          `json:"configs"`
	Cookies []Cookie          `json:"cookies"`
}

// Config is one config the old release loaded and ran.
type Config struct {
	Name    string `json:"name"`
	File    string `json:"file"`
	Adapter string `json:"adapter"`
	Covers  string `json:"covers"`
	// Env is what the config's {env.*} placeholders read.
	Env map[string]string `json:"env,omitempty"`
	// Secrets are the labels of its configured secrets, the signing one first; none: it
	// uses the storage key ring.
	Secrets []string `json:"secrets,omitempty"`
	Realm   string   `json:"realm,omitempty"`
	// Ring is the key ring the old release stored for it; it goes at {$COMPAT_STORAGE}/<path>.
	Ring *Ring `json:"ring,omitempty"`
	// WeakSecret names the kind of secret the old release accepted and later checks refuse:
	// hex, passphrase, zeros, sequence, long. Position is the secret's place (1-based).
	WeakSecret string `json:"weak_secret,omitempty"`
	WeakAt     int    `json:"weak_position,omitempty"`
	// VisitorMaxAge and MaxAge are the oldest signatures the config accepts, in seconds, for
	// the visitor cookie and for upstream cookies.
	VisitorMaxAge int64 `json:"visitor_max_age,omitempty"`
	MaxAge        int64 `json:"max_age"`
}

// Ring is a stored key ring file.
type Ring struct {
	File string `json:"file"`
	Path string `json:"path"`
}

// Cookie is one cookie the old release issued.
type Cookie struct {
	Name      string `json:"name"`
	Value     string `json:"value"`
	SetCookie string `json:"set_cookie"`
	Config    string `json:"config"`
	Kind      string `json:"kind"` // visitor, sign, encrypt, or plain (the old release left it unsigned)
	Encrypted bool   `json:"encrypted"`
	Realm     string `json:"realm,omitempty"`
	// Secret is the label of the configured secret that signed it; with the storage key
	// ring, RingIndex is that secret's place in the ring file's list (0 is the first).
	Secret    string `json:"secret,omitempty"`
	Ring      string `json:"ring,omitempty"`
	RingIndex *int   `json:"ring_index,omitempty"`
	// Path is where it is sent back.
	Path string `json:"path"`
	// Plain is the value the upstream set; VisitorID the ID the upstream read when it was issued.
	Plain     string `json:"plain,omitempty"`
	VisitorID string `json:"visitor_id,omitempty"`
	SignedAt  int64  `json:"signed_at"`
	Signed    string `json:"signed_at_utc"`
	MaxAge    int64  `json:"max_age"`
	// Read is what the upstream read when this cookie alone came back.
	Read Read `json:"read"`
	// Under are other configs the old release accepted it under, and what their upstream read.
	Under []Under `json:"verify_under,omitempty"`
}

// Read is what the upstream read of one cookie sent back alone.
type Read struct {
	Status int `json:"status"`
	// Cookie is the cookie's value in the upstream's Cookie header; null: not forwarded.
	Cookie *string `json:"cookie"`
	// Header holds the request headers (other than Cookie) that carried the visitor ID.
	Header map[string]string `json:"header,omitempty"`
	// Resigned: the response set the visitor cookie again with the same ID, signed with
	// ResignedBy (a secret label or "ring:<index>").
	Resigned   bool   `json:"resigned,omitempty"`
	ResignedBy string `json:"resigned_by,omitempty"`
}

// Under is a cookie sent to another config.
type Under struct {
	Config string `json:"config"`
	Read   Read   `json:"read"`
}

func main() {
	caddyBin := flag.String("caddy", "", "the old release's caddy binary")
	out := flag.String("out", "", "output directory (testdata/compat/<release>)")
	release := flag.String("release", "", "the release's tag")
	commit := flag.String("commit", "", "the release's commit")
	rolling := flag.String("rolling", "", "run the rolling-upgrade check against this newer caddy binary, writing <out>/rolling-upgrade.txt")
	flag.Parse()
	if *caddyBin == "" || *out == "" {
		fatalf("%v", "usage: make -caddy OLD -out DIR -release TAG -commit SHA [-rolling NEW]")
	}
	var err error
	scratch, err = os.MkdirTemp("", "compat-make-")
	must(err)
	defer os.RemoveAll(scratch)
	if *rolling != "" {
		rollingUpgrade(*caddyBin, *rolling, *out)
		return
	}
	up := startUpstream()
	secrets := secretsFor()
	m := &Manifest{
		Release: *release, Commit: *commit, Made: time.Now().UTC().Format(time.RFC3339),
		Note: "Made by testdata/compat/make.sh with a real Caddy built from the release. Every secret here is a " +
			"test-only secret made for this record; none is used anywhere else.",
		Tokens: map[string]string{
			"{$COMPAT_ADMIN}":     "the admin endpoint's address",
			"{$COMPAT_PORT}":      "the site's port on 127.0.0.1",
			"{$COMPAT_UPSTREAM}":  "the upstream's host:port",
			"{$COMPAT_STORAGE}":   "Caddy's storage directory (file_system); rings go under it at ring.path",
			"{$COMPAT_LOG_LEVEL}": "Caddy's log level",
		},
		Secrets: secrets,
	}
	for _, d := range []string{"configs", "rings"} {
		must(os.RemoveAll(filepath.Join(*out, d)))
		must(os.MkdirAll(filepath.Join(*out, d), 0o755))
	}
	all := plans()
	byName := map[string]plan{}
	for _, p := range all {
		byName[p.name] = p
	}
	for _, p := range all {
		text := fill(p.text, secrets)
		ext := map[string]string{"caddyfile": ".Caddyfile", "json": ".json"}[p.adapter]
		file := "configs/" + p.name + ext
		must(os.WriteFile(filepath.Join(*out, file), []byte(text), 0o644))
		c := Config{Name: p.name, File: file, Adapter: p.adapter, Covers: p.covers, Secrets: p.secrets, Realm: p.realm,
			WeakSecret: p.weak, WeakAt: p.weakAt, MaxAge: int64(p.maxAge / time.Second)}
		if p.visitor != nil {
			c.VisitorMaxAge = int64(p.visitor.maxAge / time.Second)
		}
		if len(p.env) > 0 {
			c.Env = map[string]string{}
			for k, v := range p.env {
				c.Env[k] = fill(v, secrets)
			}
		}
		if p.ringPath != "" {
			c.Ring = &Ring{File: "rings/" + p.name + ".json", Path: p.ringPath}
		}
		m.Configs = append(m.Configs, c)
	}
	for _, p := range all {
		cookies := record(*caddyBin, *out, p, &m.Configs[slices.IndexFunc(m.Configs, func(c Config) bool { return c.Name == p.name })], up, secrets)
		for i := range cookies {
			for _, u := range p.under {
				cookies[i].Under = append(cookies[i].Under, Under{Config: u})
			}
		}
		m.Cookies = append(m.Cookies, cookies...)
	}
	// Cookies sent to the configs they must also verify under, each config run once.
	for _, p := range all {
		var idx []int
		for i, c := range m.Cookies {
			for _, u := range c.Under {
				if u.Config == p.name {
					idx = append(idx, i)
				}
			}
		}
		if len(idx) == 0 {
			continue
		}
		inst := run(*caddyBin, fill(p.text, secrets), p, up, secrets)
		for _, i := range idx {
			c := &m.Cookies[i]
			for j := range c.Under {
				if c.Under[j].Config == p.name {
					c.Under[j].Read = readBack(inst, *c, p, secrets)
				}
			}
		}
		inst.stop()
	}
	b, err := json.MarshalIndent(m, "", "\t")
	must(err)
	must(os.WriteFile(filepath.Join(*out, "manifest.json"), append(b, '\n'), 0o644))
	log.Printf("wrote %s: %d configs, %d cookies", *out, len(m.Configs), len(m.Cookies))
}

// record runs one config on the old release and returns the cookies it issued.
func record(bin, out string, p plan, c *Config, up *upstream, secrets map[string]string) []Cookie {
	inst := run(bin, fill(p.text, secrets), p, up, secrets)
	defer inst.stop()
	if p.noCookies {
		// It loaded and serves; what it did is in the config's covers.
		resp := inst.get("/set", url.Values{"c": login}.Encode(), "")
		log.Printf("%s: loaded; the upstream's cookies left as %q", p.name, resp.Header.Values("Set-Cookie"))
		return nil
	}
	var cookies []Cookie
	round := func() {
		if p.visitor != nil {
			cookies = append(cookies, issueVisitor(inst, p))
		}
		if len(p.sets) > 0 {
			cookies = append(cookies, setUpstream(inst, p)...)
		}
	}
	round()
	if p.rotated {
		// Wait until a rotated-in secret signs: created after rotate, active two
		// check_intervals later, taken up at the next re-read.
		ringFile := filepath.Join(inst.storage, p.ringPath)
		first := readRing(ringFile).Secrets[0].Secret
		deadline := time.Now().Add(30 * time.Second)
		for {
			f := readRing(ringFile)
			var signer string
			for _, s := range f.Secrets {
				if s.Active.IsZero() || !s.Active.After(time.Now().Add(-1500*time.Millisecond)) {
					signer = s.Secret
					break
				}
			}
			if signer != "" && signer != first {
				break
			}
			if time.Now().After(deadline) {
				fatalf("%s: the ring never rotated", p.name)
			}
			time.Sleep(200 * time.Millisecond)
		}
		round()
	}
	// What the upstream reads of each cookie sent back alone.
	for i := range cookies {
		cookies[i].Read = readBack(inst, cookies[i], p, secrets)
		if len(p.secrets) > 0 && cookies[i].Kind != "plain" {
			cookies[i].Secret = secretLabel(p, secrets, cookies[i].Name, cookies[i].Value)
		}
	}
	inst.stop()
	if p.ringPath != "" {
		b, err := os.ReadFile(filepath.Join(inst.storage, p.ringPath))
		must(err)
		must(os.WriteFile(filepath.Join(out, c.Ring.File), b, 0o644))
		ring := readRing(filepath.Join(inst.storage, p.ringPath))
		for i := range cookies {
			cookies[i].Ring = c.Ring.File
			k := ringIndex(ring, p.realm, cookies[i].Name, cookies[i].Value)
			cookies[i].RingIndex = &k
			if cookies[i].Read.Resigned {
				cookies[i].Read.ResignedBy = fmt.Sprintf("ring:%d", ringIndex(ring, p.realm, cookies[i].Name, cookies[i].Read.ResignedBy))
			}
		}
	}
	return cookies
}

// issueVisitor makes a request without cookies and returns the visitor cookie it got.
func issueVisitor(inst *instance, p plan) Cookie {
	v := p.visitor
	resp := inst.get("/", "", v.cookie)
	line := setCookieLine(resp, v.name)
	if line == "" {
		fatalf("%s: no %s cookie issued: %q", p.name, v.name, resp.Header.Values("Set-Cookie"))
	}
	seen := upstreamSaw(resp)
	id := visitorID(v, seen)
	if id == "" {
		fatalf("%s: the upstream saw no visitor ID: %+v", p.name, seen)
	}
	c := newCookie(p, line, "visitor", v.encrypt, v.maxAge)
	c.VisitorID = id
	c.Path = "/"
	return c
}

// setUpstream has the upstream set p.sets and returns the cookies as Caddy sent them.
func setUpstream(inst *instance, p plan) []Cookie {
	setPath := cmp.Or(p.setPath, "/set")
	resp := inst.get(setPath, url.Values{"c": p.sets}.Encode(), "")
	var out []Cookie
	for _, s := range p.sets {
		name, rest, _ := strings.Cut(s, "=")
		plain, _, _ := strings.Cut(rest, "; ")
		line := setCookieLine(resp, name)
		if line == "" {
			fatalf("%s: %s was not sent: %q", p.name, name, resp.Header.Values("Set-Cookie"))
		}
		if !matches(p.encrypt, name) && !matches(p.sign, name) {
			fatalf("%s: %s is not managed", p.name, name)
		}
		if p.plain {
			if v, _, _ := strings.Cut(strings.SplitN(line, "=", 2)[1], ";"); v != plain {
				fatalf("%s: %s was signed; the plan says the old release left it plain", p.name, name)
			}
			out = append(out, Cookie{Name: name, Value: plain, SetCookie: line, Config: p.name, Kind: "plain",
				Plain: plain, Path: path.Dir(setPath) + "/", MaxAge: int64(p.maxAge / time.Second)})
			continue
		}
		value, _, _ := strings.Cut(strings.SplitN(line, "=", 2)[1], ";")
		kind, enc := "sign", false
		if encrypted(value, plain) {
			kind, enc = "encrypt", true
		}
		c := newCookie(p, line, kind, enc, p.maxAge)
		c.Plain = plain
		c.Path = path.Dir(setPath) + "/"
		out = append(out, c)
	}
	return out
}

func newCookie(p plan, line, kind string, enc bool, maxAge time.Duration) Cookie {
	name, rest, _ := strings.Cut(line, "=")
	value, _, _ := strings.Cut(rest, ";")
	ts := signedAt(value)
	return Cookie{Name: name, Value: value, SetCookie: line, Config: p.name, Kind: kind, Encrypted: enc, Realm: p.realm,
		SignedAt: ts, Signed: time.Unix(ts, 0).UTC().Format(time.RFC3339), MaxAge: int64(maxAge / time.Second)}
}

// readBack sends c alone to inst, running p (a config that should accept it), and says what
// the upstream read. A re-signed visitor cookie is named by the secret of p that signed it;
// with the ring, record names it once the ring is read.
func readBack(inst *instance, c Cookie, p plan, secrets map[string]string) Read {
	resp := inst.get(c.Path, "", c.Name+"="+c.Value)
	r := Read{Status: resp.StatusCode, Header: map[string]string{}}
	seen := upstreamSaw(resp)
	if v, ok := cookiePairs(seen.Cookie)[c.Name]; ok {
		r.Cookie = &v
	}
	if c.Kind == "visitor" {
		for k, vs := range seen.Header {
			if k != "Cookie" && slices.Contains(vs, c.VisitorID) {
				r.Header[k] = c.VisitorID
			}
		}
		if line := setCookieLine(resp, c.Name); line != "" {
			r.Resigned = true
			_, nv, _ := strings.Cut(line, "=")
			nv, _, _ = strings.Cut(nv, ";")
			if visitorID(p.visitor, seen) != c.VisitorID {
				fatalf("%s: %s re-signed with another ID", p.name, c.Name)
			}
			r.ResignedBy = nv
			if len(p.secrets) > 0 {
				r.ResignedBy = secretLabel(p, secrets, c.Name, nv)
			}
		}
	}
	if len(r.Header) == 0 {
		r.Header = nil
	}
	return r
}

// visitorID is the ID the upstream read: from the ID header, or from its Cookie header with
// header off (and with Trailer, a hop-by-hop field that reverse_proxy removes).
func visitorID(v *visitorPlan, seen saw) string {
	if v.header == "" || v.header == "Trailer" {
		return cookiePairs(seen.Cookie)[v.name]
	}
	return seen.Header.Get(v.header)
}

func secretLabel(p plan, secrets map[string]string, name, value string) string {
	for _, l := range p.secrets {
		b, err := base64.StdEncoding.DecodeString(secrets[l])
		must(err)
		if verifies(b, p.realm, name, value) {
			return l
		}
	}
	fatalf("%s: %s verifies with none of its secrets", p.name, name)
	return ""
}

// encrypted says whether the old release encrypted a value rather than signed it, from its
// bytes: a signed value carries the plain value; an encrypted one, 16 bytes of IV more.
func encrypted(value, plain string) bool {
	b, err := base64.URLEncoding.DecodeString(value)
	parts := bytes.SplitN(b, []byte("|"), 3)
	if err != nil || len(parts) != 3 {
		fatalf("value %q is not in securecookie's format", value)
	}
	payload, err := base64.URLEncoding.DecodeString(string(parts[1]))
	switch {
	case err != nil:
		fatalf("value %q: payload not base64url", value)
	case string(payload) == plain:
		return false
	case len(payload) != len(plain)+16:
		fatalf("value %q is neither %q signed nor encrypted", value, plain)
	}
	return true
}

// signedAt reads the signing time of a value in securecookie's format.
func signedAt(value string) int64 {
	b, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		fatalf("value %q is not base64url: %v", value, err)
	}
	ts, _, _ := strings.Cut(string(b), "|")
	var n int64
	if _, err := fmt.Sscan(ts, &n); err != nil {
		fatalf("value %q has no timestamp", value)
	}
	return n
}

// verifies checks the MAC of a value with the key the module derives from secret and realm
// (HKDF-SHA256, "signed_cookies v1 hmac-sha256"), independently of the module's code.
func verifies(secret []byte, realm, name, value string) bool {
	info := "signed_cookies v1 hmac-sha256"
	if realm != "" {
		info += " realm=" + realm
	}
	key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	must(err)
	b, err := base64.URLEncoding.DecodeString(value)
	if err != nil {
		return false
	}
	i := bytes.IndexByte(b, '|')
	if i < 0 {
		return false
	}
	j := bytes.IndexByte(b[i+1:], '|')
	if j < 0 {
		return false
	}
	j += i + 1
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name + "|"))
	m.Write(b[:j])
	return hmac.Equal(m.Sum(nil), b[j+1:])
}

type ringFile struct {
	Version int `json:"version"`
	Secrets []struct {
		Secret  string    `json:"secret"`
		Created time.Time `json:"created"`
		Active  time.Time `json:"active"`
		Retired time.Time `json:"retired"`
	} `json:"secrets"`
	Keep          int64 `json:"keep"`
	CheckInterval int64 `json:"check_interval"`
}

func readRing(file string) ringFile {
	b, err := os.ReadFile(file)
	must(err)
	var f ringFile
	must(json.Unmarshal(b, &f))
	return f
}

func ringIndex(f ringFile, realm, name, value string) int {
	for i, s := range f.Secrets {
		b, err := base64.StdEncoding.DecodeString(s.Secret)
		must(err)
		if verifies(b, realm, name, value) {
			return i
		}
	}
	fatalf("%s=%s verifies with no secret of the ring", name, value)
	return -1
}

func matches(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// cookiePairs splits a Cookie header as the module rebuilt it ("a=1; b=2"), values raw.
func cookiePairs(h string) map[string]string {
	m := map[string]string{}
	for p := range strings.SplitSeq(h, "; ") {
		if k, v, ok := strings.Cut(p, "="); ok {
			if _, dup := m[k]; !dup {
				m[k] = v
			}
		}
	}
	return m
}

func setCookieLine(resp *response, name string) string {
	for _, l := range resp.Header.Values("Set-Cookie") {
		if n, v, _ := strings.Cut(l, "="); n == name && !strings.HasPrefix(v, ";") {
			return l
		}
	}
	return ""
}

// upstream answers every request with what it received, and on /set sets the Set-Cookie
// lines given as c= parameters.
type upstream struct{ addr string }

type saw struct {
	Cookie string      `json:"cookie"`
	Header http.Header `json:"header"`
}

func startUpstream() *upstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/set") {
			for _, c := range r.URL.Query()["c"] {
				w.Header().Add("Set-Cookie", c)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(saw{Cookie: strings.Join(r.Header.Values("Cookie"), "; "), Header: r.Header})
	}))
	return &upstream{addr: l.Addr().String()}
}

func upstreamSaw(resp *response) saw {
	var s saw
	if resp.Header.Get("Content-Type") == "application/json" {
		must(json.Unmarshal(resp.body, &s))
	}
	return s
}

// scratch holds every instance's config, storage and log; removed at the end.
var scratch string

// instance is a Caddy process of the old release running one config.
type instance struct {
	cmd     *exec.Cmd
	port    int
	storage string
	dir     string
	logf    *os.File
}

type response struct {
	*http.Response
	body []byte
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tokens replaces the manifest's tokens in a config.
func tokens(text string, port, admin int, upstream, storage string) string {
	return strings.NewReplacer("{$COMPAT_ADMIN}", fmt.Sprintf("127.0.0.1:%d", admin), "{$COMPAT_PORT}", fmt.Sprint(port),
		"{$COMPAT_UPSTREAM}", upstream, "{$COMPAT_STORAGE}", storage, "{$COMPAT_LOG_LEVEL}", "INFO").Replace(text)
}

func run(bin, text string, p plan, up *upstream, secrets map[string]string) *instance {
	return runOn(bin, text, p, up, secrets, "")
}

// runOn runs a config on storage (a new directory if empty).
func runOn(bin, text string, p plan, up *upstream, secrets map[string]string, storage string) *instance {
	dir, err := os.MkdirTemp(scratch, p.name+"-")
	must(err)
	if storage == "" {
		storage = filepath.Join(dir, "storage")
	}
	inst := &instance{port: freePort(), storage: storage, dir: dir}
	cfg := filepath.Join(dir, "config")
	must(os.WriteFile(cfg, []byte(tokens(text, inst.port, freePort(), up.addr, inst.storage)), 0o600))
	args := []string{"run", "--config", cfg}
	if p.adapter != "json" {
		args = append(args, "--adapter", p.adapter)
	}
	inst.cmd = exec.Command(bin, args...)
	inst.cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	for k, v := range p.env {
		inst.cmd.Env = append(inst.cmd.Env, k+"="+fill(v, secrets))
	}
	inst.logf, err = os.Create(filepath.Join(dir, "caddy.log"))
	must(err)
	inst.cmd.Stdout, inst.cmd.Stderr = inst.logf, inst.logf
	must(inst.cmd.Start())
	running = append(running, inst)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", inst.port), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return inst
		}
		if time.Now().After(deadline) || inst.cmd.ProcessState != nil {
			b, _ := os.ReadFile(inst.logf.Name())
			fatalf("%s: Caddy did not start:\n%s", p.name, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (inst *instance) stop() {
	running = slices.DeleteFunc(running, func(r *instance) bool { return r == inst })
	if inst.cmd.Process == nil || inst.cmd.ProcessState != nil {
		return
	}
	inst.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { inst.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		inst.cmd.Process.Kill()
		<-done
	}
}

func (inst *instance) get(p, query, cookieHeader string) *response {
	u := fmt.Sprintf("http://127.0.0.1:%d%s", inst.port, p)
	if query != "" {
		u += "?" + query
	}
	req, err := http.NewRequestWithContext(context.Background(), "GET", u, nil)
	must(err)
	if cookieHeader != "" {
		req.Header.Set("Cookie", cookieHeader)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	must(err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(err)
	return &response{Response: resp, body: b}
}

func must(err error) {
	if err != nil {
		fatalf("%v", err)
	}
}

// running are the Caddy processes started and not yet stopped, so that a failure stops them.
var running []*instance

// fatalf stops every Caddy still running, removes the scratch directory and exits.
func fatalf(format string, args ...any) {
	for _, inst := range running {
		inst.stop()
	}
	if scratch != "" {
		os.RemoveAll(scratch)
	}
	log.Fatalf(format, args...)
}
