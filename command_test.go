package signedcookies

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// cliRun runs the test binary as the caddy command (see TestMain) in dir, which is also its
// home and data directory, with extra environment variables. It returns stdout, stderr and
// the exit status.
func cliRun(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := cliCommand(t, dir, env, args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	code = cliExitCode(t, cmd.Run(), &out, &errOut)
	return out.String(), errOut.String(), code
}

func cliCommand(t *testing.T, dir string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			t.Fatalf("argument %q cannot pass through %s_ARGS", a, runCaddyEnv)
		}
	}
	cmd := exec.Command(os.Args[0])
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), runCaddyEnv+"=1", runCaddyEnv+"_ARGS="+strings.Join(args, " "),
		"HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

func cliExitCode(t *testing.T, err error, out, errOut *bytes.Buffer) int {
	t.Helper()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("running the caddy command: %v\n%s%s", err, out, errOut)
	return -1
}

// cliSecretForms lists every spelling of the secrets, and of the keys derived from them in the
// realms, that output must never hold: base64 in all four alphabets and hex, whole and their
// first 16 characters.
func cliSecretForms(t *testing.T, realms []string, secrets ...string) []string {
	t.Helper()
	var forms []string
	add := func(b []byte) {
		for _, s := range []string{base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
			base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), hex.EncodeToString(b)} {
			forms = append(forms, s, s[:16])
		}
	}
	for _, s := range secrets {
		b, err := cookie.ParseSecret(s)
		if err != nil {
			t.Fatalf("secret %d: %v", len(forms), err)
		}
		add(b)
		for _, realm := range realms {
			k, err := cookie.NewRealmKey(b, realm)
			if err != nil {
				t.Fatal(err)
			}
			add(k.HashKey())
			add(k.BlockKey())
		}
	}
	return forms
}

func cliAssertNoSecrets(t *testing.T, what, output string, forms []string) {
	t.Helper()
	for _, f := range forms {
		if strings.Contains(output, f) {
			t.Errorf("%s: output holds a secret or derived key (%.6s…):\n%s", what, f, output)
			return
		}
	}
}

// cliCheckOutput holds a command's run to its exit code, the lines its standard output must
// hold (want) and what neither output may (not).
func cliCheckOutput(t *testing.T, out, errOut string, code, wantCode int, want, not []string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, out, errOut)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("stdout lacks %q:\n%s", w, out)
		}
	}
	for _, n := range not {
		if strings.Contains(out+errOut, n) {
			t.Errorf("output holds %q:\n%s\n%s", n, out, errOut)
		}
	}
}

func cliWriteFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cliEncode signs (or encrypts) value as the module does for cookie name with one secret in
// a realm, at Unix time ts.
func cliEncode(t *testing.T, secret, realm, name string, encrypt bool, value []byte, ts int64) string {
	t.Helper()
	b, err := cookie.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := cookie.NewRealmKeyRing(realm, b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := cookie.NewCodec(ring, cookie.Options{Encrypt: encrypt}).AppendEncodeAt(nil, name, value, ts)
	if err != nil {
		t.Fatal(err)
	}
	return string(v)
}

func TestCommandSecret(t *testing.T) {
	dir := t.TempDir()
	seen := map[string]bool{}
	for range 2 {
		out, errOut, code := cliRun(t, dir, nil, "signed-cookies", "secret")
		if code != 0 {
			t.Fatalf("secret: exit %d\n%s%s", code, out, errOut)
		}
		s, ok := strings.CutSuffix(out, "\n")
		if !ok || strings.ContainsAny(s, "\r\n \t") {
			t.Fatalf("secret: want one line and nothing else, got %q", out)
		}
		b, err := cookie.ParseSecret(s)
		if err != nil || len(b) != cookie.MinSecretBytes || base64.StdEncoding.EncodeToString(b) != s {
			t.Errorf("secret %q: %v, %d bytes; want 32 bytes in standard base64 that the module accepts", s, err, len(b))
		}
		if seen[s] {
			t.Errorf("secret: the same secret twice")
		}
		seen[s] = true
	}
	if out, _, code := cliRun(t, dir, nil, "signed-cookies", "secret", "extra"); code != 2 || out != "" {
		t.Errorf("secret with an argument: exit %d, stdout %q; want 2 and nothing", code, out)
	}
}

// TestCommandInspectSecrets inspects values under configured secrets: the default Caddyfile
// in the current directory, a secret from {env.X}, two handlers managing one name in
// different realms.
func TestCommandInspectSecrets(t *testing.T) {
	dir := t.TempDir()
	envSecret := fixedSecret("cli env secret")
	cliWriteFile(t, dir, "Caddyfile", `{
	admin off
	auto_https off
}
http://one.test {
	signed_cookies {
		secret {env.SC_CLI_SECRET} `+otherSecret+`
		track
		sign session
		encrypt token
	}
	respond ok
}
http://shop.test {
	signed_cookies {
		secret `+testSecret+`
		realm shop
		sign session cart
	}
	respond ok
}
`)
	env := []string{"SC_CLI_SECRET=" + envSecret}
	forms := cliSecretForms(t, []string{"", "shop"}, envSecret, otherSecret, testSecret)
	now := time.Now().Unix()
	const plain = "plain-session-value-42"
	id := cookie.NewVisitorID()
	session := cliEncode(t, envSecret, "", "session", false, []byte(plain), now-3600)

	for _, tc := range []struct {
		name      string
		args      []string
		env       []string
		code      int
		want, not []string
	}{
		{"valid, first secret", []string{"--name", "session", session}, env, 0,
			[]string{"verifies:   yes", "secret 1 of 2 configured (the one that signs)", "1h0m ago", "value:      hidden (22 bytes",
				"realm:      none", `realm:      "shop"`, "verifies:   no: bad_mac", "sign session: signed, not encrypted"},
			[]string{plain}},
		{"valid, second secret, value shown", []string{"--name", "session", "--show-value",
			cliEncode(t, otherSecret, "", "session", false, []byte(plain), now)}, env, 0,
			[]string{"verifies:   yes", "secret 2 of 2 configured (verifies only", "value:      " + strconv.Quote(plain)}, nil},
		{"expired", []string{"--name", "session", cliEncode(t, envSecret, "", "session", false, []byte(plain), now-401*24*3600)}, env, 1,
			[]string{"verifies:   no: expired", "max_age 400d", "401d ago", "secret 1 of 2 configured"}, []string{plain, "verifies:   yes"}},
		{"forged", []string{"--name", "session", cliEncode(t, fixedSecret("attacker"), "", "session", false, []byte(plain), now)}, env, 1,
			[]string{"verifies:   no: bad_mac"}, []string{plain, "verifies:   yes"}},
		{"signed for another name", []string{"--name", "session", cliEncode(t, envSecret, "", "other", false, []byte(plain), now)}, env, 1,
			[]string{"verifies:   no: bad_mac"}, []string{"verifies:   yes"}},
		{"plain value", []string{"--name", "session", plain}, env, 1,
			[]string{"verifies:   no: malformed: not in the encoded form"}, []string{"verifies:   yes"}},
		{"too long", []string{"--name", "session", strings.Repeat("A", 5000)}, env, 1,
			[]string{"verifies:   no: too_long: 5000 bytes"}, nil},
		{"encrypted", []string{"--name", "token", cliEncode(t, envSecret, "", "token", true, []byte("token-value-9"), now)}, env, 0,
			[]string{"verifies:   yes", "signed and encrypted", "value:      hidden (13 bytes"}, []string{"token-value-9"}},
		{"encrypted, value shown", []string{"--name", "token", "--show-value", cliEncode(t, envSecret, "", "token", true, []byte("token-value-9"), now)}, env, 0,
			[]string{"verifies:   yes", `value:      "token-value-9"`}, nil},
		{"visitor cookie", []string{"--name", "vid", cliEncode(t, otherSecret, "", "vid", false, id[:], now)}, env, 0,
			[]string{"verifies:   yes", "the visitor cookie, signed (not encrypted)", "visitor ID: " + cookie.UUIDString(id[:]), "secret 2 of 2"}, []string{"value:"}},
		{"realm mismatch", []string{"--name", "cart", cliEncode(t, testSecret, "", "cart", false, []byte("c"), now)}, env, 1,
			[]string{`realm:      "shop"`, "verifies:   no: bad_mac", "in another realm"}, []string{"verifies:   yes", "track vid"}},
		{"realm matches", []string{"--name", "cart", cliEncode(t, testSecret, "shop", "cart", false, []byte("c"), now)}, env, 0,
			[]string{"verifies:   yes", "secret 1 of 1 configured"}, nil},
		{"no handler manages the name", []string{"--name", "nobody", session}, env, 2,
			[]string{"no handler in the config manages cookie nobody"}, []string{"verifies"}},
		{"secret placeholder unset", []string{"--name", "session", session}, nil, 2, nil, []string{"verifies:   yes"}},
		{"no --name", []string{session}, env, 2, nil, []string{"verifies"}},
		{"no value", []string{"--name", "session"}, env, 2, nil, []string{"verifies"}},
		{"unknown flag", []string{"--name", "session", "--bogus", session}, env, 2, nil, []string{"verifies"}},
		{"missing config", []string{"--config", filepath.Join(dir, "missing.json"), "--name", "session", session}, env, 2, nil, []string{"verifies"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cliRun(t, dir, tc.env, append([]string{"signed-cookies", "inspect"}, tc.args...)...)
			cliCheckOutput(t, out, errOut, code, tc.code, tc.want, tc.not)
			if tc.name == "secret placeholder unset" && !strings.Contains(errOut, "env.SC_CLI_SECRET") {
				t.Errorf("the error does not name the placeholder:\n%s", errOut)
			}
			cliAssertNoSecrets(t, tc.name, out+errOut, forms)
		})
	}
}

// TestCommandInspectSplit: inspect reads a split value as a browser holds it, its first
// cookie then the others in order, and says what is missing or out of order.
func TestCommandInspectSplit(t *testing.T) {
	rule := "\tsigned_cookies {\n\t\tsecret " + testSecret + "\n\t\tencrypt cart\n\t\tcookie cart {\n\t\t\tsplit\n\t\t}\n\t}\n"
	long := strings.Repeat("item-0042,", 500)
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Set-Cookie", "cart="+long+"; Path=/")
	})
	ci := startCaddy(t, rule+"\treverse_proxy "+up.Addr)
	resp, _ := get(t, http.DefaultClient, ci.URL+"/")
	var values []string
	for _, name := range []string{"cart", "cart__1", "cart__2"} {
		lines := setCookies(resp, name)
		if len(lines) != 1 {
			t.Fatalf("Set-Cookie %s: %q, want one line", name, lines)
		}
		_, v, _ := splitSetCookie(lines[0])
		values = append(values, v)
	}
	dir := t.TempDir()
	cliWriteFile(t, dir, "Caddyfile", "{\n\tadmin off\n\tauto_https off\n}\nhttp://shop.test {\n"+rule+"\trespond ok\n}\n")
	for _, tc := range []struct {
		name      string
		values    []string
		code      int
		want, not []string
	}{
		{"all three, in order", values, 0, []string{"verifies:   yes", "signed and encrypted", "value:      hidden (5000 bytes"}, []string{long[:40]}},
		{"value shown", append([]string{"--show-value"}, values...), 0, []string{"verifies:   yes", long[:40]}, nil},
		{"the first alone", values[:1], 1, []string{"verifies:   no: partial", "give their values after it"}, []string{"verifies:   yes"}},
		{"out of order", []string{values[0], values[2], values[1]}, 1, []string{"verifies:   no"}, []string{"verifies:   yes", long[:40]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := cliRun(t, dir, nil, append([]string{"signed-cookies", "inspect", "--name", "cart"}, tc.values...)...)
			cliCheckOutput(t, out, errOut, code, tc.code, tc.want, tc.not)
		})
	}
}

