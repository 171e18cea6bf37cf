// The storage key ring on an operator's bad day, with real Caddy processes sharing one
// storage directory: sharers with different re-read intervals and a rolling change of them, a
// ring deleted under running instances, a ring replaced by a damaged or oversized one, storage
// that takes no write, storage that is slow or hung under forged cookies. Each test gives every
// Caddy its own ports and the test its own storage, and waits for conditions, not for time.

package signedcookies

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

// echoUpstream answers with the visitor ID the module sent and whether it was issued on
// this request.
func echoUpstream(t testing.TB) *upstream {
	return startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Header.Get("X-Visitor-Id"), r.Header.Get("X-Visitor-New"))
	})
}

// ringSite is a site using the storage key ring with opts (one per line), in front of up,
// which learns whether the visitor ID is new; header, when given, names the config.
func ringSite(up *upstream, opts, header string) string {
	s := "\tsigned_cookies {\n\t\t" + strings.ReplaceAll(opts, "\n", "\n\t\t") + "\n\t}\n"
	if header != "" {
		s += "\theader X-Config " + header + "\n"
	}
	return s + "\treverse_proxy " + up.Addr + " {\n\t\theader_up X-Visitor-New {http.signed_cookies.visitor_new}\n\t}"
}

// visit is what one request learned: the visitor ID the upstream saw, whether it was new,
// and the visitor cookie the response set ("" for none).
type visit struct {
	id     string
	isNew  bool
	cookie string
}

var visitClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}

// visitWith sends a request carrying the visitor cookie vid ("" for none).
func visitWith(t testing.TB, url, vid string) visit {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if vid != "" {
		req.Header.Set("Cookie", "vid="+vid)
	}
	resp, err := visitClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	id, isNew, _ := strings.Cut(string(body), " ")
	v := visit{id: id, isNew: isNew == "true"}
	if sc := setCookies(resp, "vid"); len(sc) == 1 {
		v.cookie = strings.TrimPrefix(strings.SplitN(sc[0], ";", 2)[0], "vid=")
	}
	if resp.StatusCode != http.StatusOK || v.id == "" {
		t.Fatalf("GET %s: status %d, body %q", url, resp.StatusCode, body)
	}
	return v
}

// handOffs are the outcome of cookies issued by one instance and presented to another.
type handOffs struct {
	n, rejected       int
	signers           []string // secrets that signed the issuing instance's cookies, in order
	firstRotated      time.Time
	rotatedHandOffs   int
	firstRejectionMsg string
}

// handOff runs until done says so: each round a new visitor gets a cookie from `from`, which
// `to` must accept with the same ID; a returning visitor (a cookie jar) does the same with the
// cookie `from` keeps re-signing. Rejections are new IDs at `to`.
func handOff(t *testing.T, from, to caddyInstance, dir string, deadline time.Duration, done func(*handOffs) bool) *handOffs {
	t.Helper()
	h := &handOffs{}
	returning := ""
	var returningID string
	pace := time.NewTicker(10 * time.Millisecond) // a steady stream, not a CPU hog
	defer pace.Stop()
	end := time.Now().Add(deadline)
	for !done(h) {
		if time.Now().After(end) {
			t.Fatalf("hand-offs did not complete in %v: %+v", deadline, *h)
		}
		<-pace.C
		v := visitWith(t, from.URL, "")
		check := []visit{v}
		r := visitWith(t, from.URL, returning)
		if r.cookie != "" {
			returning = r.cookie
		}
		if returningID == "" {
			returningID = r.id
		} else if r.id != returningID {
			t.Fatalf("%s gave a returning visitor a new ID", from.URL)
		}
		check = append(check, visit{id: returningID, cookie: returning})
		f := readStoredRing(t, dir)
		if s := signer(t, f, v.cookie); s != "" && (len(h.signers) == 0 || h.signers[len(h.signers)-1] != s) {
			h.signers = append(h.signers, s)
			if len(h.signers) == 2 {
				h.firstRotated = time.Now()
			}
		}
		if len(h.signers) >= 2 {
			h.rotatedHandOffs++
		}
		for _, c := range check {
			got := visitWith(t, to.URL, c.cookie)
			h.n++
			if got.id != c.id || got.isNew {
				h.rejected++
				if h.firstRejectionMsg == "" {
					h.firstRejectionMsg = fmt.Sprintf("at %v after the first rotated-in signer: %s gave ID %s (new %v) for %s's %s", time.Since(h.firstRotated), to.URL, got.id, got.isNew, from.URL, c.id)
				}
			}
		}
	}
	return h
}

