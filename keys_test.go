package signedcookies

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

func TestSecretValidation(t *testing.T) {
	short := "c2hvcnQ=" // "short"
	t.Setenv("SC_TEST_EMPTY", "")
	cases := []struct {
		name, secrets, want string
	}{
		{"bad base64", `"!!not base64!!"`, "secret 1 is not valid base64"},
		{"short", short, "secret 1 decodes to 5 bytes, need at least 32"},
		{"second short", testSecret + " " + short, "secret 2 decodes to 5 bytes"},
		{"duplicate", testSecret + " " + otherSecret + " " + testSecret, "secret 3 duplicates secret 1"},
		{"unset env", "{env.SC_TEST_UNSET_VARIABLE}", "secret 1: evaluated placeholder {env.SC_TEST_UNSET_VARIABLE} is empty"},
		{"empty env", "{env.SC_TEST_EMPTY}", "secret 1: evaluated placeholder {env.SC_TEST_EMPTY} is empty"},
		{"empty string", `""`, "secret 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := loadCaddyErr(t, "\tsigned_cookies {\n\t\tsecret "+tc.secrets+"\n\t}\n\trespond ok")
			if err == nil {
				t.Fatal("config loaded, want an error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			for _, s := range []string{testSecret, otherSecret, short, "not base64"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error echoes a secret: %q", err)
				}
			}
		})
	}
}

// The Caddyfile adapter and the admin API keep the placeholder, never the key.
func TestSecretPlaceholderStaysInConfig(t *testing.T) {
	t.Setenv("SC_TEST_SECRET", testSecret)
	up := startUpstream(t, nil)
	ci := startCaddy(t, "\tsigned_cookies {\n\t\tsecret {env.SC_TEST_SECRET} "+otherSecret+"\n\t}\n\treverse_proxy "+up.Addr)
	if js := adapt(t, ci.Caddyfile); !bytes.Contains(js, []byte(`"secrets":["{env.SC_TEST_SECRET}"`)) || bytes.Contains(js, []byte(testSecret)) {
		t.Errorf("adapted JSON does not keep the placeholder:\n%s", js)
	}
	c := newClient(t)
	get(t, c, ci.URL+"/")
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode("vid", jarValue(t, c, ci.URL, "vid"))
	if err != nil || d.Key != 0 {
		t.Fatalf("cookie not signed with the secret from the environment: %v", err)
	}
	resp, body := get(t, http.DefaultClient, "http://"+ci.AdminAddr+"/config/")
	if resp.StatusCode != 200 || !strings.Contains(body, "{env.SC_TEST_SECRET}") || strings.Contains(body, testSecret) {
		t.Errorf("admin API config (status %d) leaks the secret or lost the placeholder:\n%s", resp.StatusCode, body)
	}
}

// secret NEW OLD: cookies signed with OLD still verify, come back re-signed with NEW (same
// ID, same attributes), and then no longer need OLD.
func TestRotationWithConfiguredSecrets(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/login" {
			w.Header().Add("Set-Cookie", "session=alice; Path=/")
		}
	})
	// Each config names itself in a response header, so a reload can wait until it serves.
	site := func(secrets string) string {
		return "\tsigned_cookies {\n\t\tsecret " + secrets + "\n\t\ttrack {\n\t\t\tdomain 127.0.0.1\n\t\t}\n\t\tsign session\n\t}\n\theader X-Config \"" + secrets + "\"\n\treverse_proxy " + up.Addr
	}
	ci := startCaddy(t, site(otherSecret))
	reload := func(secrets string) {
		t.Helper()
		cf2 := strings.Replace(ci.Caddyfile, site(otherSecret), site(secrets), 1)
		postLoad(t, ci.AdminAddr, adapt(t, cf2))
		awaitConfig(t, ci.URL+"/", "X-Config", secrets)
	}
	c := newClient(t)
	resp, _ := get(t, c, ci.URL+"/login")
	first := setCookies(resp, "vid")
	id := up.last().Header.Get("X-Visitor-Id")
	oldSession := jarValue(t, c, ci.URL, "session")
	if len(first) != 1 || id == "" || oldSession == "" {
		t.Fatalf("no cookies issued: %q", resp.Header.Values("Set-Cookie"))
	}

	reload(testSecret + " " + otherSecret) // NEW signs, OLD verifies
	resp, _ = get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got != id {
		t.Fatalf("after rotation the visitor lost the ID: %q, want %q", got, id)
	}
	if v, _ := upstreamCookie(up.last(), "session"); v != "alice" {
		t.Errorf("old-signed session not accepted after rotation: %q", v)
	}
	again := setCookies(resp, "vid")
	if len(again) != 1 {
		t.Fatalf("old-signed visitor cookie was not re-signed: %q", resp.Header.Values("Set-Cookie"))
	}
	attrs := func(l string) string { _, a, _ := strings.Cut(l, ";"); return a }
	if attrs(again[0]) != attrs(first[0]) {
		t.Errorf("re-signed cookie attributes differ:\n%q\n%q", again[0], first[0])
	}
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode("vid", jarValue(t, c, ci.URL, "vid"))
	if err != nil {
		t.Fatalf("re-signed cookie does not verify with NEW alone: %v", err)
	}
	if cookie.UUIDString(d.Value) != id {
		t.Errorf("re-signed cookie carries another ID")
	}
	resp, _ = get(t, c, ci.URL+"/")
	if len(setCookies(resp, "vid")) != 0 {
		t.Errorf("a cookie already signed with NEW was re-signed again")
	}

	reload(testSecret) // OLD dropped
	get(t, c, ci.URL+"/")
	if got := up.last().Header.Get("X-Visitor-Id"); got != id {
		t.Errorf("after dropping OLD: ID %q, want %q", got, id)
	}
}

