// The pure helpers of the root package, on their own: the config checks (config.go), the
// Caddyfile readers (caddyfile.go), the composition walk's pieces (compose.go), isHTTPS,
// errorStatus and the placeholder provider. No Caddy is started.

package signedcookies

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/signedcookies/caddy-signedcookies/internal/engine"
)

// wantErr checks err against want: "" for none, else a text the error must hold.
func wantErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: error %v, want none", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: no error, want one saying %q", what, want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("%s: error %q, want one saying %q", what, err, want)
	}
}

func TestCheckPattern(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"session", ""},
		{"__Host-vid", ""},
		{"sess_*", ""},
		{"a?[bc]", ""},
		{`a\*`, ""}, // an escaped star: the literal name a*
		{"", "empty cookie name"},
		{"[", "syntax error in pattern"},
		{"a b", "not allowed in a cookie name"},
		{"a;b", "not allowed in a cookie name"},
		{"a=b", "not allowed in a cookie name"},
		{"a,b", "not allowed in a cookie name"},
		{"caf\u00e9", "not allowed in a cookie name"},
		{"a\x7f", "not allowed in a cookie name"},
	} {
		wantErr(t, fmt.Sprintf("checkPattern(%q)", tc.pattern), checkPattern(tc.pattern), tc.want)
	}
}

func TestCheckToken(t *testing.T) {
	for _, tc := range []struct{ token, want string }{
		{"vid", ""},
		{"__Host-vid", ""},
		{"X-Visitor-Id", ""},
		{"!#$%&'*+-.^_`|~", ""}, // every non-alphanumeric tchar
		{"", "empty"},
		{"a b", "not allowed in a name"},
		{"a=b", "not allowed in a name"},
		{"a{b}", "not allowed in a name"},
		{"sess*", ""}, // '*' is a token character (RFC 9110): only checkPattern reads it as a glob
		{"a\x00", "not allowed in a name"},
		{"\u00e9", "not allowed in a name"},
	} {
		wantErr(t, fmt.Sprintf("checkToken(%q)", tc.token), checkToken(tc.token), tc.want)
	}
}

func TestCheckRealm(t *testing.T) {
	for _, tc := range []struct{ realm, want string }{
		{"", ""},
		{"app", ""},
		{"shop eu-1", ""}, // a space inside is printable
		{strings.Repeat("r", 128), ""},
		{strings.Repeat("r", 129), "129 bytes, at most 128"},
		{" app", "begins or ends with a space"},
		{"app ", "begins or ends with a space"},
		{"a\tb", "byte 2 is not printable ASCII"},
		{"caf\u00e9", "byte 4 is not printable ASCII"},
		{"a\x7f", "byte 2 is not printable ASCII"},
	} {
		wantErr(t, fmt.Sprintf("checkRealm(%.20q)", tc.realm), checkRealm(tc.realm), tc.want)
	}
}

func TestOneOf(t *testing.T) {
	for _, tc := range []struct {
		v       string
		allowed []string
		want    string
	}{
		{"lax", []string{"lax", "strict", "none"}, ""},
		{"none", []string{"lax", "strict", "none"}, ""},
		{"bogus", []string{"lax", "strict", "none"}, `same_site: "bogus" is not one of lax, strict, none`},
		{"Lax", []string{"lax"}, `same_site: "Lax" is not one of lax`}, // callers lower-case first
		{"", []string{"lax"}, `same_site: "" is not one of lax`},
		{"lax", nil, `same_site: "lax" is not one of `},
	} {
		wantErr(t, fmt.Sprintf("oneOf(%q, %q)", tc.v, tc.allowed), oneOf("same_site", tc.v, tc.allowed...), tc.want)
	}
}

