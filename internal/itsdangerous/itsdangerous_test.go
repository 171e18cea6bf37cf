package itsdangerous

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/cputime"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// The itsdangerous and Flask formats are held to the Python libraries themselves
// (testdata/dangerous_oracle.py run by Debian's /usr/bin/python3 with python3-itsdangerous
// and python3-flask): what Python signs, Go reads to the same value, and what Go signs,
// Python reads to the same value. Where Go refuses what Python would accept, each case says
// so (the subset documented in itsdangerous.go).

// dangerousMissingTool fails the test in CI (CI set, as .ci/run does), where Python is
// installed on purpose, and skips it elsewhere; the cookie package's copy of the root
// package's missingTool.
func dangerousMissingTool(t testing.TB, what string) {
	t.Helper()
	testskip.Missing(t, what)
}

// dangerousPythonOnce finds the Debian python3 (a pyenv python3 earlier on PATH lacks the
// Debian packages).
var dangerousPythonOnce = sync.OnceValue(func() string {
	const py = "/usr/bin/python3"
	if exec.Command(py, "-c", "import itsdangerous, flask, markupsafe").Run() != nil {
		return ""
	}
	return py
})

// dangerousOracle is the Python side: one process per test, one JSON line per batch.
type dangerousOracle struct {
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *bytes.Buffer
}

func startDangerousOracle(t *testing.T) *dangerousOracle {
	t.Helper()
	py := dangerousPythonOnce()
	if py == "" {
		dangerousMissingTool(t, "Python with itsdangerous and Flask (/usr/bin/python3: apt-get install python3-flask)")
	}
	cmd := exec.Command(py, "testdata/dangerous_oracle.py")
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONIOENCODING=utf-8")
	o := &dangerousOracle{stderr: &bytes.Buffer{}}
	cmd.Stderr = o.stderr
	var err error
	if o.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	o.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the Python oracle: %v", err)
	}
	t.Cleanup(func() {
		o.in.Close()
		_ = cmd.Wait()
	})
	return o
}

// call runs op over cases and returns one result per case.
func (o *dangerousOracle) call(t *testing.T, op string, cases []pyCase) []pyResult {
	t.Helper()
	req, err := json.Marshal(map[string]any{"op": op, "cases": cases})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.in.Write(append(req, '\n')); err != nil {
		t.Fatalf("writing to the Python oracle: %v\n%s", err, o.stderr)
	}
	line, err := o.out.ReadBytes('\n')
	if err != nil {
		t.Fatalf("the Python oracle failed (%v):\n%s", err, o.stderr)
	}
	var res []pyResult
	if err := json.Unmarshal(line, &res); err != nil || len(res) != len(cases) {
		t.Fatalf("the Python oracle answered %d results for %d cases (%v): %.200s", len(res), len(cases), err, line)
	}
	return res
}

// pyCase is one case for the oracle (see dangerous_oracle.py).
type pyCase struct {
	Secrets    []string `json:"secrets"` // standard base64, oldest first
	Salt       string   `json:"salt"`
	Derivation string   `json:"derivation,omitempty"`
	Timed      bool     `json:"timed"`
	ASCII      bool     `json:"ascii,omitempty"`
	Now        int64    `json:"now"`
	MaxAge     *int64   `json:"max_age"`
	Value      string   `json:"value"`
	Token      string   `json:"token,omitempty"`
	Session    string   `json:"session,omitempty"`
	AppContext bool     `json:"app_context,omitempty"`
}

type pyResult struct {
	Token    string            `json:"token"`
	OK       bool              `json:"ok"`
	Value    []byte            `json:"value"` // base64 in JSON
	Error    string            `json:"error"` // the exception's class
	Kind     string            `json:"kind"`  // loaded, but not a str (a session: not a dict)
	Expected map[string][]byte `json:"expected"`
}

// dangerousConfig is one serializer configuration on both sides.
type dangerousConfig struct {
	secrets      [][]byte // newest first
	salt         string
	deriv        dangerousDerivation
	timed, ascii bool
}

var dangerousDerivationNames = map[dangerousDerivation]string{
	dangerousDjangoConcat: "django-concat",
	dangerousHMAC:         "hmac",
	dangerousConcat:       "concat",
	dangerousNoDerivation: "none",
}

func (c dangerousConfig) String() string {
	return fmt.Sprintf("%s/salt=%q/timed=%v/ascii=%v/keys=%d", dangerousDerivationNames[c.deriv], c.salt, c.timed, c.ascii, len(c.secrets))
}

func (c dangerousConfig) serializer(tb testing.TB) *dangerousSerializer {
	tb.Helper()
	z, err := newDangerousSerializer(c.secrets, c.salt, c.deriv, c.timed)
	if err != nil {
		tb.Fatal(err)
	}
	z.asciiJSON = c.ascii
	return z
}

// py is the oracle case for c, with Python's key order (oldest first).
func (c dangerousConfig) py() pyCase {
	p := pyCase{Salt: c.salt, Derivation: dangerousDerivationNames[c.deriv], Timed: c.timed, ASCII: c.ascii}
	for _, s := range slices.Backward(c.secrets) {
		p.Secrets = append(p.Secrets, base64.StdEncoding.EncodeToString(s))
	}
	return p
}

func pySecrets(secrets ...[]byte) []string { // newest first in, oldest first out
	var out []string
	for _, s := range slices.Backward(secrets) {
		out = append(out, base64.StdEncoding.EncodeToString(s))
	}
	return out
}

func maxAgePtr(n int64) *int64 { return &n }

// dangerousValues cover the JSON string encoder and the compression decision.
func dangerousValues() []string {
	var ascii, latin []byte
	for c := 0; c < 0x80; c++ {
		ascii = append(ascii, byte(c))
	}
	for r := rune(0x80); r < 0x100; r++ {
		latin = utf8.AppendRune(latin, r)
	}
	vs := []string{
		"", "a", "hello", "héllo wörld", "日本語のテキスト", "😀 \U0010ffff \U00010000",
		string(ascii), string(latin), "\u07ff\u0800\ufffd\uffff\u2028\u2029\ufeff",
		`"quoted" \back\slash /slash/ \u0041 \n`, `{"json":[1,2,null]}`, "<script>&amp;</script>",
		"a.b.c", ".leading.dot", "trailing.", "null", "123", "true", " padded ", "\x00",
		strings.Repeat("abc", 300), strings.Repeat("é", 400), strings.Repeat("😀", 200),
		strings.Repeat("x", 9), strings.Repeat("x", 10), strings.Repeat("x", 11), strings.Repeat("x", 12),
	}
	// Short, mildly repetitive texts near the compression threshold, where Go's deflate and
	// zlib may decide differently (logged, not failed).
	words := []string{"alpha", "beta", "gamma", "delta", "alpha", "beta"}
	for n := 1; n <= 24; n++ {
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteString(words[(i*7+n)%len(words)])
			b.WriteByte(' ')
		}
		vs = append(vs, b.String())
	}
	return vs
}