// Two Caddy processes on one storage directory share the key ring: each accepts the other's
// cookies, and a rotation made by one reaches the other within the re-read interval.
func TestSharedKeyRingTwoInstances(t *testing.T) {
	t.Parallel() // Caddy runs as child processes, waiting out real intervals
	storage := t.TempDir()
	up := startUpstream(t, nil)
	body := func(rotate string) string {
		return fmt.Sprintf("\tsigned_cookies {\n\t\trotate %s\n\t\tcheck_interval 100ms\n\t}\n\treverse_proxy %s", rotate, up.Addr)
	}
	a := startCaddy(t, body("3s"), withStorage(storage), asProcess())
	// Caddy may start listening before the key ring app has stored the ring
	created := awaitRing(t, storage, "a first secret", func(keyring.File) bool { return true })
	if len(created.Secrets) != 1 {
		t.Fatalf("first instance should create a ring with one secret, got %d", len(created.Secrets))
	}
	b := startCaddy(t, body("1h"), withStorage(storage), asProcess())

	c := newClient(t)
	get(t, c, a.URL+"/")
	id := up.last().Header.Get("X-Visitor-Id")
	fromA := jarValue(t, c, a.URL, "vid")
	// the ID is the proof: a refused cookie gets a new one (B may re-sign A's cookie if A's
	// rotation is active by now, on a slow start; re-signing is checked below)
	resp, _ := get(t, http.DefaultClient, b.URL+"/", "Cookie", "vid="+fromA)
	if got := up.last().Header.Get("X-Visitor-Id"); got != id {
		t.Fatalf("B did not accept A's cookie: ID %q, want %q; Set-Cookie %q", got, id, resp.Header.Values("Set-Cookie"))
	}

	// A rotates (its interval is 3s); wait for the stored ring to have a second secret.
	var rotated keyring.File
	deadline := time.Now().Add(15 * time.Second)
	for {
		rotated = readStoredRing(t, storage)
		if len(rotated.Secrets) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ring was not rotated")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if rotated.Secrets[len(rotated.Secrets)-1].Secret != created.Secrets[0].Secret {
		t.Fatal("rotation lost the original secret")
	}
	if n := rotated.Secrets[0]; !n.Active.After(n.Created) {
		t.Errorf("a rotated-in secret signs at once (created %v, active %v): instances that have not re-read the ring would reject its cookies", n.Created, n.Active)
	}
	// B signs with a newer secret once it is active (two re-read intervals and the on-demand
	// margin after the rotation, rounded up to the second).
	deadline = time.Now().Add(8 * time.Second)
	for {
		resp, _ := get(t, http.DefaultClient, b.URL+"/")
		sc := setCookies(resp, "vid")
		if len(sc) != 1 {
			t.Fatalf("B issued no cookie: %q", resp.Header.Values("Set-Cookie"))
		}
		v := strings.TrimPrefix(strings.SplitN(sc[0], ";", 2)[0], "vid=")
		now := readStoredRing(t, storage)
		d, err := cookie.NewCodec(ringOf(t, now), cookie.Options{}).Decode("vid", v)
		if err != nil {
			t.Fatalf("B's cookie does not verify with the stored ring: %v", err)
		}
		if d.Key != len(now.Secrets)-1 {
			break // signed with a secret newer than the original
		}
		if time.Now().After(deadline) {
			t.Fatal("B still signs with the original secret after the rotation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Both still accept the cookie issued before the rotation, and (once each has switched
	// to the new signer, within a re-read interval of the other) re-sign it.
	for _, inst := range []caddyInstance{a, b} {
		deadline := time.Now().Add(2 * time.Second)
		for {
			resp, _ := get(t, http.DefaultClient, inst.URL+"/", "Cookie", "vid="+fromA)
			if got := up.last().Header.Get("X-Visitor-Id"); got != id {
				t.Fatalf("%s: pre-rotation cookie gave ID %q, want %q", inst.URL, got, id)
			}
			if len(setCookies(resp, "vid")) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: pre-rotation cookie not re-signed", inst.URL)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Config reloads in the middle of a stream of requests lose none and reject no valid cookie.
//
// Caddy itself, with no signed_cookies in the config, drops the odd connection at a reload under
// load: the old server, shutting down, closes a connection it has just accepted or kept alive
// without answering (EOF or a reset at the client, on a fresh connection the client cannot know
// to retry). A browser retries such a request; so does this client, on a new connection, up to
// twice. A failure that repeats, and any response other than 200, is the module's.
func TestReloadUnderLoad(t *testing.T) {
	up := startUpstream(t, nil)
	storage := t.TempDir()
	for _, keys := range []string{"secret " + testSecret, "check_interval 50ms"} {
		t.Run(strings.Fields(keys)[0], func(t *testing.T) {
			site := func(header string) string {
				return "\tsigned_cookies {\n\t\t" + keys + "\n\t\ttrack {\n\t\t\theader " + header + "\n\t\t}\n\t}\n\treverse_proxy " + up.Addr
			}
			ci := startCaddy(t, site("X-Visitor-Id"), withStorage(storage))
			c := newClient(t)
			get(t, c, ci.URL+"/")
			vid := jarValue(t, c, ci.URL, "vid")

			var failures, retried, reissued, total atomic.Int64
			var firstFailure, firstRetried atomic.Value
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := 0; w < 4; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tr := &http.Transport{}
					defer tr.CloseIdleConnections()
					cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
					for {
						select {
						case <-stop:
							return
						default:
						}
						total.Add(1)
						var resp *http.Response
						var err error
						for attempt := 0; attempt < 3; attempt++ {
							if attempt > 0 {
								retried.Add(1)
								firstRetried.CompareAndSwap(nil, err.Error())
							}
							req, _ := http.NewRequest("GET", ci.URL+"/", nil)
							req.Header.Set("Cookie", "vid="+vid)
							if resp, err = cl.Do(req); err == nil {
								break
							}
						}
						if err == nil && resp.StatusCode != http.StatusOK {
							b, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							err = fmt.Errorf("status %d: %q", resp.StatusCode, b)
						}
						if err != nil {
							failures.Add(1)
							firstFailure.CompareAndSwap(nil, err.Error())
							continue
						}
						if len(setCookies(resp, "vid")) != 0 {
							reissued.Add(1)
						}
						resp.Body.Close()
					}
				}()
			}
			for i := 0; i < 6; i++ {
				header := []string{"X-Visitor-Id", "X-Visitor"}[i%2]
				postLoad(t, ci.AdminAddr, adapt(t, strings.Replace(ci.Caddyfile, site("X-Visitor-Id"), site(header), 1)))
				time.Sleep(30 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			if total.Load() < 20 {
				t.Fatalf("only %d requests made", total.Load())
			}
			if retried.Load() != 0 {
				t.Logf("%d of %d requests retried after a connection Caddy's reload closed (first: %v)", retried.Load(), total.Load(), firstRetried.Load())
			}
			if failures.Load() != 0 || reissued.Load() != 0 {
				t.Errorf("%d of %d requests failed (first: %v), %d had their valid cookie replaced", failures.Load(), total.Load(), firstFailure.Load(), reissued.Load())
			}
		})
	}
}

// The key ring's goroutine ends with the module's context: after Caddy stops, none is left.
func TestKeyRingGoroutineEnds(t *testing.T) {
	ci := startCaddy(t, "\tsigned_cookies {\n\t\tcheck_interval 10ms\n\t}\n\trespond ok")
	get(t, http.DefaultClient, ci.URL+"/")
	if n := keyRingGoroutines(); n == 0 {
		t.Fatal("no key ring goroutine while running; the check is not measuring anything")
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for keyRingGoroutines() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d key ring goroutines outlived the config", keyRingGoroutines())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func keyRingGoroutines() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return strings.Count(b.String(), "keyring.(*Ring).run")
}

// A damaged key ring object fails the load with an error saying what to do; it is never
// overwritten (that would invalidate every cookie in the cluster).
func TestCorruptStoredKeyRing(t *testing.T) {
	storage := t.TempDir()
	path := filepath.Join(storage, filepath.FromSlash(keyring.StorageKey))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, content := range []string{"not json", `{"version":7,"secrets":[]}`, `{"version":1,"secrets":[{"secret":"c2hvcnQ=","created":"2026-01-01T00:00:00Z"}]}`} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		err := loadCaddyErr(t, "\tsigned_cookies\n\trespond ok", withStorage(storage))
		if err == nil || !strings.Contains(err.Error(), "signed_cookies: key ring in storage: "+keyring.StorageKey) {
			t.Errorf("%q: error %v, want one naming the key ring object", content, err)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%q: the damaged key ring was overwritten", content)
		}
	}
}

// Handlers in different realms sharing one secret, or one storage key ring, reject each
// other's cookies; a handler without a realm rejects both; {env.X} in realm is resolved.
func TestRealmsSeparateKeys(t *testing.T) {
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/login") {
			w.Header().Add("Set-Cookie", "session=alice; Path=/")
		}
	})
	for _, tk := range []struct{ name, keys string }{
		{"configured secret", "secret " + testSecret},
		{"storage key ring", "# no secret"},
	} {
		keys := tk.keys
		t.Run(tk.name, func(t *testing.T) {
			route := func(path, realm string) string {
				return fmt.Sprintf("\troute /%s/* {\n\t\tsigned_cookies {\n\t\t\t%s\n\t\t\t%s\n\t\t\tsign session\n\t\t}\n\t\treverse_proxy %s\n\t}\n", path, keys, realm, up.Addr)
			}
			t.Setenv("SC_TEST_REALM", "shop")
			ci := startCaddy(t, route("shop", "realm shop")+route("admin", "realm admin")+route("none", "")+
				route("shopenv", "realm {env.SC_TEST_REALM}"))
			resp, _ := get(t, http.DefaultClient, ci.URL+"/shop/login")
			lines := setCookies(resp, "session")
			if len(lines) != 1 {
				t.Fatalf("shop set no session: %q", resp.Header.Values("Set-Cookie"))
			}
			pair := strings.SplitN(lines[0], ";", 2)[0]
			for _, tc := range []struct {
				path, want string
			}{{"shop", "alice"}, {"shopenv", "alice"}, {"admin", ""}, {"none", ""}} {
				get(t, http.DefaultClient, ci.URL+"/"+tc.path+"/", "Cookie", pair)
				if got, _ := upstreamCookie(up.last(), "session"); got != tc.want {
					t.Errorf("shop's session at /%s/: upstream got %q, want %q", tc.path, got, tc.want)
				}
			}
		})
	}
}

// A rotate too short for the longest cookie lifetime is warned about at load: the ring keeps
// 64 secrets at most, so `rotate 1d` with a 400-day max_age would drop secrets whose cookies
// are still valid after about two months. The warning names rotate, the longest lifetime and
// the shortest safe rotate; a safe rotate, or shorter lifetimes, get none.
func TestShortRotateWarned(t *testing.T) {
	const msg = "rotate is too short for the longest cookie lifetime"
	for _, tc := range []struct {
		name, opts string
		want       string // the warning's fields; "" for no warning
	}{
		{"rotate 1d, the default lifetimes", "rotate 1d", `"rotate":"1d","longest_lifetime":"400d","check_interval":"1m0s","shortest_safe_rotate":"7d"`},
		{"rotate 1d, a one-year visitor cookie", "rotate 1d\nmax_age 30d\ntrack {\n\tmax_age 365d\n}", `"rotate":"1d","longest_lifetime":"365d","check_interval":"1m0s","shortest_safe_rotate":"6d"`},
		{"rotate 7d, the default lifetimes", "rotate 7d", ""},
		{"rotate 1d, lifetimes of 30 days", "rotate 1d\nmax_age 30d\ntrack {\n\tmax_age 30d\n}", ""},
		{"the default rotate", "check_interval 1m", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			up := startUpstream(t, nil)
			startCaddy(t, ringSite(up, tc.opts, ""), withGlobals(fmt.Sprintf("log {\n\t\toutput file %s\n\t\tlevel WARN\n\t}", logFile)))
			b, err := os.ReadFile(logFile)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			log := string(b)
			switch got := strings.Count(log, msg); {
			case tc.want == "" && got != 0:
				t.Errorf("warned with a safe rotate:\n%s", log)
			case tc.want != "" && (got != 1 || !strings.Contains(log, tc.want)):
				t.Errorf("want one warning with %s, got:\n%s", tc.want, log)
			}
		})
	}
}
