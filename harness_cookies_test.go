// Cookies in the tests: the codecs of the test secret, reading and checking Set-Cookie lines
// and the Cookie header an upstream received, and the sites and apps many tests share.

package signedcookies

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// vidAttrs are the default visitor cookie attributes over plain HTTP.
const vidAttrs = "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"

// trackAndSignSite is the most common site of these tests: the test secret, a visitor cookie
// with the defaults, a signed session cookie, in front of upAddr.
func trackAndSignSite(upAddr string) string {
	return "\tsigned_cookies {\n\t\tsecret " + testSecret + "\n\t\ttrack\n\t\tsign session\n\t}\n\treverse_proxy " + upAddr
}

// legacyApp sets plain cookies on /login and nothing elsewhere, like an app that knows
// nothing of signatures.
func legacyApp(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/login" {
		w.Header().Add("Set-Cookie", "session=alice; Path=/; HttpOnly; Priority=High")
		w.Header().Add("Set-Cookie", "cart=3-apples; Path=/")
		w.Header().Add("Set-Cookie", "theme=dark; Path=/")
	}
	w.Write([]byte("ok"))
}

func mustRing(t testing.TB, secrets ...string) *cookie.KeyRing {
	t.Helper()
	var raw [][]byte
	for _, s := range secrets {
		b, err := cookie.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b)
	}
	r, err := cookie.NewKeyRing(raw...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func signCodec(t testing.TB) *cookie.Codec {
	return cookie.NewCodec(mustRing(t, testSecret), cookie.Options{})
}

func encryptCodec(t testing.TB) *cookie.Codec {
	return cookie.NewCodec(mustRing(t, testSecret), cookie.Options{Encrypt: true})
}

func encodeFor(t testing.TB, c *cookie.Codec, name, value string) string {
	t.Helper()
	v, err := c.Encode(name, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// signedFor is plain signed with the test secret for the cookie name.
func signedFor(t testing.TB, name, plain string) string {
	t.Helper()
	return encodeFor(t, signCodec(t), name, plain)
}

// setCookies returns the response's Set-Cookie lines for name.
func setCookies(resp *http.Response, name string) []string {
	var out []string
	for _, l := range resp.Header.Values("Set-Cookie") {
		if strings.HasPrefix(l, name+"=") {
			out = append(out, l)
		}
	}
	return out
}

// upstreamCookie returns the value of name in the Cookie header the upstream received, and
// how many times it appeared.
func upstreamCookie(r *http.Request, name string) (string, int) {
	var v string
	n := 0
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				if n == 0 {
					v = val
				}
				n++
			}
		}
	}
	return v, n
}

// isIDHeaderSpelling reports whether k is X-Visitor-Id as lenient stacks read it (any case,
// '_' or '.' for '-').
func isIDHeaderSpelling(k string) bool {
	return strings.EqualFold(strings.NewReplacer("_", "-", ".", "-").Replace(k), "x-visitor-id")
}

// wantLine is one expected Set-Cookie line: exact, or name=<value>rest where value decodes
// with codec to plain (a visitor cookie, name vid or track's, decodes to any 16-byte ID
// when plain is empty).
type wantLine struct {
	exact             string
	name, rest, plain string
	codec             *cookie.Codec
}

// checkSetCookies compares the Set-Cookie lines, in order. A managed value must decode to
// the plain value in one step: signed exactly once, never sent plain.
func checkSetCookies(t testing.TB, got []string, want []wantLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("Set-Cookie: got %d lines, want %d:\n%s", len(got), len(want), shortLines(got))
		return
	}
	for i, w := range want {
		line := got[i]
		if w.exact != "" {
			if line != w.exact {
				t.Errorf("Set-Cookie %d = %.120q, want unchanged %q", i, line, w.exact)
			}
			continue
		}
		name, value, rest := splitSetCookie(line)
		if name != w.name || rest != w.rest {
			t.Errorf("Set-Cookie %d = %.120q, want %s=<signed>%s", i, line, w.name, w.rest)
			continue
		}
		d, err := w.codec.Decode(name, value)
		switch {
		case err != nil:
			t.Errorf("Set-Cookie %d (%s) does not decode: %v: %.80q", i, name, err, value)
		case w.plain == "" && len(d.Value) != cookie.VisitorIDLen:
			t.Errorf("Set-Cookie %d (%s) decodes to %d bytes, want a visitor ID", i, name, len(d.Value))
		case w.plain != "" && string(d.Value) != w.plain:
			t.Errorf("Set-Cookie %d (%s) decodes to %.40q, want %.40q", i, name, d.Value, w.plain)
		}
	}
}

func shortLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "\t%.100q\n", l)
	}
	return b.String()
}

// splitSetCookie splits a line at its first '=' and first ';'.
func splitSetCookie(line string) (name, value, rest string) {
	pair, _, _ := strings.Cut(line, ";")
	rest = line[len(pair):]
	name, value, _ = strings.Cut(pair, "=")
	return name, value, rest
}

// valueOf returns the value of the first Set-Cookie line for name.
func valueOf(lines []string, name string) string {
	for _, l := range lines {
		if n, v, _ := splitSetCookie(l); n == name {
			return v
		}
	}
	return ""
}

func countLine(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

// visitorIDOf decodes the client's signed visitor cookie into the UUID the upstream sees.
func visitorIDOf(t testing.TB, c *http.Client, rawURL, name string) string {
	t.Helper()
	v := jarValue(t, c, rawURL, name)
	d, err := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{}).Decode(name, v)
	if err != nil {
		t.Fatalf("client's %s cookie %q does not verify: %v", name, v, err)
	}
	return cookie.UUIDString(d.Value)
}

// ruleSite is a site with the test secret and the given signed_cookies lines, in front of
// upAddr.
func ruleSite(upAddr, lines string) string {
	return "\tsigned_cookies {\n\t\tsecret " + testSecret + "\n" + lines + "\n\t}\n\treverse_proxy " + upAddr
}

// scriptedApp sets, on each path, the Set-Cookie lines given for it, in that order.
func scriptedApp(routes map[string][]string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, l := range routes[r.URL.Path] {
			w.Header().Add("Set-Cookie", l)
		}
	}
}

// randomText is n bytes of letters and digits, the same for the same seed.
func randomText(n int, seed uint64) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return string(b)
}

// plainForChunks is the length of a plain value whose signed form, for a cookie the browser
// holds as browser, takes k cookies (k = 8: the longest value a split carries).
func plainForChunks(t testing.TB, browser string, k int) int {
	t.Helper()
	codec := signCodec(t)
	size := 4096 - len(browser) - 5 // what one chunk holds
	n := 0
	for codec.EncodedLen(n+1) <= min(k*size, splitMaxLength) {
		n++
	}
	if got := (codec.EncodedLen(n) + size - 1) / size; got != k {
		t.Fatalf("%d bytes take %d chunks, want %d", n, got, k)
	}
	return n
}
