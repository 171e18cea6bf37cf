package cookie

import (
	"bytes"
	"errors"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testJar manages "session" (signed), "enc" (encrypted), "sess_*" (signed glob), and "vid"
// and "csrf" (verified, stripped: the module's rule for the visitor cookie).
type testJar struct {
	*Jar
	sign, encr *Codec
}

func newTestJar(tb testing.TB) testJar {
	tb.Helper()
	ring := testRing(tb, "jar")
	tj := testJar{
		sign: NewCodec(ring, Options{MaxAge: time.Hour, Now: at(t0)}),
		encr: NewCodec(ring, Options{Encrypt: true, MaxAge: time.Hour, Now: at(t0)}),
	}
	var err error
	tj.Jar, err = NewJar(
		Rule{Pattern: "session", Codec: tj.sign},
		Rule{Pattern: "enc", Codec: tj.encr},
		Rule{Pattern: "sess_*", Codec: tj.sign},
		Rule{Pattern: "vid", Codec: tj.sign, Strip: true},
		Rule{Pattern: "csrf", Codec: tj.sign, Strip: true},
	)
	if err != nil {
		tb.Fatal(err)
	}
	return tj
}

// signed encodes plain for name with the codec of the rule managing name.
func (tj testJar) signed(tb testing.TB, name, plain string) string {
	tb.Helper()
	i := tj.Match(name)
	if i < 0 {
		tb.Fatalf("%q is not managed", name)
	}
	v, err := tj.Rule(i).Codec.Encode(name, []byte(plain))
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func droppedString(ds []Dropped) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Name+":"+d.Reason+":"+strconv.Itoa(d.Rule))
	}
	return strings.Join(s, ",")
}