// TestCommandStorageRing creates the storage key ring by running a real Caddy once, then with
// Caddy stopped inspects the cookies it issued, lists the ring and rotates it under the
// storage lock.
func TestCommandStorageRing(t *testing.T) {
	t.Parallel() // Caddy runs as child processes, waiting out real intervals
	storageDir := t.TempDir()
	const plain = "upstream-session-7"
	up := startUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: plain, Path: "/"})
		_, _ = w.Write([]byte("ok"))
	})
	ci := startCaddy(t, "\tsigned_cookies {\n\t\ttrack\n\t\tsign session\n\t}\n\treverse_proxy "+up.Addr, withStorage(storageDir), asProcess())
	client := newClient(t)
	get(t, client, ci.URL+"/")
	vid, session := jarValue(t, client, ci.URL, "vid"), jarValue(t, client, ci.URL, "session")
	id := up.last().Header.Get("X-Visitor-Id")
	if vid == "" || session == "" || id == "" {
		t.Fatalf("no cookies from Caddy: vid %q, session %q, ID %q", vid, session, id)
	}
	// Caddy starts its apps in no fixed order: the ring may be stored just after the server
	// answers
	ringFile := filepath.Join(storageDir, filepath.FromSlash(keyring.StorageKey))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ringFile); err == nil || time.Now().After(deadline) {
			break
		}
	}
	_ = ci.Cmd.Process.Kill()
	_, _ = ci.Cmd.Process.Wait()

	dir := t.TempDir()
	config := cliWriteFile(t, dir, "Caddyfile", ci.Caddyfile)
	readStored := func() ([]byte, keyring.File) {
		t.Helper()
		b, err := os.ReadFile(ringFile)
		if err != nil {
			t.Fatal(err)
		}
		var f keyring.File
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		return b, f
	}
	_, ring := readStored()
	if len(ring.Secrets) != 1 {
		t.Fatalf("Caddy stored %d secrets, want 1", len(ring.Secrets))
	}
	var outputs []string
	run := func(want int, args ...string) string {
		t.Helper()
		out, errOut, code := cliRun(t, dir, nil, append([]string{"signed-cookies"}, args...)...)
		if code != want {
			t.Errorf("%s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
		}
		outputs = append(outputs, out+errOut)
		return out
	}
	expect := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: stdout lacks %q:\n%s", what, w, out)
			}
		}
	}

	out := run(0, "inspect", "--config", config, "--name", "vid", vid)
	expect("inspect vid", out, "verifies:   yes", "visitor ID: "+id, "secret 1 of 1 in the storage key ring in FileStorage:"+storageDir,
		"created "+cliStamp(ring.Secrets[0].Created), "signs now")
	out = run(0, "inspect", "--config", config, "--name", "session", session)
	expect("inspect session", out, "verifies:   yes", "value:      hidden")
	if strings.Contains(out, plain) {
		t.Errorf("inspect without --show-value shows the value:\n%s", out)
	}
	out = run(0, "inspect", "--config", config, "--name", "session", "--show-value", session)
	expect("inspect --show-value", out, strconv.Quote(plain))
	out = run(1, "inspect", "--config", config, "--name", "session", cliEncode(t, testSecret, "", "session", false, []byte(plain), time.Now().Unix()))
	expect("inspect forged", out, "verifies:   no: bad_mac", "retired secrets are kept 400d")

	out = run(0, "keyring", "--config", config)
	expect("keyring", out, "storage key ring: signed_cookies/keyring.json in FileStorage:"+storageDir,
		"keep:           400d", "check_interval: 1m0s", "secrets:        1", "signs now", "next rotation:")

	// --rotate waits for the storage lock, then stores a new secret that does not sign yet
	fsStor := &certmagic.FileStorage{Path: storageDir}
	ctx := context.Background()
	// rotateUnderLock runs --rotate while this test holds the storage lock, checks that it
	// waits and changes nothing, calls beforeUnlock, releases the lock and returns its output.
	rotateUnderLock := func(beforeUnlock func()) (stdout string, code int, all string) {
		t.Helper()
		if err := fsStor.Lock(ctx, keyring.LockName); err != nil {
			t.Fatal(err)
		}
		storedNow, _ := readStored()
		rotate := cliCommand(t, dir, nil, "signed-cookies", "keyring", "--config", config, "--rotate")
		var rotOut, rotErr bytes.Buffer
		rotate.Stdout, rotate.Stderr = &rotOut, &rotErr
		if err := rotate.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- rotate.Wait() }()
		select {
		case err := <-done:
			t.Fatalf("--rotate finished while another process held the lock: %v\n%s%s", err, &rotOut, &rotErr)
		case <-time.After(2 * time.Second):
		}
		if b, _ := readStored(); !bytes.Equal(b, storedNow) {
			t.Fatal("--rotate changed the ring while another process held the lock")
		}
		beforeUnlock()
		if err := fsStor.Unlock(ctx, keyring.LockName); err != nil {
			t.Fatal(err)
		}
		var err error
		select {
		case err = <-done:
		case <-time.After(30 * time.Second):
			_ = rotate.Process.Kill()
			t.Fatalf("--rotate did not finish after the lock was released\n%s%s", &rotOut, &rotErr)
		}
		return rotOut.String(), cliExitCode(t, err, &rotOut, &rotErr), rotOut.String() + rotErr.String()
	}
	var started time.Time
	rotOut, code, all := rotateUnderLock(func() { started = time.Now() })
	if code != 0 {
		t.Fatalf("--rotate: exit %d\n%s", code, all)
	}
	outputs = append(outputs, all)
	expect("--rotate", rotOut, "rotated: a new secret 1 signs from", "secrets:        2", "waits: signs in", "signs now, until")
	storedAfter, rotated := readStored()
	if len(rotated.Secrets) != 2 || rotated.Secrets[1].Secret != ring.Secrets[0].Secret {
		t.Fatalf("after --rotate: %d secrets, the old one second: %v; want the new one first and the old one kept",
			len(rotated.Secrets), len(rotated.Secrets) == 2 && rotated.Secrets[1].Secret == ring.Secrets[0].Secret)
	}
	fresh, old := rotated.Secrets[0], rotated.Secrets[1]
	// as merge rotates: active after two check intervals (1m each) and two seconds, rounded up
	if wait := fresh.Active.Sub(fresh.Created); !fresh.Active.After(started) || wait < 2*time.Minute+2*time.Second || wait > 2*time.Minute+4*time.Second {
		t.Errorf("the new secret signs from %s, created %s: want two check intervals and 2 s after the rotation", fresh.Active, fresh.Created)
	}
	if !old.Retired.Equal(fresh.Active) {
		t.Errorf("the old secret retires at %s, want when the new one signs (%s)", old.Retired, fresh.Active)
	}
	if _, err := os.Stat(filepath.Join(storageDir, "locks", keyring.LockName+".lock")); err == nil {
		t.Error("--rotate left the storage lock behind")
	}

	// a second rotation while the new secret waits to sign is refused and changes nothing
	out = run(1, "keyring", "--config", config, "--rotate")
	expect("second --rotate", out, "not rotated: secret 1", "still waits to sign until "+cliStamp(fresh.Active))
	if b, _ := readStored(); !bytes.Equal(b, storedAfter) {
		t.Error("a refused rotation changed the stored ring")
	}

	// the visitor's cookie still verifies, now with the older secret
	out = run(0, "inspect", "--config", config, "--name", "vid", vid)
	expect("inspect vid after rotation", out, "verifies:   yes", "visitor ID: "+id, "secret 2 of 2 in the storage key ring",
		"retired at "+cliStamp(fresh.Active), "signs now, until "+cliStamp(fresh.Active))

	// another instance rotates after --rotate read the ring and before it took the lock: the
	// command finds a secret waiting to sign once locked, says it did not rotate, and leaves
	// the other instance's ring as stored
	signing := rotated
	signing.Secrets[0].Active = time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	signing.Secrets[1].Retired = signing.Secrets[0].Active
	writeRingFile(t, storageDir, signing)
	other := keyring.Secret{Secret: fixedSecret("rotated in by another instance"), Created: time.Now().UTC().Truncate(time.Second)}
	other.Active = other.Created.Add(3 * time.Minute)
	var othersRing []byte
	rotOut, code, all = rotateUnderLock(func() {
		f := signing
		f.Secrets = append([]keyring.Secret{other}, f.Secrets...)
		f.Secrets[1].Retired = other.Active
		othersRing = writeRingFile(t, storageDir, f)
	})
	outputs = append(outputs, all)
	if code != 1 {
		t.Errorf("--rotate after another instance's rotation: exit %d, want 1\n%s", code, all)
	}
	expect("--rotate after another's", rotOut, "not rotated: secret 1", "still waits to sign until "+cliStamp(other.Active))
	if b, _ := readStored(); !bytes.Equal(b, othersRing) {
		t.Errorf("--rotate changed the ring another instance had just rotated:\n%s", b)
	}

	forms := cliSecretForms(t, []string{""}, fresh.Secret, old.Secret, other.Secret)
	for i, o := range outputs {
		cliAssertNoSecrets(t, "run "+strconv.Itoa(i+1), o, forms)
	}
}