// Sharers with different re-read intervals: the slowest one's is stored, so a secret A
// rotates in (every 3 s, re-reading every 200 ms) signs only once B (re-reading every 3 s)
// has it. Cookies A issues, and re-signs, are handed to B all along, through rotations.
func TestMixedCheckIntervalsAcrossProcesses(t *testing.T) {
	t.Parallel() // Caddy runs as child processes, waiting out real intervals
	dir := t.TempDir()
	up := echoUpstream(t)
	b := startCaddy(t, ringSite(up, "rotate 1h\ncheck_interval 3s", ""), withStorage(dir), asProcess())
	awaitRing(t, dir, "B's check_interval", func(f keyring.File) bool { return f.CheckInterval == 3*time.Second })
	a := startCaddy(t, ringSite(up, "rotate 3s\ncheck_interval 200ms", ""), withStorage(dir), asProcess())

	h := handOff(t, a, b, dir, 25*time.Second, func(h *handOffs) bool {
		return len(h.signers) >= 2 && time.Since(h.firstRotated) > 3500*time.Millisecond
	})
	f := readStoredRing(t, dir)
	t.Logf("%d hand-offs from A to B, %d after A began signing with a rotated-in secret; %d rejected; %d secrets stored, check_interval %v",
		h.n, h.rotatedHandOffs, h.rejected, len(f.Secrets), f.CheckInterval)
	if h.rejected != 0 {
		t.Errorf("B rejected %d of %d cookies A issued; first %s", h.rejected, h.n, h.firstRejectionMsg)
	}
	for _, s := range f.Secrets {
		if !s.Active.IsZero() && s.Active.After(s.Created) && s.Active.Sub(s.Created) < 2*3*time.Second {
			t.Errorf("a rotated-in secret signs %v after its creation: B re-reads every 3s", s.Active.Sub(s.Created))
		}
	}
}

// The same with the stored check_interval artificially low (200 ms, while B re-reads every
// hour): only B's on-demand re-read can save A's new cookies, and it does, while an attacker
// floods B with forged cookies that would use up its re-reads.
func TestOnDemandRereadAcrossProcesses(t *testing.T) {
	t.Parallel() // Caddy runs as child processes, waiting out real intervals
	dir := t.TempDir()
	up := echoUpstream(t)
	b := startCaddy(t, ringSite(up, "rotate 2h\ncheck_interval 1h", ""), withGlobals("log {\n\t\tlevel INFO\n\t}"), withStorage(dir), asProcess())
	cmdB := b.Cmd
	f := awaitRing(t, dir, "B's check_interval", func(f keyring.File) bool { return f.CheckInterval == time.Hour })
	f.CheckInterval = 200 * time.Millisecond
	writeRingFile(t, dir, f)
	a := startCaddy(t, ringSite(up, "rotate 3s\ncheck_interval 200ms", ""), withStorage(dir), asProcess())
	// B stores its interval again at its first re-read (on demand, or its hourly tick), so the
	// forgeries, which make it re-read, start once A has rotated with the low one
	rotated := awaitRing(t, dir, "a rotation", func(f keyring.File) bool { return len(f.Secrets) == 2 })
	if n := rotated.Secrets[0]; n.Active.Sub(n.Created) > 4*time.Second {
		t.Fatalf("setup: the rotation waits %v, not two of the stored 200ms", n.Active.Sub(n.Created))
	}

	forger := cookie.NewCodec(mustRing(t, fixedSecret("attacker")), cookie.Options{})
	var forged, forgedAccepted atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				id := cookie.NewVisitorID()
				v, _ := forger.Encode("vid", id[:])
				req, _ := http.NewRequest(http.MethodGet, b.URL+"/", nil)
				req.Header.Set("Cookie", "vid="+v)
				resp, err := visitClient.Do(req)
				if err != nil {
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				forged.Add(1)
				if !strings.HasSuffix(string(body), " true") {
					forgedAccepted.Add(1)
				}
			}
		}()
	}
	h := handOff(t, a, b, dir, 25*time.Second, func(h *handOffs) bool {
		return len(h.signers) >= 2 && time.Since(h.firstRotated) > 2*time.Second
	})
	close(stop)
	wg.Wait()
	onDemand := strings.Count(caddyLog(t, cmdB), `"trigger":"a cookie signed with a key not in use"`)
	t.Logf("%d hand-offs from A to B, %d after A began signing with a secret B could learn only on demand; %d rejected; B re-read on demand and found new keys %d times; %d forged cookies sent meanwhile",
		h.n, h.rotatedHandOffs, h.rejected, onDemand, forged.Load())
	if h.rejected != 0 {
		t.Errorf("B rejected %d of %d cookies A issued; first %s", h.rejected, h.n, h.firstRejectionMsg)
	}
	if onDemand == 0 {
		t.Error("B never took new keys from an on-demand re-read: the test does not test it")
	}
	if forgedAccepted.Load() != 0 || forged.Load() == 0 {
		t.Errorf("%d of %d forged cookies accepted", forgedAccepted.Load(), forged.Load())
	}
}

