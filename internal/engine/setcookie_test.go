package engine

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseSetCookieSplice(t *testing.T) {
	for _, tc := range []struct {
		line, name, value, spliced string
	}{
		{"a=b", "a", "b", "a=NEW"},
		{"a=b; Priority=High", "a", "b", "a=NEW; Priority=High"},
		{"a = b ;Path=/", "a", "b", "a = NEW ;Path=/"},
		{"a\t=\tb\t;\tPath=/;\tHttpOnly", "a", "b", "a\t=\tNEW\t;\tPath=/;\tHttpOnly"},
		{"  a=b", "a", "b", "  a=NEW"},
		{`a="x y"; Path=/`, "a", `"x y"`, `a=NEW; Path=/`},
		{"a=b=c==; Path=/", "a", "b=c==", "a=NEW; Path=/"},
		{"a=; Path=/", "a", "", "a=NEW; Path=/"},
		{"a=", "a", "", "a=NEW"},
		{"a= \t; Path=/", "a", "", "a= \tNEW; Path=/"},
		{"a=b;", "a", "b", "a=NEW;"},
		{"a=b;;;", "a", "b", "a=NEW;;;"},
		{"a=x y z ; Path=/", "a", "x y z", "a=NEW ; Path=/"},
		{"a=ü€; Path=/ü", "a", "ü€", "a=NEW; Path=/ü"},
		{"a=Max-Age=0", "a", "Max-Age=0", "a=NEW"},
		{"sess id=v;Domain=.example.com", "sess id", "v", "sess id=NEW;Domain=.example.com"},
		{
			"__Host-sid=abc; Secure; Path=/; SameSite=Lax; Partitioned; Expires=Wed, 21 Oct 2035 07:28:00 GMT; Max-Age=5; X-Odd=\"q;\"",
			"__Host-sid", "abc",
			"__Host-sid=NEW; Secure; Path=/; SameSite=Lax; Partitioned; Expires=Wed, 21 Oct 2035 07:28:00 GMT; Max-Age=5; X-Odd=\"q;\"",
		},
	} {
		sc, ok := parseSetCookie(tc.line)
		if !ok || sc.name != tc.name || sc.value != tc.value || sc.line != tc.line {
			t.Errorf("parseSetCookie(%q) = %q, %q, %v; want %q, %q", tc.line, sc.name, sc.value, ok, tc.name, tc.value)
			continue
		}
		if sc.line[sc.valueStart:sc.valueEnd] != sc.value {
			t.Errorf("%q: valueStart/valueEnd do not locate the value", tc.line)
		}
		if got := string(sc.appendSplice(nil, []byte("NEW"))); got != tc.spliced {
			t.Errorf("appendSplice(%q) = %q, want %q", tc.line, got, tc.spliced)
		}
		if got := string(sc.appendSplice([]byte("Set-Cookie: "), []byte("NEW"))); got != "Set-Cookie: "+tc.spliced {
			t.Errorf("appendSplice(%q) after a prefix = %q", tc.line, got)
		}
	}
}

func TestParseSetCookieRejects(t *testing.T) {
	for _, line := range []string{
		"", "ab", "ab; Path=/", "a;b=c", "; a=b", "=b", " =b; Path=/", "\t=b", ";", "=",
	} {
		if sc, ok := parseSetCookie(line); ok {
			t.Errorf("parseSetCookie(%q) = %+v, want ok false", line, sc)
		}
	}
}