func TestParseDeadline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC), ""},
		{"2027-01-31T18:00:00Z", time.Date(2027, 1, 31, 18, 0, 0, 0, time.UTC), ""},
		{"2027-01-31T18:00:00+02:00", time.Date(2027, 1, 31, 16, 0, 0, 0, time.UTC), ""},
		{"2027-01-31T18:00:00.5Z", time.Date(2027, 1, 31, 18, 0, 0, 5e8, time.UTC), ""},
		{"31/01/2027", time.Time{}, `"31/01/2027" is not a date (2027-01-31) or an RFC 3339 time`},
		{"2027-02-30", time.Time{}, "is not a date"},
		{"2027-01-31 18:00:00", time.Time{}, "is not a date"},
		{"", time.Time{}, `"" is not a date`},
	} {
		got, err := parseDeadline(tc.in)
		wantErr(t, fmt.Sprintf("parseDeadline(%q)", tc.in), err, tc.err)
		if !got.Equal(tc.want) {
			t.Errorf("parseDeadline(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestCheckAttributes(t *testing.T) {
	for _, tc := range []struct{ attrs, want string }{
		{"", ""},
		{"Path=/; HttpOnly; SameSite=Lax", ""},
		{"Max-Age=60", ""},
		{" max-age=1 ;Secure", ""},
		{"Max-Age=0", `Max-Age "0" is not a positive number of seconds`},
		{"max-age=-1", `Max-Age "-1" is not a positive number of seconds`},
		{"Max-Age=soon", `Max-Age "soon" is not a positive number of seconds`},
		{"Max-Age", `Max-Age "" is not a positive number of seconds`},
		{"Max-Age=60; Max-Age=0", `Max-Age "0"`},
		{"Expires=Wed, 21 Oct 2099 07:28:00 GMT", "an Expires attribute: give Max-Age instead"},
		{"Path=/; EXPIRES=x", "an Expires attribute"},
		{"Path=/\r\nX-Injected: 1", "control characters"},
		{"Path=/\x00", "control characters"},
	} {
		wantErr(t, fmt.Sprintf("checkAttributes(%q)", tc.attrs), checkAttributes(tc.attrs), tc.want)
	}
}

func TestCheckFormatKey(t *testing.T) {
	for _, tc := range []struct{ key, want string }{
		{formatKey("unit"), ""}, // 64 hex digits, as secrets.token_hex() makes them
		{"0123456789abcdefghijklmn", ""},
		{"0123456789abcdef01234567", ""}, // period 16: longer than half the key, not refused
		{"abcabcabcabcabcabcabcabx", ""}, // almost periodic
		{"0123456789abcdefghijklm", "is 23 bytes, need at least 24"},
		{"", "is 0 bytes"},
		{strings.Repeat("a", 24), "repeats a short pattern"},
		{strings.Repeat("ab", 12), "repeats a short pattern"},
		{strings.Repeat("abc", 8) + "ab", "repeats a short pattern"},   // a pattern cut short still repeats
		{strings.Repeat("0123456789ab", 2), "repeats a short pattern"}, // period 12, half the key
	} {
		wantErr(t, fmt.Sprintf("checkFormatKey(%q)", tc.key), checkFormatKey([]byte(tc.key)), tc.want)
	}
}

// dispenserAt is a Caddyfile dispenser over input, on its first token (the subdirective the
// readers are called at).
func dispenserAt(t *testing.T, input string) *caddyfile.Dispenser {
	t.Helper()
	d := caddyfile.NewTestDispenser(input)
	if !d.Next() {
		t.Fatalf("no token in %q", input)
	}
	return d
}

func TestKeyword(t *testing.T) {
	for _, tc := range []struct{ input, want, err string }{
		{"same_site lax", "lax", ""},
		{"same_site STRICT", "strict", ""},
		{"same_site None", "none", ""},
		{"same_site bogus", "", `same_site: "bogus" is not one of lax, strict, none`},
		{"same_site", "", "wrong argument count"},
		{"same_site lax strict", "", "wrong argument count"},
	} {
		got, err := keyword(dispenserAt(t, tc.input), "same_site", "lax", "strict", "none")
		wantErr(t, fmt.Sprintf("keyword(%q)", tc.input), err, tc.err)
		if got != tc.want {
			t.Errorf("keyword(%q) = %q, want %q", tc.input, got, tc.want)
		}
	}
}

func TestAppendArgs(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  []string
		err   string
	}{
		{"sign a", []string{"before", "a"}, ""},
		{"sign a b* c", []string{"before", "a", "b*", "c"}, ""},
		{"sign", []string{"before"}, "wrong argument count"},
	} {
		list := []string{"before"}
		err := appendArgs(dispenserAt(t, tc.input), &list)
		wantErr(t, fmt.Sprintf("appendArgs(%q)", tc.input), err, tc.err)
		if !slices.Equal(list, tc.want) {
			t.Errorf("appendArgs(%q): list %q, want %q", tc.input, list, tc.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for _, tc := range []struct {
		input string
		want  time.Duration
		err   string
	}{
		{"max_age 90s", 90 * time.Second, ""},
		{"max_age 1h30m", 90 * time.Minute, ""},
		{"max_age 400d", 400 * 24 * time.Hour, ""}, // Caddy's days
		{"max_age 0s", 0, `max_age: duration "0s" must be positive`},
		{"rotate -1h", 0, `rotate: duration "-1h" must be positive`},
		{"max_age soon", 0, `max_age: bad duration "soon"`},
		{"max_age 10", 0, `max_age: bad duration "10"`}, // a unit is required
		{"max_age", 0, "wrong argument count"},
		{"max_age 1h 2h", 0, "wrong argument count"},
	} {
		got, err := parseDuration(dispenserAt(t, tc.input))
		wantErr(t, fmt.Sprintf("parseDuration(%q)", tc.input), err, tc.err)
		if time.Duration(got) != tc.want {
			t.Errorf("parseDuration(%q) = %v, want %v", tc.input, time.Duration(got), tc.want)
		}
	}
}

func TestSortedKeys(t *testing.T) {
	if got := sortedKeys(map[string]int{"b": 1, "a": 2, "C": 3, "": 4}); !slices.Equal(got, []string{"", "C", "a", "b"}) {
		t.Errorf("sortedKeys = %q, want byte order", got)
	}
	if got := sortedKeys(map[string]bool(nil)); got == nil || len(got) != 0 {
		t.Errorf("sortedKeys(nil) = %#v, want an empty slice", got)
	}
}

func TestAddGroup(t *testing.T) {
	for _, tc := range []struct{ groups, g, want string }{
		{"", "b", "b"},
		{"b", "a", "a\x00b"},
		{"a\x00c", "b", "a\x00b\x00c"},
		{"a", "a", "a\x00a"}, // a group runs one route: callers never add one twice
	} {
		if got := addGroup(tc.groups, tc.g); got != tc.want {
			t.Errorf("addGroup(%q, %q) = %q, want %q", tc.groups, tc.g, got, tc.want)
		}
	}
}

func TestDedupe(t *testing.T) {
	got := dedupe([]state{
		{through: 2, groups: "g", paths: "/a"},
		{through: 1, groups: "g", paths: "/b"},
		{through: 1, groups: "g", paths: "/a"},
		{through: 2, groups: "g", paths: "/a"},
		{through: 1, groups: "", paths: "/b"},
		{through: 1, groups: "g", paths: "/a"},
	})
	want := []state{
		{through: 1, groups: "", paths: "/b"},
		{through: 1, groups: "g", paths: "/a"},
		{through: 1, groups: "g", paths: "/b"},
		{through: 2, groups: "g", paths: "/a"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("dedupe = %+v, want %+v", got, want)
	}
	if got := dedupe(nil); len(got) != 0 {
		t.Errorf("dedupe(nil) = %+v", got)
	}

	// Past maxStates, groups and paths are dropped: the states left differ in what ran only.
	distinct := func(n int) []state {
		var ss []state
		for i := range n {
			ss = append(ss, state{through: uint64(i % 3), groups: fmt.Sprint("g", i), paths: fmt.Sprint("/", i)})
		}
		return ss
	}
	if got := dedupe(distinct(maxStates)); len(got) != maxStates {
		t.Errorf("dedupe of %d distinct states = %d, want them all kept", maxStates, len(got))
	}
	want = []state{{through: 0}, {through: 1}, {through: 2}}
	if got := dedupe(distinct(maxStates + 1)); !slices.Equal(got, want) {
		t.Errorf("dedupe of %d states = %d states (%+v), want %+v", maxStates+1, len(got), got[:min(len(got), 5)], want)
	}
}

func TestPathsOf(t *testing.T) {
	raw := func(sets ...caddy.ModuleMap) caddyhttp.RawMatcherSets { return sets }
	for _, tc := range []struct {
		name  string
		route caddyhttp.Route
		want  []string
		ok    bool
	}{
		{"raw path matcher, lower-cased", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"path": json.RawMessage(`["/App/*","/b"]`)})}, []string{"/app/*", "/b"}, true},
		{"raw path and host", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"path": json.RawMessage(`["/a"]`), "host": json.RawMessage(`["x"]`)})}, nil, false},
		{"raw host only", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"host": json.RawMessage(`["x"]`)})}, nil, false},
		{"two raw sets (or)", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"path": json.RawMessage(`["/a"]`)}, caddy.ModuleMap{"path": json.RawMessage(`["/b"]`)})}, nil, false},
		{"raw path, bad JSON", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"path": json.RawMessage(`"/a"`)})}, nil, false},
		{"raw path, empty list", caddyhttp.Route{MatcherSetsRaw: raw(caddy.ModuleMap{"path": json.RawMessage(`[]`)})}, nil, false},
		{"provisioned MatchPath", caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/X/*"}}}}, []string{"/x/*"}, true},
		{"provisioned *MatchPath", caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{&caddyhttp.MatchPath{"/y"}}}}, []string{"/y"}, true},
		{"provisioned host", caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchHost{"x"}}}}, nil, false},
		{"provisioned path and host", caddyhttp.Route{MatcherSets: caddyhttp.MatcherSets{{caddyhttp.MatchPath{"/a"}, caddyhttp.MatchHost{"x"}}}}, nil, false},
		{"no matcher", caddyhttp.Route{}, nil, false},
	} {
		got, ok := pathsOf(&tc.route)
		if ok != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("%s: pathsOf = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

func TestPathsMayMatch(t *testing.T) {
	for _, tc := range []struct {
		before string
		ps     []string
		want   bool
	}{
		{"", []string{"/anything"}, true}, // nothing matched before
		{"/a/*", []string{"/a/x"}, true},
		{"/a/*", []string{"/b/*"}, false},
		{"/a/*", []string{"/b/*", "/a/y"}, true},           // one of ps will do
		{"/a/*\x01/b/*", []string{"/b/c"}, true},           // one list: one of its patterns
		{"/a/*\x00/a/x*", []string{"/a/y"}, false},         // every list must be matched
		{"/a/*\x00/a/x*", []string{"/a/x1"}, true},         //
		{"/app*", []string{"/app/deep/path"}, true},        // Caddy's * spans '/'
		{"*.php", []string{"/index.php", "/x.html"}, true}, // a suffix
		{"*.php", []string{"/x.html"}, false},
	} {
		if got := pathsMayMatch(tc.before, tc.ps); got != tc.want {
			t.Errorf("pathsMayMatch(%q, %q) = %v, want %v", tc.before, tc.ps, got, tc.want)
		}
	}
}

func TestIsHTTPS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tls     bool
		trusted any // the trusted-proxy var; nil: no vars at all
		xfp     string
		want    bool
	}{
		{"TLS", true, false, "", true},
		{"TLS, untrusted proxy saying http", true, false, "http", true},
		{"plain", false, false, "", false},
		{"untrusted proxy saying https", false, false, "https", false},
		{"no vars", false, nil, "https", false},
		{"trusted proxy saying https", false, true, "https", true},
		{"trusted proxy saying HTTPS with spaces", false, true, " HTTPS ", true},
		{"trusted proxy saying http", false, true, "http", false},
		{"trusted proxy saying nothing", false, true, "", false},
		{"trusted proxy saying https, http", false, true, "https, http", false},
		{"trusted var of another type", false, "true", "https", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://example.com/", nil)
		if tc.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if tc.xfp != "" {
			r.Header.Set("X-Forwarded-Proto", tc.xfp)
		}
		if tc.trusted != nil {
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.TrustedProxyVarKey: tc.trusted}))
		}
		if got := isHTTPS(r); got != tc.want {
			t.Errorf("%s: isHTTPS = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestErrorStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{engine.ErrTooManyCookies, http.StatusRequestHeaderFieldsTooLarge},
		{fmt.Errorf("request: %w", engine.ErrTooManyCookies), http.StatusRequestHeaderFieldsTooLarge},
		{engine.ErrInvalidCookie, http.StatusBadRequest},
		{fmt.Errorf("session: %w", engine.ErrInvalidCookie), http.StatusBadRequest},
		{errors.New("two handlers manage session differently"), http.StatusInternalServerError},
	} {
		if got := errorStatus(tc.err); got != tc.want {
			t.Errorf("errorStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// The placeholder provider answers the module's keys only, tells a placeholder that does not
// exist (no policy with a visitor cookie ran) from one that is empty, and keeps answering
// after the handler returned and its pass went back to the pool (as the access log reads
// them).
func TestPlaceholders(t *testing.T) {
	type answer struct {
		v  any
		ok bool
	}
	keys := []string{phVisitorID, phVisitorNew, phInvalid, phFlask + "user_id", "http.request.host", "http.signed_cookies.other"}
	ask := func(ph *placeholders) []answer {
		var out []answer
		for _, k := range keys {
			v, ok := ph.get(k)
			out = append(out, answer{v, ok})
		}
		return out
	}
	got := ask(&placeholders{flow: new(engine.Flow)})
	want := []answer{{"", false}, {false, false}, {"", true}, {"", false}, {nil, false}, {nil, false}}
	if !slices.Equal(got, want) {
		t.Errorf("before any policy ran: %v, want %v", got, want)
	}

	// After a handler with a visitor cookie (benchHandler's) ran on a request with a forged
	// session and no visitor cookie: a new ID, the forged name listed. Other requests reuse
	// the pass in between: the answers stay this request's.
	h := benchHandler(t)
	serve := func(cookie string) *caddy.Replacer {
		r := benchRequest(cookie)
		r = r.WithContext(benchContext(r, true))
		if err := h.ServeHTTP(&benchWriter{header: http.Header{}}, r, benchNext(nil)); err != nil {
			t.Fatal(err)
		}
		return r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	}
	repl := serve("session=forged")
	for range 3 {
		serve("other=1; session=forged-too")
	}
	id, _ := repl.GetString(phVisitorID)
	if !uuidV4.MatchString(id) {
		t.Errorf("visitor_id = %q, want a new UUID", id)
	}
	for k, want := range map[string]any{phVisitorNew: true, phInvalid: "session"} {
		if v, ok := repl.Get(k); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", k, v, ok, want)
		}
	}
	for _, k := range []string{phFlask + "user_id", "http.signed_cookies.other"} {
		if v, ok := repl.Get(k); ok {
			t.Errorf("%s = %v: want no such placeholder", k, v)
		}
	}
}