// The ring deleted under a running instance A. A new instance B, finding none, makes a fresh
// ring whose first secret signs at once (it is stored, and A, meeting its cookies, re-reads
// storage and finds it); A puts back the secrets it knows, on its own once it has seen the
// ring change, and again when it is reloaded onto a ring deleted once more. Every cookie issued
// before and after, by either, is accepted by both with the same ID, and storage ends up with
// the union.
func TestKeyRingDeletedUnderRunningInstances(t *testing.T) {
	dir := t.TempDir()
	up := echoUpstream(t)
	ringPath := filepath.Join(dir, filepath.FromSlash(keyring.StorageKey))
	// check_interval 20s: within this test, only on-demand re-reads and reloads make A
	// re-read storage
	opts := "rotate 1h\ncheck_interval 20s"
	a := startCaddy(t, ringSite(up, opts, "one"), withStorage(dir), asProcess())
	a1 := awaitRing(t, dir, "A's first secret", func(keyring.File) bool { return true }).Secrets[0].Secret

	type issued struct{ by, id, cookie string }
	var cookies []issued
	issue := func(by string, ci caddyInstance, n int) {
		for range n {
			v := visitWith(t, ci.URL, "")
			if !v.isNew || v.cookie == "" {
				t.Fatalf("%s issued no cookie to a new visitor", by)
			}
			cookies = append(cookies, issued{by, v.id, v.cookie})
		}
	}
	issue("A before the deletion", a, 3)

	if err := os.Remove(ringPath); err != nil {
		t.Fatal(err)
	}
	b := startCaddy(t, ringSite(up, opts, ""), withStorage(dir), asProcess())
	fresh := awaitRing(t, dir, "B's fresh ring", func(keyring.File) bool { return true })
	b1 := fresh.Secrets[0].Secret
	if len(fresh.Secrets) != 1 || b1 == a1 {
		t.Fatalf("B should have found no ring and made one with a new secret: %d secrets", len(fresh.Secrets))
	}
	issue("B on its fresh ring", b, 3)
	for _, c := range cookies[3:] {
		if got := visitWith(t, a.URL, c.cookie); got.id != c.id || got.isNew {
			t.Errorf("A rejected a cookie B signed with its fresh ring's first secret (ID %s, new %v)", got.id, got.isNew)
		}
	}
	awaitRing(t, dir, "A's secret put back", func(f keyring.File) bool {
		return ringHas(f, a1) && ringHas(f, b1)
	})

	// deleted again, and A reloaded: its config start puts the ring back before it serves
	if err := os.Remove(ringPath); err != nil {
		t.Fatal(err)
	}
	postLoad(t, a.AdminAddr, adapt(t, strings.Replace(a.Caddyfile, "X-Config one", "X-Config two", 1)))
	awaitConfig(t, a.URL+"/", "X-Config", "two")
	if f := readStoredRing(t, dir); !ringHas(f, a1) || !ringHas(f, b1) {
		t.Fatalf("A's reload did not restore the ring it used: %d secrets", len(f.Secrets))
	}
	issue("A after its reload", a, 3)
	issue("B after A's reload", b, 3)

	rejected, total := 0, 0
	for _, c := range cookies {
		for _, at := range []caddyInstance{a, b} {
			got := visitWith(t, at.URL, c.cookie)
			total++
			if got.id != c.id || got.isNew {
				rejected++
				t.Errorf("a cookie issued by %s: %s gave ID %s (new %v), want %s", c.by, at.URL, got.id, got.isNew, c.id)
			}
		}
	}
	f := readStoredRing(t, dir)
	t.Logf("%d cookies presented to both instances: %d rejected; storage holds %d secrets", total, rejected, len(f.Secrets))
	if !ringHas(f, a1) || !ringHas(f, b1) {
		t.Error("storage does not hold both instances' secrets")
	}
	if signer(t, f, cookies[len(cookies)-4].cookie) != b1 {
		t.Error("A does not sign with the stored ring's signer after its reload")
	}
}