// deletion: whether the line removes the cookie, read as RFC 6265 §5.2 reads Max-Age and
// Expires.
func TestLifetimeDeletion(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	past := now.Add(-time.Hour).Format(http.TimeFormat)
	future := now.Add(time.Hour).Format(http.TimeFormat)
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"a=", true},
		{"a=; Path=/", true},
		{"a= \t; Max-Age=100", true},
		{`a=""`, true},
		{`a=""; Max-Age=100`, true},
		{`a="x"`, false},
		{"a=b", false},
		{"a=b; Path=/", false},
		{"a=Max-Age=0", false}, // the value is not an attribute
		{"a=b; Max-Age=0", true},
		{"a=b; Max-Age=-1", true},
		{"a=b; Max-Age=-0", true},
		{"a=b; Max-Age=000", true},
		{"a=b; Max-Age=5", false},
		{"a=b; Max-Age=abc", false},
		{"a=b; Max-Age=", false},
		{"a=b; Max-Age", false},
		{"a=b; Max-Age=0x0", false},
		{"a=b; Max-Age=0.5", false},
		{"a=b; Max-Age=--1", false},
		// RFC 6265 §5.2.2: a leading '+' makes Max-Age invalid (strconv would read 0).
		{"a=b; Max-Age=+0", false},
		{"a=b; Max-Age=+0; Expires=" + past, true},
		// Max-Age of any size is valid: beyond int64 it is still "later", or "already".
		{"a=b; Max-Age=99999999999999999999; Expires=" + past, false},
		{"a=b; Max-Age=-99999999999999999999", true},
		{"a=b; max-age=0", true},
		{"a=b; MAX-AGE=0", true},
		{"a=b;Max-Age=0", true},
		{"a=b;  Max-Age \t= 0 ", true},
		{"a=b; Max-Age=0; Max-Age=5", false}, // the last valid one counts
		{"a=b; Max-Age=5; Max-Age=0", true},
		{"a=b; Max-Age=0; Max-Age=abc", true}, // an invalid one is ignored
		{"a=b; Max-Age=abc; Expires=" + past, true},
		{"a=b; Expires=" + past, true},
		{"a=b; expires=" + past, true},
		{"a=b; EXPIRES=" + past + "; Path=/", true},
		{"a=b; Expires=" + future, false},
		{"a=b; Expires=" + now.Format(http.TimeFormat), true}, // expiring now is expired
		{"a=b; Expires=" + past + "; Expires=" + future, false},
		{"a=b; Expires=" + future + "; Expires=" + past, true},
		{"a=b; Expires=" + past + "; Expires=garbage", true},
		{"a=b; Expires=garbage", false},
		{"a=b; Expires=", false},
		{"a=b; Max-Age=10; Expires=" + past, false}, // Max-Age wins both ways
		{"a=b; Expires=" + past + "; Max-Age=10", false},
		{"a=b; Max-Age=0; Expires=" + future, true},
		{"a=b; Expires=" + future + "; Max-Age=0", true},
		{"a=b; Expires=Wednesday, 21-Oct-15 07:28:00 GMT", true}, // RFC 850
		{"a=b; Expires=Wed Oct 21 07:28:00 2015", true},          // ANSI C
		{"a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT", true},
		// RFC 6265 §5.1.1: two-digit 69 is 2069 (Go says 1969), and years before 1601 are
		// not dates, so a browser keeps these cookies.
		{"a=b; Expires=Tuesday, 01-Jan-69 00:00:00 GMT", false},
		{"a=b; Expires=Wednesday, 31-Dec-69 23:59:59 GMT", false},
		{"a=b; Expires=Wed, 31 Dec 1969 23:59:59 GMT", true},
		{"a=b; Expires=Sat, 01 Jan 1000 00:00:00 GMT", false},
		{"a=b; Expires=Mon, 01 Jan 1601 00:00:00 GMT", true},
	} {
		sc, ok := parseSetCookie(tc.line)
		if !ok {
			t.Fatalf("parseSetCookie(%q) failed", tc.line)
		}
		deletion, expiry, expires := sc.lifetime(now.Unix())
		if deletion != tc.want {
			t.Errorf("lifetime(%q): deletion %v, want %v", tc.line, deletion, tc.want)
		}
		if deletion && (expiry != 0 || expires) {
			t.Errorf("lifetime(%q): a deletion with expiry %d, %v", tc.line, expiry, expires)
		}
	}
}

