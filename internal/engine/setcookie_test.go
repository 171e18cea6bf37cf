package cookie

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
		sc, ok := ParseSetCookie(tc.line)
		if !ok || sc.Name != tc.name || sc.Value != tc.value || sc.Line != tc.line {
			t.Errorf("ParseSetCookie(%q) = %q, %q, %v; want %q, %q", tc.line, sc.Name, sc.Value, ok, tc.name, tc.value)
			continue
		}
		if sc.Line[sc.ValueStart:sc.ValueEnd] != sc.Value {
			t.Errorf("%q: ValueStart/ValueEnd do not locate the value", tc.line)
		}
		if got := sc.Splice("NEW"); got != tc.spliced {
			t.Errorf("Splice(%q) = %q, want %q", tc.line, got, tc.spliced)
		}
		if got := string(sc.AppendSplice([]byte("Set-Cookie: "), []byte("NEW"))); got != "Set-Cookie: "+tc.spliced {
			t.Errorf("AppendSplice(%q) = %q", tc.line, got)
		}
	}
}

func TestParseSetCookieRejects(t *testing.T) {
	for _, line := range []string{
		"", "ab", "ab; Path=/", "a;b=c", "; a=b", "=b", " =b; Path=/", "\t=b", ";", "=",
	} {
		if sc, ok := ParseSetCookie(line); ok {
			t.Errorf("ParseSetCookie(%q) = %+v, want ok false", line, sc)
		}
	}
}

func TestIsDeletion(t *testing.T) {
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
		sc, ok := ParseSetCookie(tc.line)
		if !ok {
			t.Fatalf("ParseSetCookie(%q) failed", tc.line)
		}
		if got := sc.IsDeletion(now); got != tc.want {
			t.Errorf("IsDeletion(%q) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

// What net/http (a common upstream and client) makes of the same lines agrees with
// IsDeletion wherever it follows RFC 6265.
func TestIsDeletionMatchesNetHTTP(t *testing.T) {
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
		sc, _ := ParseSetCookie(line)
		if got := sc.IsDeletion(now); got != goDeletes {
			t.Errorf("%q: IsDeletion %v, net/http %v", line, got, goDeletes)
		}
	}
}

func FuzzSplice(f *testing.F) {
	for _, s := range []string{
		"a=b", "a=b; Priority=High", "a = b ;Path=/", "a\t=\tb\t;\tPath=/", `a="x y"; Path=/`,
		"a=b=c; Path=/", "a=; Path=/", "a=", "ab", "=b", "; a=b", " a = ; x",
		"__Host-sid=abc; Secure; Path=/; SameSite=Lax; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
		"a=b; Max-Age=0", "a=b; Max-Age=+0; Expires=Tuesday, 01-Jan-69 00:00:00 GMT",
	} {
		f.Add(s, []byte("value"))
	}
	f.Add("a=b", []byte{})
	f.Add("a=\xff\x00; \xfe", []byte{0, 1, 2, 0xff})
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, line string, raw []byte) {
		sc, ok := ParseSetCookie(line)
		deletion := false
		if ok {
			deletion = sc.IsDeletion(now)
		}
		first, _, _ := strings.Cut(line, ";")
		if !ok {
			if name, _, found := strings.Cut(first, "="); found && trimWS(name) != "" {
				t.Fatalf("ParseSetCookie(%q) failed on a named pair", line)
			}
			return
		}
		if sc.Line != line || sc.ValueStart < 0 || sc.ValueStart > sc.ValueEnd || sc.ValueEnd > len(line) ||
			sc.ValueEnd > len(first) || line[sc.ValueStart:sc.ValueEnd] != sc.Value {
			t.Fatalf("ParseSetCookie(%q) = %+v: bad bounds", line, sc)
		}
		name, _, _ := strings.Cut(first, "=")
		if sc.Name != trimWS(name) || sc.Name == "" || sc.Value != trimWS(sc.Value) {
			t.Fatalf("ParseSetCookie(%q) = %+v: name or value not the trimmed first pair", line, sc)
		}
		if trimWS(line[len(name)+1:sc.ValueStart]) != "" || trimWS(first[sc.ValueEnd:]) != "" {
			t.Fatalf("ParseSetCookie(%q) = %+v: value does not span the pair", line, sc)
		}

		x := base64.URLEncoding.EncodeToString(raw)
		spliced := sc.Splice(x)
		if spliced != line[:sc.ValueStart]+x+line[sc.ValueEnd:] {
			t.Fatalf("Splice(%q) = %q", line, spliced)
		}
		if !strings.HasPrefix(spliced, line[:sc.ValueStart]) || !strings.HasSuffix(spliced, line[sc.ValueEnd:]) {
			t.Fatalf("Splice(%q) changed attribute bytes: %q", line, spliced)
		}
		if got := string(sc.AppendSplice([]byte("pre"), []byte(x))); got != "pre"+spliced {
			t.Fatalf("AppendSplice(%q) = %q, want %q", line, got, "pre"+spliced)
		}
		re, ok := ParseSetCookie(spliced)
		if !ok || re.Name != sc.Name || re.Value != x {
			t.Fatalf("re-parsing %q: %+v, %v; want name %q value %q", spliced, re, ok, sc.Name, x)
		}
		if x != "" && re.ValueStart != sc.ValueStart {
			t.Fatalf("re-parsing %q: value moved from %d to %d", spliced, sc.ValueStart, re.ValueStart)
		}
		// Deletion depends only on the attributes, once the value is not empty.
		if x != "" && sc.Value != "" && sc.Value != `""` && re.IsDeletion(now) != deletion {
			t.Fatalf("IsDeletion changed by splicing %q into %q", x, line)
		}
	})
}