func TestRebuild(t *testing.T) {
	tj := newTestJar(t)
	sv := tj.signed(t, "session", "alice")
	sv2 := tj.signed(t, "session", "bob")
	ev := tj.signed(t, "enc", "secret plain")
	gv := tj.signed(t, "sess_x", "glob")
	cv := tj.signed(t, "csrf", "token")
	tampered := sv[:20] + string(sv[20]^1) + sv[21:]
	other := tj.signed(t, "sess_other", "alice") // valid, but for another name
	expired, _ := NewCodec(tj.sign.KeyRing(), Options{Now: at(t0 - 3601)}).Encode("session", []byte("old"))

	for _, tc := range []struct {
		desc    string
		lines   []string
		header  string
		dropped string // name:reason:rule,...
		found   []string
		changed bool
	}{
		{"unmanaged verbatim", []string{`a=1; b=2; q="x y"; x=a=b; u=ü; e=; t=a` + "\t" + `b`}, `a=1; b=2; q="x y"; x=a=b; u=ü; e=; t=a` + "\t" + `b`, "", nil, false},
		{"no cookies", []string{""}, "", "", nil, false},
		{"spacing normalized", []string{"a=1;b=2"}, "a=1; b=2", "", nil, true},
		{"empty pairs skipped", []string{" a=1;  ; b=2 ;"}, "a=1; b=2", "", nil, true},
		{"signed decoded", []string{"a=1; session=" + sv + "; b=2"}, "a=1; session=alice; b=2", "", []string{"session=alice"}, true},
		{"encrypted decoded", []string{"enc=" + ev}, "enc=secret plain", "", []string{"enc=secret plain"}, true},
		{"glob decoded", []string{"sess_x=" + gv}, "sess_x=glob", "", []string{"sess_x=glob"}, true},
		{"strip", []string{"a=1; csrf=" + cv}, "a=1", "", []string{"csrf=token"}, true},
		{"tampered", []string{"a=1; session=" + tampered}, "a=1", "session:bad_mac:0", nil, true},
		{"renamed", []string{"sess_x=" + other}, "", "sess_x:bad_mac:2", nil, true},
		{"signed as another cookie", []string{"session=" + gv}, "", "session:bad_mac:0", nil, true},
		{"expired", []string{"session=" + expired}, "", "session:expired:0", nil, true},
		{"malformed", []string{"session=a.b.c"}, "", "session:malformed:0", nil, true},
		{"quoted", []string{`session="` + sv + `"`}, "", "session:malformed:0", nil, true},
		{"too long", []string{"session=" + strings.Repeat("A", 4097)}, "", "session:too_long:0", nil, true},
		{"empty managed value: absent, not a forgery", []string{"session=; a=1; session=\"\""}, "a=1", "session:empty:0,session:empty:0", nil, true},
		{
			"duplicates: first valid wins",
			[]string{"session=" + tampered + "; session=" + sv + "; a=1; session=" + sv2 + "; session=junk"},
			"session=alice; a=1",
			"session:bad_mac:0,session:duplicate:0,session:duplicate:0",
			[]string{"session=alice"}, true,
		},
		{
			"duplicates across lines",
			[]string{"session=" + sv2, "session=" + sv},
			"session=bob", "session:duplicate:0", []string{"session=bob"}, true,
		},
		{
			"glob duplicates are per name",
			[]string{"sess_x=" + gv + "; sess_other=" + other + "; sess_x=" + gv},
			"sess_x=glob; sess_other=alice", "sess_x:duplicate:2", []string{"sess_x=glob", "sess_other=alice"}, true,
		},
		{
			"look-alikes",
			[]string{"SESSION=x; Session=x; sess%69on=x; %73ession=x; %20session=x; \u00a0session=x; session\u00a0=x; session =x; sESSION=x; a=1"},
			"a=1",
			"SESSION:lookalike:-1,Session:lookalike:-1,sess%69on:lookalike:-1,%73ession:lookalike:-1,%20session:lookalike:-1," +
				"\u00a0session:lookalike:-1,session\u00a0:lookalike:-1,session :lookalike:-1,sESSION:lookalike:-1",
			nil, true,
		},
		{
			"glob look-alikes",
			[]string{"SESS_x=1; Sess_y=1; sess.x=1; sess x=1; sess[x=1; sess%5Fx=1; SESS%5fX=1; sess_x=" + gv},
			"sess_x=glob",
			"SESS_x:lookalike:-1,Sess_y:lookalike:-1,sess.x:lookalike:-1,sess x:lookalike:-1,sess[x:lookalike:-1," +
				"sess%5Fx:lookalike:-1,SESS%5fX:lookalike:-1",
			[]string{"sess_x=glob"}, true,
		},
		{
			"not look-alikes",
			[]string{"sessionx=1; xsession=1; session2=1; sess=1; sessx=1; enc2=1; ENCx=1; v_id=1"},
			"sessionx=1; xsession=1; session2=1; sess=1; sessx=1; enc2=1; ENCx=1; v_id=1",
			"", nil, false,
		},
		{
			"unparsable",
			[]string{"noequals; =v; a\x01b=c; d=e\x7f; f\x00=1; ok=1"},
			"ok=1",
			":unparsable:-1,:unparsable:-1,a\x01b:unparsable:-1,d:unparsable:-1,f\x00:unparsable:-1",
			nil, true,
		},
		{"lines joined", []string{"a=1", "b=2; session=" + sv}, "a=1; b=2; session=alice", "", []string{"session=alice"}, true},
		{"unmanaged lines joined", []string{"a=1", "b=2"}, "a=1; b=2", "", nil, true},
		{"empty line among others", []string{"a=1", "", "b=2"}, "a=1; b=2", "", nil, true},
	} {
		var res Result
		if err := tj.Rebuild(&res, tc.lines); err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		if string(res.Header) != tc.header {
			t.Errorf("%s: header %q, want %q", tc.desc, res.Header, tc.header)
		}
		if got := droppedString(res.Dropped); got != tc.dropped {
			t.Errorf("%s: dropped %q, want %q", tc.desc, got, tc.dropped)
		}
		var found []string
		for _, f := range res.Found {
			found = append(found, f.Name+"="+string(f.Value))
			if f.Rule != tj.Match(f.Name) || f.Signed != t0 || f.Key != 0 {
				t.Errorf("%s: found %+v", tc.desc, f)
			}
		}
		if !slices.Equal(found, tc.found) {
			t.Errorf("%s: found %q, want %q", tc.desc, found, tc.found)
		}
		if res.Changed != tc.changed {
			t.Errorf("%s: Changed %v, want %v", tc.desc, res.Changed, tc.changed)
		}
	}
}