func dangerousConfigs() []dangerousConfig {
	var cs []dangerousConfig
	salts := map[dangerousDerivation]string{
		dangerousDjangoConcat: dangerousSalt, dangerousHMAC: "cookie-session",
		dangerousConcat: "my app/ünïcode salt", dangerousNoDerivation: "",
	}
	for _, d := range []dangerousDerivation{dangerousDjangoConcat, dangerousHMAC, dangerousConcat, dangerousNoDerivation} {
		for _, timed := range []bool{false, true} {
			for _, ascii := range []bool{false, true} {
				cs = append(cs, dangerousConfig{
					secrets: [][]byte{testSecret("dangerous new"), []byte("an old short secret")},
					salt:    salts[d], deriv: d, timed: timed, ascii: ascii,
				})
			}
		}
	}
	return cs
}

// compressed reports whether a token's payload is zlib (a leading ".").
func compressed(token string) bool { return strings.HasPrefix(token, ".") }

// TestDangerousInterop: Python signs, Go loads; Go signs, Python loads; and with the same
// signing time, the two write the same bytes unless they compress.
func TestDangerousInterop(t *testing.T) {
	o := startDangerousOracle(t)
	type item struct {
		c   dangerousConfig
		v   string
		tok string // Go's
	}
	var items []item
	var signCases, loadCases []pyCase
	for _, c := range dangerousConfigs() {
		z := c.serializer(t)
		for _, v := range dangerousValues() {
			tok, err := z.appendDumps(nil, []byte(v), t0)
			if err != nil {
				t.Fatalf("%v: dumps(%q): %v", c, v, err)
			}
			items = append(items, item{c, v, string(tok)})
			p := c.py()
			p.Now, p.Value = t0, v
			signCases = append(signCases, p)
			p.Token, p.MaxAge = string(tok), maxAgePtr(60)
			loadCases = append(loadCases, p)
		}
	}
	signed := o.call(t, "sign", signCases)
	loaded := o.call(t, "load", loadCases)
	var same, decisions, longer int
	for i, it := range items {
		z := it.c.serializer(t)
		// Go signs, Python loads.
		if r := loaded[i]; !r.OK || r.Kind != "" || string(r.Value) != it.v {
			t.Errorf("%v: Python loads(Go dumps(%q) = %s) = %+v", it.c, it.v, it.tok, r)
		}
		// Python signs, Go loads.
		py := signed[i].Token
		d, err := z.appendLoads(nil, py, t0+60, 60)
		if err != nil || string(d.Value) != it.v || d.Key != 0 {
			t.Errorf("%v: Go loads(Python dumps(%q) = %s) = %q key %d, %v", it.c, it.v, py, d.Value, d.Key, err)
		}
		if it.c.timed && d.Signed != t0 {
			t.Errorf("%v: signed at %d, want %d", it.c, d.Signed, t0)
		}
		// Same bytes when neither compresses. Otherwise Go's deflate is not zlib's (it also
		// ends with an empty stored block, 5 bytes), so the two may decide differently near
		// the threshold; what that may cost is a few bytes of length.
		if !compressed(py) && !compressed(it.tok) {
			if py != it.tok {
				t.Errorf("%v: value %q:\n Python %s\n Go     %s", it.c, it.v, py, it.tok)
			}
			same++
		}
		if compressed(py) != compressed(it.tok) {
			decisions++
		}
		if extra := len(it.tok) - len(py); extra > 0 {
			longer++
			if extra > 12 {
				t.Errorf("%v: %d-byte value %q: Go's token is %d bytes longer than Python's (compressed: Go %v, Python %v)",
					it.c, len(it.v), it.v, extra, compressed(it.tok), compressed(py))
			}
		}
	}
	if same < len(items)/3 {
		t.Errorf("only %d of %d tokens were compared byte for byte", same, len(items))
	}
	t.Logf("%d values: %d tokens byte for byte the same; compression decided differently for %d; Go's token longer for %d",
		len(items), same, decisions, longer)
	// Long repetitive values compress on both sides.
	for i, it := range items {
		if len(it.v) >= 900 && (!compressed(it.tok) || !compressed(signed[i].Token)) {
			t.Errorf("%v: %d-byte repetitive value not compressed (Go %v, Python %v)", it.c, len(it.v), compressed(it.tok), compressed(signed[i].Token))
		}
	}
}

// TestDangerousRotation: the newest key signs, every key verifies, on both sides; a key
// removed from the list no longer verifies.
func TestDangerousRotation(t *testing.T) {
	o := startDangerousOracle(t)
	newK, oldK, olderK := testSecret("rot new"), testSecret("rot old"), testSecret("rot older")
	for _, timed := range []bool{false, true} {
		cfg := func(secrets ...[]byte) dangerousConfig {
			return dangerousConfig{secrets: secrets, salt: dangerousSalt, deriv: dangerousDjangoConcat, timed: timed}
		}
		ring := cfg(newK, oldK, olderK)
		const v = "rotate me"
		// Python signs with each generation's list; the full Go ring reads them all.
		var sign []pyCase
		for _, c := range []dangerousConfig{cfg(olderK), cfg(oldK, olderK), ring} {
			p := c.py()
			p.Now, p.Value = t0, v
			sign = append(sign, p)
		}
		res := o.call(t, "sign", sign)
		z := ring.serializer(t)
		for i, wantKey := range []int{2, 1, 0} {
			d, err := z.appendLoads(nil, res[i].Token, t0, -1)
			if err != nil || string(d.Value) != v || d.Key != wantKey {
				t.Errorf("timed=%v: Python token %d: %q key %d, %v; want key %d", timed, i, d.Value, d.Key, err, wantKey)
			}
		}
		if _, err := cfg(newK).serializer(t).appendLoads(nil, res[0].Token, t0, -1); err != ErrBadMAC {
			t.Errorf("timed=%v: a ring without the signing key: %v, want ErrBadMAC", timed, err)
		}
		if mine, _ := z.appendDumps(nil, []byte(v), t0); string(mine) != res[2].Token {
			t.Errorf("timed=%v: Go signed %s, Python with the same list %s", timed, mine, res[2].Token)
		}
		// Go signs with the ring; Python reads it with any list that holds the newest key.
		tok, err := z.appendDumps(nil, []byte(v), t0)
		if err != nil {
			t.Fatal(err)
		}
		var load []pyCase
		for _, c := range []dangerousConfig{ring, cfg(newK), cfg(oldK, olderK), cfg(newK, olderK)} {
			p := c.py()
			p.Now, p.Token = t0, string(tok)
			load = append(load, p)
		}
		res = o.call(t, "load", load)
		for i, wantOK := range []bool{true, true, false, true} {
			if res[i].OK != wantOK || wantOK && string(res[i].Value) != v {
				t.Errorf("timed=%v: Python list %d loads Go's token: %+v, want ok=%v", timed, i, res[i], wantOK)
			}
		}
	}
}