// What net/http (a common upstream and client) makes of the same lines agrees with
// lifetime wherever it follows RFC 6265.
func TestLifetimeMatchesNetHTTP(t *testing.T) {
	now := time.Now()
	for _, line := range []string{
		"a=b; Max-Age=0", "a=b; Max-Age=-5", "a=b; Max-Age=5", "a=b; max-age=0",
		"a=b; Expires=" + now.Add(-time.Hour).UTC().Format(http.TimeFormat),
		"a=b; Expires=" + now.Add(time.Hour).UTC().Format(http.TimeFormat),
		"a=b; Max-Age=5; Expires=" + now.Add(-time.Hour).UTC().Format(http.TimeFormat),
	} {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatal(err)
		}
		goDeletes := c.MaxAge < 0 || c.MaxAge == 0 && !c.Expires.IsZero() && !c.Expires.After(now)
		sc, _ := parseSetCookie(line)
		if got, _, _ := sc.lifetime(now.Unix()); got != goDeletes {
			t.Errorf("%q: deletion %v, net/http %v", line, got, goDeletes)
		}
	}
}

// lifetime: when a cookie the browser keeps expires. Max-Age wins over Expires, the last
// valid one of each counts, invalid ones are ignored, and a cookie with neither is a session
// cookie (expires false).
func TestLifetimeExpiry(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	n := now.Unix()
	date := func(d time.Duration) string { return now.Add(d).Format(http.TimeFormat) }
	for _, tc := range []struct {
		line    string
		expiry  int64
		expires bool
	}{
		{"a=b", 0, false},
		{"a=b; Path=/; HttpOnly", 0, false},
		{"a=b; Max-Age=abc", 0, false},
		{"a=b; Max-Age=+5", 0, false}, // invalid (RFC 6265 §5.2.2), so ignored
		{"a=b; Expires=garbage", 0, false},
		{"a=b; Max-Age=100", n + 100, true},
		{"a=b; max-age = 100 ", n + 100, true},
		{"a=b; Max-Age=007", n + 7, true},
		{"a=b; Max-Age=100; Max-Age=200", n + 200, true},                // the last valid one counts
		{"a=b; Max-Age=200; Max-Age=abc", n + 200, true},                // an invalid one is ignored
		{"a=b; Max-Age=abc; Max-Age=200", n + 200, true},                // wherever it stands
		{"a=b; Max-Age=100; Expires=" + date(time.Hour), n + 100, true}, // Max-Age wins both ways
		{"a=b; Expires=" + date(time.Hour) + "; Max-Age=100", n + 100, true},
		{"a=b; Max-Age=100; Expires=" + date(-time.Hour), n + 100, true},
		{"a=b; Expires=" + date(time.Hour), n + 3600, true},
		{"a=b; Expires=" + date(time.Hour) + "; Expires=" + date(2*time.Hour), n + 7200, true},
		{"a=b; Expires=" + date(2*time.Hour) + "; Expires=" + date(time.Hour), n + 3600, true},
		{"a=b; Expires=" + date(time.Hour) + "; Expires=garbage", n + 3600, true},
		{"a=b; Expires=" + date(time.Second), n + 1, true},
		// Two-digit 69 is 2069 to a browser, not 1969.
		{"a=b; Expires=Tuesday, 01-Jan-69 00:00:00 GMT", time.Date(2069, 1, 1, 0, 0, 0, 0, time.UTC).Unix(), true},
		// Huge Max-Age values are capped, so that now plus one cannot overflow.
		{"a=b; Max-Age=1099511627776", n + maxLifetime, true},
		{"a=b; Max-Age=1099511627777", n + maxLifetime, true},
		{"a=b; Max-Age=99999999999999999999", n + maxLifetime, true},
		{"a=b; Max-Age=" + strings.Repeat("9", 400), n + maxLifetime, true},
	} {
		sc, ok := parseSetCookie(tc.line)
		if !ok {
			t.Fatalf("parseSetCookie(%q) failed", tc.line)
		}
		deletion, expiry, expires := sc.lifetime(n)
		if deletion || expiry != tc.expiry || expires != tc.expires {
			t.Errorf("lifetime(%q) = %v, %d, %v; want false, %d, %v", tc.line, deletion, expiry, expires, tc.expiry, tc.expires)
		}
	}
	// The cap holds for any clock a server may have.
	sc, _ := parseSetCookie("a=b; Max-Age=99999999999999999999")
	if _, expiry, _ := sc.lifetime(1 << 62); expiry != 1<<62+maxLifetime || expiry < 0 {
		t.Errorf("capped expiry overflowed: %d", expiry)
	}
}