func TestRebuildPairCount(t *testing.T) {
	tj := newTestJar(t)
	var res Result
	if err := tj.Rebuild(&res, []string{"a=1; b; ;c=3", "d=4"}); err != nil {
		t.Fatal(err)
	}
	if res.Pairs != 4 {
		t.Errorf("Pairs = %d, want 4", res.Pairs)
	}
}

func TestRebuildTooManyPairs(t *testing.T) {
	tj := newTestJar(t)
	sv := tj.signed(t, "session", "alice")
	pairs := make([]string, MaxPairs)
	for i := range pairs {
		pairs[i] = "c" + strconv.Itoa(i) + "=v"
	}
	pairs[0] = "session=" + sv
	pairs[1] = "SESSION=x"
	var res Result
	if err := tj.Rebuild(&res, []string{strings.Join(pairs, "; ")}); err != nil || res.Pairs != MaxPairs {
		t.Fatalf("%d pairs: %v, %d", MaxPairs, err, res.Pairs)
	}
	for _, lines := range [][]string{
		{strings.Join(pairs, "; ") + "; one=more"},
		{strings.Join(pairs[:1000], "; "), strings.Join(pairs[1000:], "; "), "x=1"},
	} {
		err := tj.Rebuild(&res, lines)
		if !errors.Is(err, ErrTooManyPairs) {
			t.Errorf("%d lines, more than MaxPairs: %v", len(lines), err)
		}
		if len(res.Header) != 0 || len(res.Found) != 0 || len(res.Dropped) != 0 || res.Pairs != 0 || res.Changed {
			t.Errorf("result after ErrTooManyPairs is not empty: %d-byte header, %d found, %d dropped, %d pairs",
				len(res.Header), len(res.Found), len(res.Dropped), res.Pairs)
		}
		if _, ok := res.Lookup(0); ok {
			t.Error("Lookup finds a cookie after ErrTooManyPairs")
		}
	}
}

func TestResultReuse(t *testing.T) {
	tj := newTestJar(t)
	sv := tj.signed(t, "session", "alice")
	ev := tj.signed(t, "enc", "e")
	var res Result
	if err := tj.Rebuild(&res, []string{"session=" + sv + "; enc=" + ev + "; SESSION=1; x=1"}); err != nil {
		t.Fatal(err)
	}
	if len(res.Found) != 2 || len(res.Dropped) != 1 {
		t.Fatalf("first rebuild: %+v", res)
	}
	if err := tj.Rebuild(&res, []string{"y=2"}); err != nil {
		t.Fatal(err)
	}
	if string(res.Header) != "y=2" || len(res.Found) != 0 || len(res.Dropped) != 0 || res.Pairs != 1 || res.Changed {
		t.Errorf("second rebuild kept state: %+v", res)
	}
	if _, ok := res.Lookup(0); ok {
		t.Error("Lookup finds a cookie of the previous rebuild")
	}
	if err := tj.Rebuild(&res, []string{"enc=" + ev + "; session=" + sv}); err != nil {
		t.Fatal(err)
	}
	f, ok := res.Lookup(0)
	if !ok || f.Name != "session" || string(f.Value) != "alice" {
		t.Errorf("Lookup(0) = %+v, %v", f, ok)
	}
	f, ok = res.Lookup(1)
	if !ok || string(f.Value) != "e" {
		t.Errorf("Lookup(1) = %+v, %v", f, ok)
	}
	if _, ok := res.Lookup(2); ok {
		t.Error("Lookup(2) found a cookie that is not there")
	}
	res.Reset()
	if len(res.Header) != 0 || len(res.Found) != 0 || res.Pairs != 0 {
		t.Errorf("Reset left %+v", res)
	}
}