// goReasonMatches reports whether Go's outcome is Python's: both accept, SignatureExpired is
// ErrExpired, and any other refusal is a reason other than ErrExpired.
func goReasonMatches(err error, r pyResult) bool {
	if r.OK {
		return err == nil
	}
	if r.Error == "SignatureExpired" {
		return err == ErrExpired
	}
	return err != nil && err != ErrExpired
}

// TestDangerousExpiry: max_age on both sides, including its boundary, signatures from the
// future and timestamps past what Python can turn into a datetime.
func TestDangerousExpiry(t *testing.T) {
	o := startDangerousOracle(t)
	c := dangerousConfig{secrets: [][]byte{testSecret("expiry")}, salt: dangerousSalt, deriv: dangerousDjangoConcat, timed: true}
	z := c.serializer(t)
	tok, _ := z.appendDumps(nil, []byte("v"), t0)
	// Python's token is the same bytes, so what follows holds for tokens from either side.
	p := c.py()
	p.Now, p.Value = t0, "v"
	if py := o.call(t, "sign", []pyCase{p})[0].Token; py != string(tok) {
		t.Fatalf("Python signed %s, Go %s", py, tok)
	}

	type tc struct {
		tok    string
		now    int64
		maxAge int64 // -1: none
		want   error
	}
	var cases []tc
	for _, ma := range []int64{0, 1, 10, 3600} {
		for _, d := range []int64{-100, -2, -1, 0, 1, ma - 1, ma, ma + 1, ma + 1000} {
			want := error(nil)
			if d < 0 || d > ma {
				want = ErrExpired
			}
			cases = append(cases, tc{string(tok), t0 + d, ma, want})
		}
	}
	cases = append(cases, tc{string(tok), t0 - 1000, -1, nil}, tc{string(tok), t0 + 1e9, -1, nil})
	// Forged timestamps: zero, leading zero bytes, the last second Python's datetime holds and
	// the next, and the uint64 extremes.
	forge := func(ts []byte) string {
		b := dangerousB64.AppendEncode(nil, []byte(`"v"`))
		b = dangerousB64.AppendEncode(append(b, '.'), ts)
		return string(z.signer.appendSign(b, 0))
	}
	be := func(u uint64) []byte {
		return []byte{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
	}
	for _, f := range []struct {
		ts               []byte
		noMaxAge, maxAge error // max_age None (a datetime must hold it), max_age 2**40
	}{
		{nil, nil, nil}, {[]byte{0, 0, 1}, nil, nil}, {be(t0), nil, nil},
		// Past 9999 Python fails to build even the SignatureExpired (its date_signed).
		{be(dangerousMaxTimestamp), nil, ErrExpired}, {be(dangerousMaxTimestamp + 1), ErrMalformed, ErrMalformed},
		{be(1 << 63), ErrMalformed, ErrMalformed}, {be(^uint64(0)), ErrMalformed, ErrMalformed},
	} {
		ft := forge(f.ts)
		cases = append(cases, tc{ft, t0, -1, f.noMaxAge}, tc{ft, t0, 1 << 40, f.maxAge})
	}
	cases = append(cases, tc{forge([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}), t0, -1, ErrMalformed})

	var py []pyCase
	for _, k := range cases {
		p := c.py()
		p.Token, p.Now = k.tok, k.now
		if k.maxAge >= 0 {
			p.MaxAge = maxAgePtr(k.maxAge)
		}
		py = append(py, p)
	}
	res := o.call(t, "load", py)
	for i, k := range cases {
		_, err := z.appendLoads(nil, k.tok, k.now, k.maxAge)
		if err != k.want {
			t.Errorf("case %d (now-signed %d, max age %d): %v, want %v", i, k.now-t0, k.maxAge, err, k.want)
		}
		if !goReasonMatches(err, res[i]) {
			t.Errorf("case %d (now-signed %d, max age %d): Go %v, Python %+v", i, k.now-t0, k.maxAge, err, res[i])
		}
	}
}

// flips are the tokens with each byte in turn XORed with 1 and with 2.
func flips(tok string) (out []string) {
	for _, mask := range []byte{1, 2} {
		for i := range len(tok) {
			b := []byte(tok)
			b[i] ^= mask
			out = append(out, string(b))
		}
	}
	return out
}

// TestDangerousTamper: every byte of tokens from both sides, compressed or not, timed or not,
// altered: Go refuses all; Python refuses all but signature spellings its lenient base64
// decodes to the same bytes (which Go, strict, refuses).
func TestDangerousTamper(t *testing.T) {
	o := startDangerousOracle(t)
	long := strings.Repeat("tamper ", 100)
	var cfgs []dangerousConfig
	var sign []pyCase
	for _, timed := range []bool{false, true} {
		c := dangerousConfig{secrets: [][]byte{testSecret("tamper")}, salt: dangerousSalt, deriv: dangerousDjangoConcat, timed: timed}
		for _, v := range []string{"value ünïcode", long} {
			p := c.py()
			p.Now, p.Value = t0, v
			sign = append(sign, p)
			cfgs = append(cfgs, c)
		}
	}
	pySigned := o.call(t, "sign", sign)
	var load []pyCase
	var which []int
	var toks, origs []string
	for i, c := range cfgs {
		goTok, _ := c.serializer(t).appendDumps(nil, []byte(sign[i].Value), t0)
		for _, tok := range []string{pySigned[i].Token, string(goTok)} {
			for _, f := range flips(tok) {
				p := c.py()
				p.Token, p.Now, p.MaxAge = f, t0, maxAgePtr(10)
				load = append(load, p)
				which = append(which, i)
				toks, origs = append(toks, f), append(origs, tok)
			}
		}
	}
	res := o.call(t, "load", load)
	malleable := 0
	for j, f := range toks {
		if _, err := cfgs[which[j]].serializer(t).appendLoads(nil, f, t0, 10); err == nil {
			t.Errorf("Go accepted the altered token %s", f)
		}
		if res[j].OK {
			// Only a different spelling of the same signature may pass in Python.
			if !pySameSig(f, origs[j]) {
				t.Errorf("Python accepted the altered token %s outside its signature", f)
			}
			malleable++
		}
	}
	t.Logf("%d altered tokens: Go refused all; Python accepted %d with another spelling of the same signature", len(toks), malleable)
}

// pySameSig reports whether altered differs from original only in the signature, and reads
// there, the way itsdangerous's base64_decode reads it (characters outside the alphabet
// dropped, "+/" as "-_", trailing bits ignored), as the same bytes: the one way an altered
// token can verify in Python.
func pySameSig(altered, original string) bool {
	sig := len(original) - dangerousSigChars
	if len(altered) != len(original) || altered[:sig] != original[:sig] {
		return false
	}
	lenient := func(s string) []byte {
		var clean []byte
		for _, c := range []byte(s) {
			switch {
			case c == '+':
				clean = append(clean, '-')
			case c == '/':
				clean = append(clean, '_')
			case strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", c) >= 0:
				clean = append(clean, c)
			}
		}
		b, _ := base64.RawURLEncoding.DecodeString(string(clean))
		return b
	}
	want, _ := dangerousB64.DecodeString(original[sig:])
	return bytes.Equal(lenient(altered[sig:]), want)
}

// TestDangerousMalleableSignature shows the documented difference: itsdangerous accepts a
// signature whose last character has non-zero trailing bits, or "+" for "-"; Go does not.
func TestDangerousMalleableSignature(t *testing.T) {
	o := startDangerousOracle(t)
	c := dangerousConfig{secrets: [][]byte{testSecret("malleable")}, salt: dangerousSalt, deriv: dangerousDjangoConcat}
	z := c.serializer(t)
	var tok string
	for i := 0; ; i++ { // a token whose signature has a "-", for the "+" spelling
		b, _ := z.appendDumps(nil, []byte(fmt.Sprint("v", i)), 0)
		if tok = string(b); strings.Contains(tok[len(tok)-dangerousSigChars:], "-") {
			break
		}
	}
	last := tok[len(tok)-1]
	idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
	alt := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1])
	sig := len(tok) - dangerousSigChars
	plus := tok[:sig] + strings.Replace(tok[sig:], "-", "+", 1)
	var load []pyCase
	for _, v := range []string{tok, alt, plus} {
		p := c.py()
		p.Token = v
		load = append(load, p)
	}
	res := o.call(t, "load", load)
	for i, v := range []string{tok, alt, plus} {
		_, err := z.appendLoads(nil, v, 0, -1)
		if !res[i].OK {
			t.Errorf("Python refused %s: %+v", v, res[i])
		}
		if (err == nil) != (i == 0) {
			t.Errorf("Go on %s: %v", v, err)
		}
	}
}