func FuzzSplice(f *testing.F) {
	for _, s := range []string{
		"a=b", "a=b; Priority=High", "a = b ;Path=/", "a\t=\tb\t;\tPath=/", `a="x y"; Path=/`,
		"a=b=c; Path=/", "a=; Path=/", "a=", "ab", "=b", "; a=b", " a = ; x",
		"__Host-sid=abc; Secure; Path=/; SameSite=Lax; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
		"a=b; Max-Age=0", "a=b; Max-Age=+0; Expires=Tuesday, 01-Jan-69 00:00:00 GMT",
		"a=b; Max-Age=99999999999999999999; Expires=Wed, 21 Oct 2035 07:28:00 GMT",
	} {
		f.Add(s, []byte("value"))
	}
	f.Add("a=b", []byte{})
	f.Add("a=\xff\x00; \xfe", []byte{0, 1, 2, 0xff})
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC).Unix()
	f.Fuzz(func(t *testing.T, line string, raw []byte) {
		sc, ok := parseSetCookie(line)
		first, _, _ := strings.Cut(line, ";")
		if !ok {
			if name, _, found := strings.Cut(first, "="); found && trimWS(name) != "" {
				t.Fatalf("parseSetCookie(%q) failed on a named pair", line)
			}
			return
		}
		deletion, expiry, expires := sc.lifetime(now)
		if deletion && (expiry != 0 || expires) || !expires && expiry != 0 || expires && (expiry <= now || expiry > now+maxLifetime) {
			t.Fatalf("lifetime(%q) = %v, %d, %v", line, deletion, expiry, expires)
		}
		if sc.line != line || sc.valueStart < 0 || sc.valueStart > sc.valueEnd || sc.valueEnd > len(line) ||
			sc.valueEnd > len(first) || line[sc.valueStart:sc.valueEnd] != sc.value {
			t.Fatalf("parseSetCookie(%q) = %+v: bad bounds", line, sc)
		}
		name, _, _ := strings.Cut(first, "=")
		if sc.name != trimWS(name) || sc.name == "" || sc.value != trimWS(sc.value) {
			t.Fatalf("parseSetCookie(%q) = %+v: name or value not the trimmed first pair", line, sc)
		}
		if trimWS(line[len(name)+1:sc.valueStart]) != "" || trimWS(first[sc.valueEnd:]) != "" {
			t.Fatalf("parseSetCookie(%q) = %+v: value does not span the pair", line, sc)
		}

		x := base64.URLEncoding.EncodeToString(raw)
		spliced := string(sc.appendSplice(nil, []byte(x)))
		if spliced != line[:sc.valueStart]+x+line[sc.valueEnd:] {
			t.Fatalf("appendSplice(%q) = %q", line, spliced)
		}
		if !strings.HasPrefix(spliced, line[:sc.valueStart]) || !strings.HasSuffix(spliced, line[sc.valueEnd:]) {
			t.Fatalf("appendSplice(%q) changed attribute bytes: %q", line, spliced)
		}
		if got := string(sc.appendSplice([]byte("pre"), []byte(x))); got != "pre"+spliced {
			t.Fatalf("appendSplice(%q) after a prefix = %q, want %q", line, got, "pre"+spliced)
		}
		re, ok := parseSetCookie(spliced)
		if !ok || re.name != sc.name || re.value != x {
			t.Fatalf("re-parsing %q: %+v, %v; want name %q value %q", spliced, re, ok, sc.name, x)
		}
		if x != "" && re.valueStart != sc.valueStart {
			t.Fatalf("re-parsing %q: value moved from %d to %d", spliced, sc.valueStart, re.valueStart)
		}
		// The lifetime depends only on the attributes, once the value is not empty.
		if x != "" && sc.value != "" && sc.value != `""` {
			d2, e2, x2 := re.lifetime(now)
			if d2 != deletion || e2 != expiry || x2 != expires {
				t.Fatalf("lifetime changed by splicing %q into %q: %v, %d, %v became %v, %d, %v",
					x, line, deletion, expiry, expires, d2, e2, x2)
			}
		}
	})
}