// TestCommandReadOnly: `caddy validate`, inspect and keyring (--rotate included) leave an
// empty storage empty, for the config's storage, the handler's own and Caddy's default.
func TestCommandReadOnly(t *testing.T) {
	dir, storageDir, handlerDir := t.TempDir(), t.TempDir(), t.TempDir()
	empty := func(what, d string) {
		t.Helper()
		entries, err := os.ReadDir(d)
		if err != nil || len(entries) > 0 {
			t.Errorf("%s: %s holds %d entries (%v), want none", what, d, len(entries), err)
		}
	}
	site := "\tsigned_cookies {\n\t\ttrack\n\t\tsign session\n\t}\n\trespond ok"
	cf, _ := caddyfileFor(t, site, withStorage(storageDir))
	global := cliWriteFile(t, dir, "Caddyfile", cf)
	cf, _ = caddyfileFor(t, "\tsigned_cookies {\n\t\tstorage file_system "+handlerDir+"\n\t\tsign session\n\t}\n\trespond ok", withStorage(storageDir))
	own := cliWriteFile(t, dir, "own.caddyfile", cf)
	byDefault := cliWriteFile(t, dir, "default.json", `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"signed_cookies","track":{}}]}]}}}}}`)
	value := cliEncode(t, testSecret, "", "vid", false, []byte("0123456789abcdef"), time.Now().Unix())

	for _, tc := range []struct {
		config, storage string
		args            []string
		code            int
		want            string
	}{
		{global, storageDir, []string{"validate", "--adapter", "caddyfile"}, 0, "Valid configuration"},
		{global, storageDir, []string{"signed-cookies", "inspect", "--name", "vid", value}, 1, "no key ring in FileStorage:" + storageDir + " yet"},
		{global, storageDir, []string{"signed-cookies", "keyring"}, 1, "none yet"},
		{global, storageDir, []string{"signed-cookies", "keyring", "--rotate"}, 1, "none yet"},
		{own, handlerDir, []string{"validate"}, 0, "Valid configuration"},
		{own, handlerDir, []string{"signed-cookies", "keyring", "--rotate"}, 1, "in FileStorage:" + handlerDir + "\n  none yet"},
		{byDefault, filepath.Join(dir, "caddy"), []string{"signed-cookies", "keyring"}, 1, "in FileStorage:" + filepath.Join(dir, "caddy") + "\n  none yet"},
		{byDefault, filepath.Join(dir, "caddy"), []string{"signed-cookies", "inspect", "--name", "vid", value}, 1, "no key ring in FileStorage:" + filepath.Join(dir, "caddy")},
	} {
		out, errOut, code := cliRun(t, dir, nil, append(tc.args, "--config", tc.config)...)
		what := strings.Join(tc.args, " ") + " --config " + filepath.Base(tc.config)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%s: exit %d (want %d), output lacks %q:\n%s\n%s", what, code, tc.code, tc.want, out, errOut)
		}
		if _, err := os.Stat(filepath.Join(tc.storage, filepath.FromSlash(keyring.StorageKey))); err == nil {
			t.Errorf("%s created a key ring", what)
		}
	}
	empty("the config's storage", storageDir)
	empty("the handler's storage", handlerDir)
}