// flaskWant converts the oracle's expected session.
func flaskWant(e map[string][]byte) map[string]string {
	m := make(map[string]string, len(e))
	for k, v := range e {
		m[k] = string(v)
	}
	return m
}

func flaskSessionNames() []string {
	return []string{"scalars", "nested", "tagged", "tag_keys", "only_tag_key", "specials", "compressible", "flashes", "empty"}
}

// TestDangerousFlaskSessions: sessions signed by Flask's own session serializer (inside and
// outside an app context, where its JSON differs), with key rotation, and by a real app's
// view through its test client, read by Go to what Flask reads; Flask's expiry; tampering.
func TestDangerousFlaskSessions(t *testing.T) {
	o := startDangerousOracle(t)
	newK, oldK := []byte("the new Flask SECRET_KEY"), []byte("dev")
	z, err := newFlaskSessionSerializer([][]byte{newK, oldK})
	if err != nil {
		t.Fatal(err)
	}
	var cases []pyCase
	var keys []int
	for _, name := range flaskSessionNames() {
		for _, appCtx := range []bool{false, true} {
			cases = append(cases,
				pyCase{Secrets: pySecrets(newK), Now: t0, Session: name, AppContext: appCtx},
				pyCase{Secrets: pySecrets(oldK), Now: t0, Session: name, AppContext: appCtx},
				pyCase{Secrets: pySecrets(newK, oldK), Now: t0, Session: name, AppContext: appCtx})
			keys = append(keys, 0, 1, 0)
		}
	}
	res := o.call(t, "flask_sign", cases)
	const month = 31 * 24 * 3600 // PERMANENT_SESSION_LIFETIME
	compressedSeen := false
	for i, r := range res {
		m, d, err := z.flaskSessionLoads(r.Token, t0+month, month)
		if err != nil || d.Key != keys[i] || d.Signed != t0 {
			t.Errorf("session %s: %v, key %d, signed %d", cases[i].Session, err, d.Key, d.Signed)
			continue
		}
		if want := flaskWant(r.Expected); !maps.Equal(m, want) {
			t.Errorf("session %s (app context %v):\n Go   %q\n want %q", cases[i].Session, cases[i].AppContext, m, want)
		}
		compressedSeen = compressedSeen || compressed(r.Token)
	}
	if !compressedSeen {
		t.Error("no Flask session was compressed")
	}

	// A real app: a view sets the session; its Set-Cookie is what Go reads.
	var app []pyCase
	for _, name := range flaskSessionNames() {
		app = append(app, pyCase{Secrets: pySecrets(newK), Now: t0, Session: name})
	}
	for i, r := range o.call(t, "flask_app", app) {
		m, _, err := z.flaskSessionLoads(r.Token, t0, month)
		if want := flaskWant(r.Expected); err != nil || !maps.Equal(m, want) {
			t.Errorf("app session %s: %v\n Go   %q\n want %q", app[i].Session, err, m, want)
		}
	}

	// Expiry at Flask's max_age, both sides; tampering, both sides.
	tok := res[0].Token
	var load []pyCase
	var wantErr []error
	for _, now := range []int64{t0 - 1, t0, t0 + month, t0 + month + 1} {
		load = append(load, pyCase{Secrets: pySecrets(newK), Now: now, MaxAge: maxAgePtr(month), Token: tok})
		wantErr = append(wantErr, map[bool]error{true: nil, false: ErrExpired}[now >= t0 && now <= t0+month])
	}
	for _, f := range flips(tok) {
		load = append(load, pyCase{Secrets: pySecrets(newK), Now: t0, MaxAge: maxAgePtr(month), Token: f})
		wantErr = append(wantErr, errors.New("any"))
	}
	lres := o.call(t, "flask_load", load)
	for i, p := range load {
		_, _, err := z.flaskSessionLoads(p.Token, p.Now, month)
		if (err == nil) != (wantErr[i] == nil) || wantErr[i] == ErrExpired && err != ErrExpired {
			t.Errorf("Flask token %d at %+d: %v, want %v", i, p.Now-t0, err, wantErr[i])
		}
		if lres[i].OK != (wantErr[i] == nil) && !(lres[i].OK && pySameSig(p.Token, tok)) {
			t.Errorf("Flask token %d at %+d: Python %+v, want error %v", i, p.Now-t0, lres[i], wantErr[i])
		}
	}
	// Not a Flask cookie: itsdangerous's defaults with the same secret.
	plain, _ := dangerousConfig{secrets: [][]byte{newK}, salt: dangerousSalt, deriv: dangerousDjangoConcat, timed: true}.serializer(t).appendDumps(nil, []byte("x"), t0)
	if _, _, err := z.flaskSessionLoads(string(plain), t0, month); err != ErrBadMAC {
		t.Errorf("a URLSafeTimedSerializer value read as a Flask session: %v", err)
	}
}

// dangerousForge signs the raw JSON js as z's payload (compressed if asked) at ts, skipping
// dumps: it reaches the decoders with any JSON.
func dangerousForge(z *dangerousSerializer, js []byte, compress bool, ts int64) string {
	var b []byte
	if compress {
		b = dangerousB64.AppendEncode([]byte{'.'}, dangerousDeflate(js))
	} else {
		b = dangerousB64.AppendEncode(nil, js)
	}
	if z.timed {
		b = dangerousAppendTimestamp(b, ts)
	}
	return string(z.signer.appendSign(b, 0))
}