// Found values stay intact while later cookies are decoded into the same buffer.
func TestRebuildFoundValuesStable(t *testing.T) {
	tj := newTestJar(t)
	var parts []string
	for i := 0; i < 40; i++ {
		name := "sess_" + strconv.Itoa(i)
		parts = append(parts, name+"="+tj.signed(t, name, strings.Repeat(strconv.Itoa(i%10), 50+i)))
	}
	var res Result
	if err := tj.Rebuild(&res, []string{strings.Join(parts, "; ")}); err != nil {
		t.Fatal(err)
	}
	if len(res.Found) != 40 {
		t.Fatalf("found %d", len(res.Found))
	}
	for i, f := range res.Found {
		if want := strings.Repeat(strconv.Itoa(i%10), 50+i); string(f.Value) != want {
			t.Errorf("%s = %q, want %q", f.Name, f.Value, want)
		}
	}
}

func TestAppendPair(t *testing.T) {
	tj := newTestJar(t)
	var res Result
	if err := tj.Rebuild(&res, []string{"a=1"}); err != nil {
		t.Fatal(err)
	}
	if res.Changed {
		t.Fatal("changed before AppendPair")
	}
	res.AppendPair("vid", []byte("00010203-0405-4607-8809-0a0b0c0d0e0f"))
	if string(res.Header) != "a=1; vid=00010203-0405-4607-8809-0a0b0c0d0e0f" || !res.Changed {
		t.Errorf("AppendPair: %q, changed %v", res.Header, res.Changed)
	}
	res.Reset()
	res.AppendPair("vid", []byte("x"))
	if string(res.Header) != "vid=x" {
		t.Errorf("AppendPair on an empty header: %q", res.Header)
	}
}

func TestLookalikeRules(t *testing.T) {
	c := NewCodec(testRing(t, "k"), Options{})
	for _, tc := range []struct {
		pattern   string
		managed   []string
		lookalike []string
		unrelated []string
	}{
		{"session_", []string{"session_"}, []string{"session.", "session ", " session ", "session%20", "session[", "SESSION_", "session%5F", "session%2e", "%53ession_", "\u00a0session_", "session_\t", "\x7fsession_"}, []string{"session", "session__", "session-", "session_x"}},
		{"session.", []string{"session."}, []string{"session_", "session[", "Session.", "session%2E"}, []string{"session", "session-"}},
		{"PHPSESSID", []string{"PHPSESSID"}, []string{"phpsessid", "PhpSessId", "PHPSESSID%20", "%50HPSESSID"}, []string{"PHPSESSID2"}},
		{"sess_*", []string{"sess_", "sess_x", "sess_A.b"}, []string{"SESS_x", "sess.x", "sess x", "sess[x", "Sess_", "sess%5Fa"}, []string{"sess", "sessx", "xsess_a", "sess-x"}},
		{"*_token", []string{"a_token", "_token"}, []string{"A_TOKEN", "a.token", "a_Token"}, []string{"token", "a_tokens"}},
		{"tok_[0-9]", []string{"tok_1"}, []string{"TOK_1", "tok.1", "Tok_9", "tok_%31"}, []string{"tok_a", "tok_10", "tok_"}},
		{"[Aa]uth", []string{"Auth", "auth"}, []string{"AUTH", "aUTH", "%41uth"}, []string{"uth", "Bauth"}},
		{"id_[^a-z]", []string{"id_A", "id_1"}, []string{"ID_A", "id.A", "id_a"}, []string{"id_", "id_AB"}},
		{"x[.]y", []string{"x.y"}, []string{"x_y", "X.Y", "x[y", "x y"}, []string{"xy", "x-y"}},
		{`a\*b`, []string{"a*b"}, []string{"A*B", "a%2Ab"}, []string{"axb", "ab"}},
		{"x_[é-ü]?", []string{"x_éx", "x_üX"}, []string{"x.éx", "X[ü?", "%78_éx"}, []string{"x_ax", "x_é"}},
		{"ü_*", []string{"ü_x", "ü_X"}, []string{"ü.x", "Ü_x", "\u00a0ü_x"}, []string{"ü-x", "x_ü"}},
	} {
		j, err := NewJar(Rule{Pattern: tc.pattern, Codec: c})
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		for _, n := range tc.managed {
			if j.Match(n) != 0 || j.IsLookalike(n) {
				t.Errorf("%q: %q is not managed", tc.pattern, n)
			}
		}
		for _, n := range tc.lookalike {
			if j.Match(n) >= 0 || !j.IsLookalike(n) {
				t.Errorf("%q: %q is not a look-alike", tc.pattern, n)
			}
		}
		for _, n := range tc.unrelated {
			if j.Match(n) >= 0 || j.IsLookalike(n) {
				t.Errorf("%q: %q is managed or a look-alike", tc.pattern, n)
			}
		}
	}
}