func ringHas(f keyring.File, secret string) bool {
	for _, s := range f.Secrets {
		if s.Secret == secret {
			return true
		}
	}
	return false
}

// The ring replaced under a running instance by one that must not be read (300 MB) or must not
// be used (a duplicated secret, with a rotation due): the running instance keeps serving with
// its keys and logs what is wrong, a new instance refuses to start saying what is wrong and
// what to do, and nothing rewrites the stored object.
func TestDamagedKeyRingUnderRunningInstance(t *testing.T) {
	up := echoUpstream(t)
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, dir string, good keyring.File)
		want   string
	}{
		{"300 MB", func(t *testing.T, dir string, _ keyring.File) {
			p := filepath.Join(dir, filepath.FromSlash(keyring.StorageKey))
			fh, err := os.Create(p + ".big")
			if err != nil {
				t.Fatal(err)
			}
			if err := fh.Truncate(300 << 20); err != nil { // sparse: nothing is written
				t.Fatal(err)
			}
			fh.Close()
			if err := os.Rename(p+".big", p); err != nil {
				t.Fatal(err)
			}
		}, "is 314572800 bytes, more than a key ring can be (65536 at most): refusing to read it"},
		{"duplicate secret, rotation due", func(t *testing.T, dir string, good keyring.File) {
			s := good.Secrets[0]
			s.Created = s.Created.AddDate(0, 0, -2)
			writeRingFile(t, dir, keyring.File{Version: keyring.Version, Keep: good.Keep, CheckInterval: good.CheckInterval,
				Secrets: []keyring.Secret{s, {Secret: fixedSecret("damaged"), Created: s.Created}, s}})
		}, "secret 3 duplicates secret 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, filepath.FromSlash(keyring.StorageKey))
			a := startCaddy(t, ringSite(up, "rotate 1h\ncheck_interval 200ms", ""), withStorage(dir), asProcess())
			cmd := a.Cmd
			good := awaitRing(t, dir, "a ring", func(keyring.File) bool { return true })
			before := visitWith(t, a.URL, "")

			tc.damage(t, dir, good)
			damaged, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			var damagedBytes []byte
			if damaged.Size() < keyring.MaxFileBytes {
				damagedBytes = ringFileBytes(t, dir)
			}
			awaitLog(t, cmd, tc.want)
			if log := caddyLog(t, cmd); !strings.Contains(log, "key ring refresh failed; keeping the keys in use") || !strings.Contains(log, "move it away") {
				t.Errorf("the running instance's log does not say what is wrong and what to do:\n%s", log)
			}

			// it keeps serving with its keys for many re-reads
			served := 0
			for start := time.Now(); time.Since(start) < 1500*time.Millisecond; served++ {
				if got := visitWith(t, a.URL, before.cookie); got.id != before.id || got.isNew {
					t.Fatalf("the running instance no longer accepts its cookies: %+v", got)
				}
				if v := visitWith(t, a.URL, ""); signer(t, good, v.cookie) != good.Secrets[0].Secret {
					t.Fatal("the running instance no longer signs with its keys")
				}
			}

			err = loadCaddyErr(t, ringSite(up, "", ""), withStorage(dir), asProcess())
			if err == nil {
				t.Fatal("a new instance started on the damaged key ring")
			}
			out := err.Error()
			if !strings.Contains(out, "key ring in storage: "+keyring.StorageKey) || !strings.Contains(out, tc.want) || !strings.Contains(out, "move it away") {
				t.Errorf("a new instance's error does not name the problem and the fix:\n%s", out)
			}

			after, err := os.Stat(p)
			if err != nil || !os.SameFile(damaged, after) || after.Size() != damaged.Size() || !after.ModTime().Equal(damaged.ModTime()) {
				t.Fatalf("the damaged key ring was replaced or changed (%v)", err)
			}
			if damagedBytes != nil && !bytes.Equal(ringFileBytes(t, dir), damagedBytes) {
				t.Fatal("the damaged key ring was rewritten")
			}
			t.Logf("served %d rounds on its own keys after the damage; the new instance said: %s", served, lastLine(out))
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// A storage that holds a good ring but takes no write (read-only, or full) stops nothing: the
// config starts and reloads, cookies are issued and verified, and a write that is due (a
// rotation, or with no ring at all the ring itself, then held in memory) is retried at every
// re-read, logged once however often it fails (and again at each config start), and counted.
func TestKeyRingOnStorageThatTakesNoWrite(t *testing.T) {
	up := echoUpstream(t)
	now := time.Now().UTC().Truncate(time.Second)
	for _, tc := range []struct {
		name, fail string
		ring       *keyring.File // stored before Caddy starts
		op, msg    string        // the metric's op and the log line; "" when nothing is written
	}{
		{"read-only, nothing due", "readonly", &keyring.File{Version: keyring.Version, Keep: 400 * day, CheckInterval: 200 * time.Millisecond,
			Secrets: []keyring.Secret{{Secret: fixedSecret("read-only"), Created: now, Active: now}}}, "", ""},
		{"read-only, rotation due", "readonly", &keyring.File{Version: keyring.Version, Keep: 400 * day, CheckInterval: 200 * time.Millisecond,
			Secrets: []keyring.Secret{{Secret: fixedSecret("read-only"), Created: now.Add(-31 * day)}}}, "lock", "key ring update not stored; keeping the keys in use"},
		{"full, rotation due", "full", &keyring.File{Version: keyring.Version, Keep: 400 * day, CheckInterval: 200 * time.Millisecond,
			Secrets: []keyring.Secret{{Secret: fixedSecret("full"), Created: now.Add(-31 * day)}}}, "store", "key ring update not stored; keeping the keys in use"},
		{"read-only, no ring", "readonly", nil, "lock", "no key ring in storage, and storing one failed: signing with a key ring held in memory only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.ring != nil {
				writeRingFile(t, dir, *tc.ring)
			}
			before := ringFileState(t, dir)
			opts := fmt.Sprintf("rotate 30d\ncheck_interval 200ms\nstorage test_failing %s %s", dir, tc.fail)
			ci := startCaddy(t, ringSite(up, opts, "one"), asProcess())
			first := visitWith(t, ci.URL, "")
			if !first.isNew || first.cookie == "" {
				t.Fatalf("no visitor cookie issued: %+v", first)
			}
			if tc.ring != nil && signer(t, *tc.ring, first.cookie) != tc.ring.Secrets[0].Secret {
				t.Error("the cookie is not signed with the stored ring")
			}
			metric := fmt.Sprintf(`caddy_signed_cookies_keyring_errors_total{op="%s"}`, tc.op)
			if tc.op != "" {
				// a few re-reads retry the write
				deadline := time.Now().Add(10 * time.Second)
				for scrapeMetrics(t, ci.AdminAddr)[metric] < 4 {
					if time.Now().After(deadline) {
						t.Fatalf("%s never reached 4: %v", metric, scrapeMetrics(t, ci.AdminAddr))
					}
					time.Sleep(20 * time.Millisecond)
				}
			}

			postLoad(t, ci.AdminAddr, adapt(t, strings.Replace(ci.Caddyfile, "X-Config one", "X-Config two", 1)))
			awaitConfig(t, ci.URL+"/", "X-Config", "two")
			for _, v := range []visit{first, visitWith(t, ci.URL, "")} {
				if got := visitWith(t, ci.URL, v.cookie); got.id != v.id || got.isNew {
					t.Errorf("a cookie issued by this instance was refused after the reload: ID %s (new %v), want %s", got.id, got.isNew, v.id)
				}
			}

			log := caddyLog(t, ci.Cmd)
			counted := scrapeMetrics(t, ci.AdminAddr)
			t.Logf("%s: errors counted %v", tc.name, counted[metric])
			switch {
			case tc.op == "":
				if strings.Contains(log, `"level":"error"`) || len(counted) != 0 && counted[metric] != 0 {
					t.Errorf("errors with nothing to write:\n%s", log)
				}
			default:
				if n := strings.Count(log, `"msg":"`+tc.msg); n != 2 {
					t.Errorf("logged %q %d times, want twice (each config start; the re-reads in between say nothing new):\n%s", tc.msg, n, log)
				}
				if want := map[string]string{"lock": "read-only file system", "store": "no space left on device"}[tc.op]; !strings.Contains(log, want) {
					t.Errorf("the log does not carry the storage's error %q:\n%s", want, log)
				}
			}
			if after := ringFileState(t, dir); after != before {
				t.Errorf("the stored ring changed: %q, then %q", before, after)
			}
		})
	}
}