func TestCommandKeyringSecrets(t *testing.T) {
	dir := t.TempDir()
	config := cliWriteFile(t, dir, "secrets.json", `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[
		{"handler":"signed_cookies","secrets":["`+testSecret+`","`+otherSecret+`"],"sign":["session"]}]}]}}}}}`)
	forms := cliSecretForms(t, []string{""}, testSecret, otherSecret)
	out, errOut, code := cliRun(t, dir, nil, "signed-cookies", "keyring", "--config", config)
	if code != 0 || !strings.Contains(out, "the storage key ring is not used") || !strings.Contains(out, "2 configured secrets (values not shown)") {
		t.Errorf("keyring with configured secrets: exit %d\n%s\n%s", code, out, errOut)
	}
	cliAssertNoSecrets(t, "keyring", out+errOut, forms)
	out, errOut, code = cliRun(t, dir, nil, "signed-cookies", "keyring", "--config", config, "--rotate")
	if code != 2 || !strings.Contains(errOut, "no handler uses the storage key ring") {
		t.Errorf("keyring --rotate with configured secrets: exit %d, want 2\n%s\n%s", code, out, errOut)
	}
	cliAssertNoSecrets(t, "keyring --rotate", out+errOut, forms)
}

func TestCommandUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"signed-cookies", "--help"}, 0, "Available Commands"},
		{[]string{"signed-cookies"}, 2, ""},
		{[]string{"signed-cookies", "nope"}, 2, "unknown subcommand"},
		{[]string{"signed-cookies", "keyring", "extra"}, 2, "keyring takes no arguments"},
		{[]string{"signed-cookies", "keyring"}, 2, "no config"},
	} {
		out, errOut, code := cliRun(t, dir, nil, tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%s: exit %d (want %d), output lacks %q:\n%s\n%s", strings.Join(tc.args, " "), code, tc.code, tc.want, out, errOut)
		}
	}
}