// craft is a JSON payload for the decoders and what Go should make of it.
type craft struct {
	js string
	// subset: Go refuses it, Python accepts it (the documented subset).
	subset bool
	// goWant, when set, is Go's session where it renders differently from Python's value (a
	// number kept as written).
	goWant map[string]string
}

// pyOutcome: ok, Python loaded a str (a dict for a session) Go can represent; accepts, Python
// loaded one at all, lone surrogates included. Other types (kinds) Python loads are not
// values of this format: Go must refuse them, and that is no subset.
func pyOutcome(r pyResult) (ok, accepts bool) {
	return r.OK && r.Kind == "", r.OK && (r.Kind == "" || r.Kind == "lone surrogate")
}

// TestDangerousFlaskCrafted: hand-written session JSON through both decoders: Go accepts only
// what Python accepts and gives the same value, and refuses only where the case says why.
func TestDangerousFlaskCrafted(t *testing.T) {
	o := startDangerousOracle(t)
	deep := func(n int) string { return `{"a":` + strings.Repeat("[", n) + strings.Repeat("]", n) + "}" }
	crafts := []craft{
		{js: `{"a":1}`}, {js: " {\"a\" :\t1 ,\n\"b\":[ 1 , 2 ] }\r\n"}, {js: `{"a":1,"a":2}`}, {js: `{}`},
		{js: `{"a":{" t":[1,2]}}`}, {js: `{"a":{" t":[1,2],"x":1}}`}, {js: `{"a":{" t":"ab"}}`, subset: true},
		{js: `{"a":{" t":[{" t":[]}]}}`}, {js: `{"a":{" t":{" t":[1]}}}`},
		{js: `{" di":{"x__":1}}`}, {js: `{"a":{" di":{"é€__":{" b":"AA=="}}}}`}, {js: `{"a":{" di":{"x":1}}}`},
		{js: `{"a":{" di":{"\ud83d\ude00":1}}}`}, {js: `{"a":{" di":{}}}`}, {js: `{"a":{" di":[1]}}`},
		{js: `{"a":{" di":{"x__":1,"y":2}}}`, subset: true}, {js: `{"a":{" di":{" di":{"x__":1}}}}`},
		{js: `{"a":{" b":"AP8="}}`}, {js: `{"a":{" b":""}}`}, {js: `{"a":{" b":"AP8"}}`}, {js: `{"a":{" b":"A P8="}}`, subset: true},
		{js: `{"a":{" b":"AP8=\n"}}`}, {js: `{"a":{" b":"AP9="}}`}, {js: `{"a":{" b":"é"}}`}, {js: `{"a":{" b":1}}`},
		{js: `{"a":{" b":{" m":"AP8="}}}`}, {js: `{"a":[{" b":"/+8="}]}`},
		{js: `{"a":{" u":"12345678-9abc-def0-1234-56789abcdef0"}}`}, {js: `{"a":{" u":"123456789ABCDEF0123456789ABCDEF0"}}`},
		{js: `{"a":{" u":"{urn:uuid:12345678-9abc-def0-1234-56789abcdef0}"}}`}, {js: `{"a":{" u":"0x3456789abcdef0123456789abcdef0"}}`, subset: true},
		{js: `{"a":{" u":"123"}}`}, {js: `{"a":{" u":"zz345678-9abc-def0-1234-56789abcdef0"}}`}, {js: `{"a":{" u":{" m":"12345678123456781234567812345678"}}}`},
		{js: `{"a":{" d":"Tue, 02 Jan 2024 03:04:05 GMT"}}`}, {js: `{"a":{" d":"tue, 02 jan 2024 03:04:05 GMT"}}`},
		{js: `{"a":{" d":"Wed, 02 Jan 2024 03:04:05 GMT"}}`}, {js: `{"a":{" d":"garbage"}}`, subset: true},
		{js: `{"a":{" d":"Mon, 02 Jan 0050 03:04:05 GMT"}}`, subset: true}, {js: `{"a":{" d":"Tue, 02 Jan 2024 03:04:05 +0000"}}`, subset: true},
		{js: `{"a":{" d":"Fri, 31 Dec 9999 23:59:59 GMT"}}`}, {js: `{"a":{" d":{" m":"Tue, 02 Jan 2024 03:04:05 GMT"}}}`},
		{js: `{"a":{" m":"<b>"}}`}, {js: `{"a":{" m":1}}`, subset: true}, {js: `{"a":{" m":{" u":"12345678123456781234567812345678"}}}`, subset: true},
		{js: `{"a":NaN,"b":Infinity,"c":-Infinity,"d":-0.0,"e":1e-07,"f":12345678901234567890,"g":1e+300}`},
		{js: `{"a":1.5e3}`, goWant: map[string]string{"a": "1.5e3"}}, {js: `{"a":-0}`, goWant: map[string]string{"a": "-0"}},
		{js: `{"a":1e-7}`, goWant: map[string]string{"a": "1e-7"}},
		{js: `{"a":` + strings.Repeat("9", 4300) + `}`}, {js: `{"a":-` + strings.Repeat("9", 4300) + `}`}, {js: `{"a":` + strings.Repeat("9", 4301) + `}`},
		{js: `{"a":"\ud83d\ude00\u00e9\u00E9\/"}`}, {js: `{"a":"\ud800"}`, subset: true}, {js: `{"a":"\udc00x"}`, subset: true},
		{js: `{"\ud800":1}`, subset: true}, {js: `{"a":"\ud800\u0041"}`, subset: true}, {js: `{"a":"x\u0000y"}`},
		{js: "{\"a\":\"x\x01y\"}"}, {js: "{\"a\":\"x\x7fy\"}"}, {js: "{\"a\":\"\xff\"}"}, {js: "\ufeff{}"},
		{js: `[["a",1]]`}, {js: `"str"`}, {js: `null`}, {js: `{"a":1,}`}, {js: `{"a":01}`}, {js: `{"a":1.}`},
		{js: `{"a":.5}`}, {js: `{"a":1e}`}, {js: `{"a":tru}`}, {js: `{"a":true}x`}, {js: `{"a":[1,]}`}, {js: `{"a" 1}`},
		{js: `{1:1}`}, {js: `{"a":"x\qy"}`}, {js: `{"a":"\u12"}`}, {js: `{"a":"unterminated}`}, {js: ``},
		{js: deep(100)}, {js: deep(flaskMaxDepth - 1)}, {js: deep(flaskMaxDepth), subset: true},
	}
	z, _ := newFlaskSessionSerializer([][]byte{testSecret("crafted")})
	z.maxLength = 1 << 20 // Python has no limit; the long numbers need more than a cookie
	var load []pyCase
	var toks []string
	for _, c := range crafts {
		for _, comp := range []bool{false, true} {
			tok := dangerousForge(z, []byte(c.js), comp, t0)
			toks = append(toks, tok)
			load = append(load, pyCase{Secrets: pySecrets(testSecret("crafted")), Now: t0, MaxAge: maxAgePtr(60), Token: tok})
		}
	}
	res := o.call(t, "flask_load", load)
	for i, tok := range toks {
		c, r := crafts[i/2], res[i]
		m, _, err := z.flaskSessionLoads(tok, t0, 60)
		pyOK, pyAccepts := pyOutcome(r)
		switch {
		case err == nil && !pyOK:
			t.Errorf("%.80q: Go %q, Python refuses: %+v", c.js, m, r)
		case err == nil && c.goWant != nil:
			if !maps.Equal(m, c.goWant) {
				t.Errorf("%.80q: Go %q, want %q", c.js, m, c.goWant)
			}
		case err == nil:
			if want := flaskWant(r.Expected); !maps.Equal(m, want) {
				t.Errorf("%.80q:\n Go     %q\n Python %q", c.js, m, want)
			}
		case pyAccepts != c.subset:
			t.Errorf("%.80q: Go %v; Python %+v (the case says subset=%v)", c.js, err, r, c.subset)
		}
	}
}