// ringFileState is the stored ring's bytes, "" when there is none.
func ringFileState(t testing.TB, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(keyring.StorageKey)))
	if errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A forged cookie never waits on storage, whatever the storage module does: it makes the ring
// re-read storage (a secret stored a moment ago by another instance would verify it), but the
// request goes on while that read is still blocked (held by the test, deaf to its context) or
// slow (3 s); the requests after it start no second read; and a stream of forged cookies makes
// reads back off (at 0, 1, 3, 7 s...) instead of one a second.
func TestForgedCookieNeverWaitsOnStorage(t *testing.T) {
	up := echoUpstream(t)
	forger := cookie.NewCodec(mustRing(t, fixedSecret("attacker")), cookie.Options{})
	forged := func(t *testing.T) string {
		id := cookie.NewVisitorID()
		v, err := forger.Encode("vid", id[:])
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	start := func(t *testing.T, delay time.Duration) (caddyInstance, *storageGate) {
		name, g := newStorageGate(t)
		ci := startCaddy(t, ringSite(up, fmt.Sprintf("check_interval 1h\nstorage test_slow %s %s", t.TempDir(), name), ""))
		visitWith(t, ci.URL, "") // the ring stored and in use
		g.delay.Store(int64(delay))
		return ci, g
	}
	refused := func(t *testing.T, ci caddyInstance, what string) {
		t.Helper()
		if v := visitWith(t, ci.URL, forged(t)); !v.isNew {
			t.Fatalf("%s: a forged cookie was accepted", what)
		}
	}

	for _, tc := range []struct {
		name  string
		delay time.Duration
		hold  bool
	}{
		{"held, deaf to its context", 0, true},
		{"3 s to answer", 3 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ci, g := start(t, tc.delay)
			if tc.hold {
				g.hold()
			}
			loads := g.loads.Load()
			refused(t, ci, "the first")
			if n := g.inFlight.Load(); n != 1 || g.loads.Load() != loads+1 {
				t.Fatalf("the request answered with %d storage reads under way (%d started), want the one it started, still under way", n, g.loads.Load()-loads)
			}
			for i := range 5 {
				refused(t, ci, fmt.Sprint("forged cookie ", i+2))
			}
			if n := g.loads.Load() - loads; n != 1 || g.inFlight.Load() != 1 {
				t.Errorf("%d storage reads started while the first was under way, want 1", n)
			}
			g.release()
			for deadline := time.Now().Add(10 * time.Second); g.inFlight.Load() != 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the storage read never ended")
				}
			}
			t.Logf("6 forged cookies answered while the storage read they asked for was under way; 1 read")
		})
	}

	t.Run("a stream of forged cookies", func(t *testing.T) {
		ci, g := start(t, 0)
		loads := g.loads.Load()
		const stream = 6 * time.Second
		var sent atomic.Int64
		var wg sync.WaitGroup
		begin := time.Now()
		for range 4 {
			wg.Go(func() {
				for time.Since(begin) < stream {
					refused(t, ci, "a forged cookie of the stream")
					sent.Add(1)
					time.Sleep(10 * time.Millisecond) // a steady stream, not a CPU hog
				}
			})
		}
		wg.Wait()
		reads := g.loads.Load() - loads
		t.Logf("%d forged cookies in %v: %d storage reads", sent.Load(), time.Since(begin).Round(time.Millisecond), reads)
		// reads at 0, 1 and 3 s, the next due at 7 s; one a second would be 7
		if reads > 4 || reads < 2 {
			t.Errorf("%d storage reads for a stream of forged cookies over %v, want 2 to 4: they back off while they find nothing new", reads, stream)
		}
	})
}