// --rotate run as another user than the ring's owner (sudo, typically) would leave a ring the
// owner cannot read: it refuses, exits 2 and changes nothing; a damaged ring also exits 2, for
// the listing and for inspect, with the reason.
func TestCommandKeyringOwnerAndDamage(t *testing.T) {
	if os.Geteuid() != 0 {
		testskip.Missing(t, "root (to give the key ring to another user)")
	}
	dir := t.TempDir()
	storageDir := filepath.Join(dir, "storage")
	cf, _ := caddyfileFor(t, "\tsigned_cookies {\n\t\ttrack\n\t}\n\trespond ok", withStorage(storageDir))
	config := cliWriteFile(t, dir, "Caddyfile", cf)
	created := time.Now().UTC().Add(-40 * day).Truncate(time.Second)
	stored := writeRingFile(t, storageDir, keyring.File{Version: keyring.Version, Keep: 400 * day, CheckInterval: time.Minute,
		Secrets: []keyring.Secret{{Secret: fixedSecret("owner"), Created: created, Active: created}}})
	ringPath := filepath.Join(storageDir, filepath.FromSlash(keyring.StorageKey))
	const nobody = 65534
	if err := os.Chown(ringPath, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := cliRun(t, dir, nil, "signed-cookies", "keyring", "--config", config, "--rotate")
	if code != 2 || !strings.Contains(errOut, "belongs to user 65534 and this command runs as user 0") {
		t.Errorf("--rotate of another user's ring: exit %d, want 2 and the owner named\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(ringPath)
	if err != nil || !bytes.Equal(b, stored) {
		t.Errorf("--rotate of another user's ring changed it (%v)", err)
	}
	if fi, err := os.Stat(ringPath); err != nil {
		t.Fatal(err)
	} else if owner, _ := fileOwner(fi); owner != nobody {
		t.Errorf("the ring now belongs to user %d", owner)
	}
	// the listing reads only, whoever owns the ring
	if out, errOut, code := cliRun(t, dir, nil, "signed-cookies", "keyring", "--config", config); code != 0 || !strings.Contains(out, "signs now") {
		t.Errorf("keyring of another user's ring: exit %d\n%s\n%s", code, out, errOut)
	}

	writeRingBytes(t, storageDir, []byte(`{"version": 1, "secrets": [`))
	value := cliEncode(t, testSecret, "", "vid", false, []byte("0123456789abcdef"), time.Now().Unix())
	for _, args := range [][]string{{"keyring"}, {"keyring", "--rotate"}, {"inspect", "--name", "vid", value}} {
		out, errOut, code := cliRun(t, dir, nil, append(append([]string{"signed-cookies"}, args...), "--config", config)...)
		if code != 2 || !strings.Contains(errOut, "key ring") {
			t.Errorf("%s with a damaged ring: exit %d, want 2 and the reason\n%s\n%s", args[0], code, out, errOut)
		}
	}
}