// TestDangerousCraftedStrings: hand-written payloads for appendLoads, as above.
func TestDangerousCraftedStrings(t *testing.T) {
	o := startDangerousOracle(t)
	crafts := []craft{
		{js: `"abc"`}, {js: " \t\n\r\"abc\" \r\n"}, {js: `""`}, {js: `"\u00e9\u00E9\/\"\\\b\f\n\r\t"`},
		{js: `"\ud83d\ude00"`}, {js: `"\uD83D\uDE00"`}, {js: `"\u0000"`}, {js: "\"\x7f\u2028\""},
		{js: `"\ud800"`, subset: true}, {js: `"\ud800\u0041"`, subset: true}, {js: `"\ude00\ud83d"`, subset: true},
		{js: `"\ud800\ud800"`, subset: true}, {js: `"\ud83d\ude0"`}, {js: `"\x"`}, {js: `"\u12"`}, {js: `"\u12g4"`},
		{js: `"abc`}, {js: `"a"b`}, {js: `"a" "b"`}, {js: `123`}, {js: `null`}, {js: `["a"]`}, {js: `{"a":"b"}`},
		{js: "\ufeff\"a\""}, {js: "\"a\x01\""}, {js: "\"a\nb\""}, {js: "\"\xff\""}, {js: "\"\xed\xa0\x80\""},
		{js: "\"a\"\x00"}, {js: "\v\"a\""}, {js: ``}, {js: `"` + strings.Repeat("\\\"", 500) + `"`},
	}
	c := dangerousConfig{secrets: [][]byte{testSecret("crafted strings")}, salt: dangerousSalt, deriv: dangerousDjangoConcat, timed: true}
	z := c.serializer(t)
	var load []pyCase
	var toks []string
	for _, cr := range crafts {
		for _, comp := range []bool{false, true} {
			tok := dangerousForge(z, []byte(cr.js), comp, t0)
			p := c.py()
			p.Token, p.Now = tok, t0
			load = append(load, p)
			toks = append(toks, tok)
		}
	}
	res := o.call(t, "load", load)
	for i, tok := range toks {
		cr, r := crafts[i/2], res[i]
		d, err := z.appendLoads(nil, tok, t0, -1)
		pyOK, pyAccepts := pyOutcome(r)
		switch {
		case err == nil && (!pyOK || string(r.Value) != string(d.Value)):
			t.Errorf("%.60q: Go %q, Python %+v", cr.js, d.Value, r)
		case err != nil && pyAccepts != cr.subset:
			t.Errorf("%.60q: Go %v; Python %+v (the case says subset=%v)", cr.js, err, r, cr.subset)
		}
	}
}

// TestDangerousInflateLimit: a payload inflating to the cap reads; one byte more, or a zip
// bomb, is ErrTooLong, for both the string and the session decoder.
func TestDangerousInflateLimit(t *testing.T) {
	z, _ := newDangerousSerializer([][]byte{testSecret("bomb")}, dangerousSalt, dangerousDjangoConcat, true)
	f, _ := newFlaskSessionSerializer([][]byte{testSecret("bomb")})
	str := func(n int) []byte { return []byte(`"` + strings.Repeat("a", n-2) + `"`) }
	sess := func(n int) []byte { return []byte(`{"a":"` + strings.Repeat("a", n-8) + `"}`) }
	for _, tc := range []struct {
		n    int
		want error
	}{{dangerousMaxInflate, nil}, {dangerousMaxInflate + 1, ErrTooLong}, {1 << 20, ErrTooLong}} {
		tok := dangerousForge(z, str(tc.n), true, t0)
		if len(tok) > DefaultMaxLength {
			t.Fatalf("%d-byte payload: %d-byte token", tc.n, len(tok))
		}
		if d, err := z.appendLoads(nil, tok, t0, -1); err != tc.want || err == nil && len(d.Value) != tc.n-2 {
			t.Errorf("string inflating to %d bytes: %d bytes, %v; want %v", tc.n, len(d.Value), err, tc.want)
		}
		if _, _, err := f.flaskSessionLoads(dangerousForge(f, sess(tc.n), true, t0), t0, -1); err != tc.want {
			t.Errorf("session inflating to %d bytes: %v, want %v", tc.n, err, tc.want)
		}
	}
	// A truncated stream, and a stream with a bad checksum, are malformed.
	js := dangerousDeflate([]byte(`"abcabcabcabcabcabcabcabcabc"`))
	for _, bad := range [][]byte{js[:len(js)-1], append(js[:len(js)-1:len(js)-1], js[len(js)-1]^1)} {
		tok := string(z.signer.appendSign(dangerousAppendTimestamp(dangerousB64.AppendEncode([]byte{'.'}, bad), t0), 0))
		if _, err := z.appendLoads(nil, tok, t0, -1); err != ErrMalformed {
			t.Errorf("bad zlib stream: %v", err)
		}
	}
}