func TestJarMatchOrder(t *testing.T) {
	a := NewCodec(testRing(t, "a"), Options{})
	b := NewCodec(testRing(t, "b"), Options{})
	j, err := NewJar(Rule{Pattern: "sess_admin", Codec: a}, Rule{Pattern: "sess_*", Codec: b})
	if err != nil {
		t.Fatal(err)
	}
	if j.Match("sess_admin") != 0 || j.Match("sess_user") != 1 || j.Match("other") != -1 {
		t.Error("the first matching rule does not win")
	}
	if j.Rule(1).Codec != b || j.Rule(0).Pattern != "sess_admin" {
		t.Error("Rule returns the wrong rule")
	}
}

func TestNewJarErrors(t *testing.T) {
	c := NewCodec(testRing(t, "k"), Options{})
	for _, tc := range []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{Pattern: "a", Codec: c}, {Pattern: "", Codec: c}}, "rule 2: empty cookie name"},
		{[]Rule{{Pattern: "sess_[", Codec: c}}, "rule 1: bad pattern"},
		{[]Rule{{Pattern: `a\`, Codec: c}}, "rule 1: bad pattern"},
		{[]Rule{{Pattern: "a", Codec: c}, {Pattern: "b"}}, "rule 2: no codec"},
	} {
		_, err := NewJar(tc.rules...)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("NewJar: %v, want %q", err, tc.want)
		}
	}
	if j, err := NewJar(); err != nil || j.Match("a") != -1 || j.IsLookalike("a") {
		t.Errorf("empty jar: %v", err)
	}
}

// The canonical form of every name a glob manages matches the canonical glob: a name that
// reads like a managed one can never slip past IsLookalike. (Names with '%' are left out:
// decoding changes their length under '?', and such names are not cookie names in practice.)
func FuzzCanonicalGlob(f *testing.F) {
	for _, s := range [][2]string{
		{"sess_*", "sess_A"}, {"tok_[0-9]", "tok_1"}, {"[^a-c]x", "Dx"}, {`a\*b`, "a*b"},
		{"x[.]y", "x.y"}, {"é[é-ü]?", "éüZ"}, {"[^\x00-\u00ff]", "ā"}, {"[b-a]", "a"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, pattern, name string) {
		if _, err := path.Match(pattern, ""); err != nil || !strings.ContainsAny(pattern, `*?[\`) {
			return
		}
		cg := canonicalGlob(pattern)
		if _, err := path.Match(cg, ""); err != nil {
			t.Fatalf("canonicalGlob(%q) = %q: %v", pattern, cg, err)
		}
		if name == "" || strings.Contains(name, "%") || isOdd(name[0]) || isOdd(name[len(name)-1]) {
			return
		}
		if ok, _ := path.Match(pattern, name); !ok {
			return
		}
		canon := string(appendCanonical(nil, name, true))
		if ok, _ := path.Match(cg, canon); !ok {
			t.Fatalf("%q matches %q, but its canonical form %q does not match %q", name, pattern, canon, cg)
		}
	})
}

// FuzzRebuild checks, for any Cookie header, that a managed cookie reaches the upstream only
// with a value the test signed, once, and that no look-alike or unparsable pair does.
func FuzzRebuild(f *testing.F) {
	tj := newTestJar(f)
	// plain[name] holds the values signed for name, as the upstream sees them.
	plain := map[string]map[string]bool{}
	sign := func(name, value string) string {
		v := tj.signed(f, name, value)
		if plain[name] == nil {
			plain[name] = map[string]bool{}
		}
		plain[name][value] = true
		return v
	}
	s1, s2 := sign("session", "alice"), sign("session", "bob")
	e1 := sign("enc", "secret plain")
	g1, g2 := sign("sess_x", "gx"), sign("sess_y", "gy")
	v1 := sign("vid", "0123456789abcdef")
	c1 := sign("csrf", "token")
	f.Add("a=1; session=" + s1 + "; b=2")
	f.Add("session=" + s1[:30] + "; session=" + s2 + "; session=" + s1)
	f.Add("enc=" + e1 + "; ENC=" + e1 + "; enc =" + e1)
	f.Add("sess_x=" + g1 + "; sess_y=" + g2 + "; sess_x=" + g2 + "; sess_y=" + g1)
	f.Add("vid=" + v1 + ";csrf=" + c1 + ";x=y")
	f.Add("SESSION=" + s1 + "; sess%69on=" + s1 + "; %20session=" + s1 + "; \u00a0session=" + s1)
	f.Add("session=" + s1 + "\n; a\x00=1; =; ;;; noeq")
	f.Add(`q="a;b"; session="` + s1 + `"`)
	f.Fuzz(func(t *testing.T, header string) {
		var res Result
		// Something else in the buffers first: reuse must not leak into this rebuild.
		if err := tj.Rebuild(&res, []string{"pre=1; session=" + s2 + "; enc=" + e1}); err != nil {
			t.Fatal(err)
		}
		err := tj.Rebuild(&res, []string{header})
		inPairs := 0
		for _, p := range strings.Split(header, ";") {
			if trimWS(p) != "" {
				inPairs++
			}
		}
		if inPairs > MaxPairs {
			if !errors.Is(err, ErrTooManyPairs) || len(res.Header) != 0 {
				t.Fatalf("%d pairs: %v, %d-byte header", inPairs, err, len(res.Header))
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if res.Pairs != inPairs {
			t.Fatalf("Pairs = %d, want %d", res.Pairs, inPairs)
		}
		if !res.Changed && string(res.Header) != header {
			t.Fatalf("Changed is false, but %q became %q", header, res.Header)
		}
		out := 0
		seen := map[string]bool{}
		stripped := 0
		if len(res.Header) > 0 {
			for _, p := range strings.Split(string(res.Header), "; ") {
				out++
				name, value, ok := strings.Cut(p, "=")
				if !ok || name == "" || hasCTL(name) {
					t.Fatalf("unparsable pair %q forwarded", p)
				}
				if tj.IsLookalike(name) {
					t.Fatalf("look-alike %q forwarded", name)
				}
				if i := tj.Match(name); i >= 0 {
					if tj.Rule(i).Strip {
						t.Fatalf("stripped cookie %q forwarded", name)
					}
					if !plain[name][value] {
						t.Fatalf("managed %s=%q forwarded, but that value was never signed", name, value)
					}
					if seen[name] {
						t.Fatalf("managed %q forwarded twice", name)
					}
					seen[name] = true
				}
			}
		}
		for _, f := range res.Found {
			if !plain[f.Name][string(f.Value)] {
				t.Fatalf("found %s=%q, never signed", f.Name, f.Value)
			}
			if tj.Rule(f.Rule).Strip {
				stripped++
			}
		}
		if out > inPairs || out+stripped+len(res.Dropped) != inPairs {
			t.Fatalf("%d pairs in, %d forwarded + %d stripped + %d dropped", inPairs, out, stripped, len(res.Dropped))
		}
		var again Result
		if err := tj.Rebuild(&again, []string{header}); err != nil || !bytes.Equal(again.Header, res.Header) {
			t.Fatalf("a fresh Result gives %q, the reused one %q", again.Header, res.Header)
		}
	})
}