// A rolling change of check_interval: B, which A's cookies reach, reloads from 200 ms to a
// slower interval while A rotates every 3 s. Every rotated-in secret must reach B through B's
// own re-reads before A signs with it, so that no request waits for an on-demand read (which a
// slow storage, or forged cookies that keep on-demand reads backed off, keep from coming in
// time). B's config start records its
// slower interval before B reads at that pace, so every later rotation waits for it; when B
// cannot record it (its view of the storage is read-only), B keeps re-reading at the pace the
// stored ring records, the one rotations wait for.
func TestRollingCheckIntervalChange(t *testing.T) {
	t.Parallel() // Caddy runs as child processes, waiting out real intervals
	up := echoUpstream(t)
	const onDemandFound = `"trigger":"a cookie signed with a key not in use"`
	for _, tc := range []struct {
		name    string
		storage string // B's storage block, %s the directory
		slower  string // B's check_interval after the reload
		signers int    // how many signers the hand-offs see
	}{
		// the rotations after the reload wait 2*3s+2s
		{"B records its interval", "", "3s", 2},
		// A rotates every 3 s, each secret signing 3 s after it was stored: B, re-reading
		// every 10 s, would learn most of them only by on-demand reads, which with reads of
		// 1.5 s come too late for the requests waiting
		{"B's storage takes no write", "storage test_failing %s readonly 1500ms", "10s", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			a := startCaddy(t, ringSite(up, "rotate 3s\ncheck_interval 200ms", ""), withStorage(dir), asProcess())
			awaitRing(t, dir, "A's ring", func(keyring.File) bool { return true })
			bOpts := "rotate 1h\ncheck_interval 200ms"
			if tc.storage != "" {
				bOpts += "\n" + fmt.Sprintf(tc.storage, dir)
			}
			b := startCaddy(t, ringSite(up, bOpts, "one"), withStorage(dir), withGlobals("log {\n\t\tlevel INFO\n\t}"), asProcess())
			slower := strings.Replace(strings.Replace(b.Caddyfile, "check_interval 200ms", "check_interval "+tc.slower, 1), "X-Config one", "X-Config two", 1)
			postLoad(t, b.AdminAddr, adapt(t, slower))
			awaitConfig(t, b.URL+"/", "X-Config", "two")
			before := strings.Count(caddyLog(t, b.Cmd), onDemandFound)

			h := handOff(t, a, b, dir, 40*time.Second, func(h *handOffs) bool {
				return len(h.signers) >= tc.signers && time.Since(h.firstRotated) > 2*time.Second
			})
			waited := strings.Count(caddyLog(t, b.Cmd), onDemandFound) - before
			f := readStoredRing(t, dir)
			t.Logf("%d hand-offs from A to B after B's reload, through %d signers: %d rejected (%.1f%%), %d secrets reached B only by an on-demand read; stored check_interval %v",
				h.n, len(h.signers), h.rejected, 100*float64(h.rejected)/float64(h.n), waited, f.CheckInterval)
			if h.rejected != 0 || waited != 0 {
				t.Errorf("B rejected %d of %d cookies A issued, and took %d new secrets from on-demand reads (requests waited for storage); first rejection %s", h.rejected, h.n, waited, h.firstRejectionMsg)
			}
		})
	}
}