// TestDangerousErrors: what the primitives refuse, without Python.
func TestDangerousErrors(t *testing.T) {
	if _, err := newDangerousSigner(nil, dangerousSalt, dangerousDjangoConcat); err == nil {
		t.Error("no secrets accepted")
	}
	if _, err := newDangerousSigner([][]byte{[]byte("k"), {}}, dangerousSalt, dangerousDjangoConcat); err == nil {
		t.Error("an empty secret accepted")
	}
	if _, err := newDangerousSigner([][]byte{[]byte("k")}, dangerousSalt, 99); err == nil {
		t.Error("an unknown derivation accepted")
	}
	z, _ := newDangerousSerializer([][]byte{testSecret("errors")}, dangerousSalt, dangerousDjangoConcat, true)
	for _, v := range []string{"\xff", "a\xc3", "\xed\xa0\x80"} {
		if b, err := z.appendDumps([]byte("keep"), []byte(v), t0); err != errDangerousNotUTF8 || string(b) != "keep" {
			t.Errorf("dumps(%q) = %q, %v", v, b, err)
		}
	}
	if _, err := z.appendDumps(nil, []byte("a"), -1); err == nil {
		t.Error("a negative signing time accepted")
	}
	if _, err := z.appendDumps(nil, incompressible(8000), t0); err != ErrEncodedTooLong {
		t.Errorf("an over-long value: %v", err)
	}
	good, _ := z.appendDumps(nil, []byte("v"), t0)
	tok := string(good)
	sig := len(tok) - dangerousSigChars
	for _, tc := range []struct {
		v    string
		want error
	}{
		{tok, nil},
		{strings.Repeat("a", DefaultMaxLength+1), ErrTooLong},
		{"no separator", ErrMalformed},
		{tok[:sig-1], ErrBadMAC}, // the timestamp taken for the signature
		{tok[:len(tok)-1], ErrBadMAC},
		{tok + "A", ErrBadMAC},
		{tok + "=", ErrBadMAC},
		{tok[:sig] + strings.Repeat("A", dangerousSigChars), ErrBadMAC},
		{strings.Replace(tok, ".", ".=", 1), ErrBadMAC},
	} {
		d, err := z.appendLoads([]byte("dst"), tc.v, t0, -1)
		if err != tc.want {
			t.Errorf("%.40q: %v, want %v", tc.v, err, tc.want)
		}
		if err != nil && string(d.Value) != "dst" {
			t.Errorf("%.40q: dst changed on error: %q", tc.v, d.Value)
		}
	}
	// Forged (validly signed) structural errors.
	for _, tc := range []struct{ payload, want string }{
		{`eyJh`, "malformed"},         // no timestamp
		{`eyJh.!!`, "malformed"},      // timestamp not base64
		{`ImEi=.aSYHoA`, "malformed"}, // padded payload
		{`.ImEi.aSYHoA`, "malformed"}, // "." but not zlib
	} {
		v := string(z.signer.appendSign([]byte(tc.payload), 0))
		if _, err := z.appendLoads(nil, v, t0, -1); err == nil || err.(*cookie.DecodeError).Reason != tc.want {
			t.Errorf("%s: %v, want %s", tc.payload, err, tc.want)
		}
	}
	// Derivations and salts are not interchangeable.
	for _, d := range []dangerousDerivation{dangerousHMAC, dangerousConcat, dangerousNoDerivation} {
		other, _ := newDangerousSerializer([][]byte{testSecret("errors")}, dangerousSalt, d, true)
		if _, err := other.appendLoads(nil, tok, t0, -1); err != ErrBadMAC {
			t.Errorf("derivation %d read django-concat's value: %v", d, err)
		}
	}
	other, _ := newDangerousSerializer([][]byte{testSecret("errors")}, "other salt", dangerousDjangoConcat, true)
	if _, err := other.appendLoads(nil, tok, t0, -1); err != ErrBadMAC {
		t.Errorf("another salt read the value: %v", err)
	}
}

// incompressible is n bytes of hex from a hash chain.
func incompressible(n int) []byte {
	var b []byte
	for i := 0; len(b) < n; i++ {
		b = fmt.Appendf(b, "%x", testSecret(fmt.Sprint(i)))
	}
	return b[:n]
}

// TestDangerousGolden pins the bytes (with the signing time fixed), so a change shows even
// where Python is missing; the interop test checks the same bytes against Python.
func TestDangerousGolden(t *testing.T) {
	z, _ := newDangerousSerializer([][]byte{[]byte("secret")}, dangerousSalt, dangerousDjangoConcat, true)
	got, _ := z.appendDumps(nil, []byte("héllo"), t0)
	const want = "ImjDqWxsbyI.aSYHoA." // payload and timestamp; the signature follows
	if !strings.HasPrefix(string(got), want) || len(got) != len(want)+dangerousSigChars {
		t.Errorf("got %s, want %s + signature", got, want)
	}
	f, _ := newFlaskSessionSerializer([][]byte{[]byte("secret")})
	m, _, err := f.flaskSessionLoads(dangerousForge(f, []byte(`{"a":{" t":[1,{" b":"AP8="}]},"b":{" b":"aGk="},"c":null}`), false, t0), t0, -1)
	want2 := map[string]string{"a": `[1,"AP8="]`, "b": "hi", "c": "null"}
	if err != nil || !maps.Equal(m, want2) {
		t.Errorf("flask: %q, %v; want %q", m, err, want2)
	}
}

// TestDangerousLinear: decoding work grows linearly with the payload, for shapes that would
// expose a quadratic step (escapes, many keys, wide and nested containers, long numbers), up
// to the inflate cap. Allocations are counted exactly; time as the thread's CPU time (other
// processes and test packages do not count), and only loosely: 16 times the input must take
// well under the 256 times a quadratic step would, in one of two measurements.
func TestDangerousLinear(t *testing.T) {
	f, _ := newFlaskSessionSerializer([][]byte{testSecret("linear")})
	f.maxLength = 1 << 20 // the shapes compress less than a cookie allows
	shapes := map[string]func(n int) string{
		"escapes": func(n int) string { return `{"a":"` + strings.Repeat(`\ud83d\ude00\"`, n/14) + `"}` },
		"keys": func(n int) string {
			var b strings.Builder
			b.WriteString(`{"k":0`)
			for i := 0; b.Len() < n; i++ {
				fmt.Fprintf(&b, `,"k%d":{" t":[%d]}`, i, i)
			}
			return b.String() + "}"
		},
		"wide":   func(n int) string { return `{"a":[` + strings.Repeat(`[{" di":{"x__":1}}],`, n/20) + `0]}` },
		"nested": func(n int) string { return `{"a":[` + strings.Repeat(deepArray(100)+",", n/201) + `0]}` },
		"number": func(n int) string { return `{"a":0.` + strings.Repeat("1", n) + `}` },
	}
	for name, shape := range shapes {
		small, large := shape(dangerousMaxInflate/16), shape(dangerousMaxInflate-64)
		var ratio float64
		var as, al float64
		for try := 0; try < 2 && (try == 0 || ratio > 128); try++ {
			var ts, tl time.Duration
			ts, as = measure(t, f, small)
			tl, al = measure(t, f, large)
			ratio = float64(tl) / float64(ts)
			t.Logf("%s: %d bytes in %v (%.0f allocations), %d bytes in %v (%.0f allocations): x%.1f",
				name, len(small), ts, as, len(large), tl, al, ratio)
		}
		if ratio > 128 && testskip.Costs() { // a timing ratio: only in its own step of CI
			t.Errorf("%s: 16x the input took %.0fx the CPU time", name, ratio)
		}
		if al > as*20 {
			t.Errorf("%s: 16x the input made %.0fx the allocations", name, al/as)
		}
	}
}

func deepArray(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

// measure is the fastest of a few decodes of js (the minimum resists a loaded machine) and
// the allocations of one.
func measure(t *testing.T, f *dangerousSerializer, js string) (time.Duration, float64) {
	tok := dangerousForge(f, []byte(js), true, t0)
	decode := func() {
		if _, _, err := f.flaskSessionLoads(tok, t0, -1); err != nil {
			t.Fatalf("%.40q: %v", js, err)
		}
	}
	allocs := testing.AllocsPerRun(1, decode)
	return cputime.PerOp(decode), allocs
}

// FuzzDangerousLoads: arbitrary cookies, and arbitrary JSON signed as payloads (plain and
// zlib), through both decoders: no panic, only the package's reasons, and a string that loads
// dumps and loads back to itself. Where encoding/json reads the same payload as a string, it
// agrees (it replaces lone surrogates with U+FFFD, which Go refuses).
func FuzzDangerousLoads(f *testing.F) {
	for _, s := range []string{`"abc"`, `{"a":{" t":[1,{" b":"AP8="}]}}`, `"\ud83d\ude00"`, `{" di":{"x__":{" d":"Tue, 02 Jan 2024 03:04:05 GMT"}}}`, `NaN`} {
		f.Add([]byte(s), uint8(1))
	}
	f.Add([]byte("ImEi.aSYHoA.AAAAAAAAAAAAAAAAAAAAAAAAAAA"), uint8(0))
	z, _ := newDangerousSerializer([][]byte{testSecret("fuzz")}, dangerousSalt, dangerousDjangoConcat, true)
	fl, _ := newFlaskSessionSerializer([][]byte{testSecret("fuzz")})
	reasons := []error{ErrTooLong, ErrMalformed, ErrBadMAC, ErrExpired}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		tok, ftok := string(data), string(data)
		if mode%3 != 0 {
			tok = dangerousForge(z, data, mode%3 == 2, t0)
			ftok = dangerousForge(fl, data, mode%3 == 2, t0)
		}
		d, err := z.appendLoads(nil, tok, t0, 60)
		if err != nil && !slices.Contains(reasons, err) {
			t.Fatalf("unexpected error %v", err)
		}
		if err == nil {
			if !utf8.Valid(d.Value) {
				t.Fatalf("loaded invalid UTF-8 %q", d.Value)
			}
			again, err := z.appendDumps(nil, d.Value, t0)
			if err == ErrEncodedTooLong {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d2, err := z.appendLoads(nil, string(again), t0, 60); err != nil || !bytes.Equal(d2.Value, d.Value) {
				t.Fatalf("reloaded %q as %q, %v", d.Value, d2.Value, err)
			}
		}
		if mode%3 == 1 && utf8.Valid(data) {
			var std string
			stdErr := json.Unmarshal(data, &std)
			switch {
			case err == nil && (stdErr != nil || std != string(d.Value)):
				t.Fatalf("%q: ours %q, encoding/json %q %v", data, d.Value, std, stdErr)
			case err != nil && stdErr == nil && !strings.ContainsRune(std, utf8.RuneError) &&
				!strings.HasPrefix(strings.TrimLeft(string(data), " \t\r\n"), "null"): // null leaves a string unset
				t.Fatalf("%q: ours %v, encoding/json %q", data, err, std)
			}
		}
		m, _, err := fl.flaskSessionLoads(ftok, t0, 60)
		if err != nil && !slices.Contains(reasons, err) {
			t.Fatalf("unexpected error %v", err)
		}
		for k := range m {
			if !utf8.ValidString(k) {
				t.Fatalf("key %q", k)
			}
		}
	})
}

// FuzzDangerousRoundTrip: any valid UTF-8 value dumps and loads back to itself in every mode;
// the JSON is what encoding/json reads as the same string, and ASCII mode writes only ASCII.
// Invalid UTF-8 is refused.
func FuzzDangerousRoundTrip(f *testing.F) {
	for _, v := range []string{"", "héllo", "\x00\x7f\u2028😀", strings.Repeat("ab", 100), "\xff"} {
		f.Add(v, false, false)
		f.Add(v, true, true)
	}
	f.Fuzz(func(t *testing.T, v string, timed, ascii bool) {
		z, _ := newDangerousSerializer([][]byte{testSecret("fuzz rt")}, dangerousSalt, dangerousDjangoConcat, timed)
		z.asciiJSON = ascii
		tok, err := z.appendDumps(nil, []byte(v), t0)
		if !utf8.ValidString(v) {
			if err != errDangerousNotUTF8 {
				t.Fatalf("%q: %v", v, err)
			}
			return
		}
		if err == ErrEncodedTooLong {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := z.appendLoads(nil, string(tok), t0, 0)
		if err != nil || string(d.Value) != v {
			t.Fatalf("%q: loaded %q, %v", v, d.Value, err)
		}
		js := dangerousAppendJSONString(nil, v, ascii)
		var std string
		if err := json.Unmarshal(js, &std); err != nil || std != v {
			t.Fatalf("%q: JSON %s reads as %q, %v", v, js, std, err)
		}
		for _, c := range js {
			if ascii && c >= utf8.RuneSelf {
				t.Fatalf("%q: ASCII mode wrote %s", v, js)
			}
		}
	})
}

// The shapes the module uses: a Codec for itsdangerous values, a Session for Flask's.
func TestCodecAndSession(t *testing.T) {
	keys := [][]byte{[]byte("new key"), []byte("old key")}
	c, err := New(keys, "my-salt", 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.AppendEncodeAt(nil, "my_cookie", []byte("my_value"), t0)
	v := string(b)
	if err != nil || !c.IsEncoded(v) || c.IsEncoded("my_value") || c.KeyCount() != 2 || c.Encrypted() {
		t.Fatalf("encode: %q, %v; IsEncoded %v; KeyCount %d", v, err, c.IsEncoded(v), c.KeyCount())
	}
	d, err := c.AppendDecodeAt(nil, "my_cookie", v, t0)
	if err != nil || string(d.Value) != "my_value" || d.Key != 0 {
		t.Fatalf("decode: %+v, %v", d, err)
	}
	old, _ := New(keys[1:], "my-salt", 0)
	ob, _ := old.AppendEncodeAt(nil, "x", []byte("v"), t0)
	ov := string(ob)
	if d, err := c.AppendDecodeAt(nil, "x", ov, t0); err != nil || d.Key != 1 {
		t.Errorf("old key: %+v, %v", d, err)
	}
	if _, err := c.AppendDecodeAt(nil, "x", ov[:len(ov)-1]+"A", t0); err != ErrBadMAC && err != ErrMalformed {
		t.Errorf("tampered: %v", err)
	}
	if len(v) > c.EncodedLen(len("my_value")) {
		t.Errorf("EncodedLen %d under the real length %d", c.EncodedLen(8), len(v))
	}
	timed, _ := New(keys, "s", time.Hour)
	tb, _ := timed.AppendEncodeAt(nil, "x", []byte("v"), t0)
	if _, err := timed.AppendDecodeAt(nil, "x", string(tb), t0+3601); err != ErrExpired {
		t.Errorf("timed value past max_age: %v", err)
	}
	if d, err := timed.AppendDecodeAt(nil, "x", string(tb), t0+60); err != nil || d.Signed != t0 {
		t.Errorf("timed value within max_age: %+v, %v", d, err)
	}
	s, err := NewSession(keys, "", 31*24*time.Hour)
	if err != nil || s.KeyCount() != 2 || s.MaxLength() != DefaultMaxLength {
		t.Fatalf("NewSession: %v", err)
	}
}

func TestMain(m *testing.M) { os.Exit(testskip.Main(m)) }
