package engine

import (
	"bytes"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestRebuild(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	sv2 := tp.signed(t, "session", "bob")
	ev := tp.signed(t, "enc", "secret plain")
	gv := tp.signed(t, "sess_x", "glob")
	vv := tp.signed(t, "vid", string(testVisitorID))
	tampered := sv[:20] + string(sv[20]^1) + sv[21:]
	other := tp.signed(t, "sess_other", "alice") // valid, but for another name
	expired, _ := cookie.NewCodec(tp.ring, cookie.Options{Now: at(t0 - 3601)}).Encode("session", []byte("old"))

	for _, tc := range []struct {
		desc    string
		lines   []string
		header  string
		dropped string // name:reason:rule pattern,...
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
		// The visitor cookie is verified, but the rebuild never forwards it: the policy
		// forwards the ID, as a UUID, once it knows it is well formed.
		{"visitor verified, not forwarded", []string{"a=1; vid=" + vv}, "a=1", "", []string{"vid=" + string(testVisitorID)}, true},
		{"tampered", []string{"a=1; session=" + tampered}, "a=1", "session:bad_mac:session", nil, true},
		{"renamed", []string{"sess_x=" + other}, "", "sess_x:bad_mac:sess_*", nil, true},
		{"signed as another cookie", []string{"session=" + gv}, "", "session:bad_mac:session", nil, true},
		{"visitor tampered", []string{"vid=" + vv[:20] + string(vv[20]^1) + vv[21:]}, "", "vid:bad_mac:vid", nil, true},
		{"expired", []string{"session=" + expired}, "", "session:expired:session", nil, true},
		{"malformed", []string{"session=a.b.c"}, "", "session:malformed:session", nil, true},
		{"quoted", []string{`session="` + sv + `"`}, "", "session:malformed:session", nil, true},
		{"too long", []string{"session=" + strings.Repeat("A", 4097)}, "", "session:too_long:session", nil, true},
		{"empty managed value: absent, not a forgery", []string{"session=; a=1; session=\"\""}, "a=1", "session:empty:session,session:empty:session", nil, true},
		{
			"duplicates: first valid wins",
			[]string{"session=" + tampered + "; session=" + sv + "; a=1; session=" + sv2 + "; session=junk"},
			"session=alice; a=1",
			"session:bad_mac:session,session:duplicate:session,session:duplicate:session",
			[]string{"session=alice"}, true,
		},
		{
			"duplicates across lines",
			[]string{"session=" + sv2, "session=" + sv},
			"session=bob", "session:duplicate:session", []string{"session=bob"}, true,
		},
		{
			"glob duplicates are per name",
			[]string{"sess_x=" + gv + "; sess_other=" + other + "; sess_x=" + gv},
			"sess_x=glob; sess_other=alice", "sess_x:duplicate:sess_*", []string{"sess_x=glob", "sess_other=alice"}, true,
		},
		{
			"look-alikes",
			[]string{"SESSION=x; Session=x; sess%69on=x; %73ession=x; %20session=x; \u00a0session=x; session\u00a0=x; session =x; sESSION=x; VID=x; a=1"},
			"a=1",
			"SESSION:lookalike:-,Session:lookalike:-,sess%69on:lookalike:-,%73ession:lookalike:-,%20session:lookalike:-," +
				"\u00a0session:lookalike:-,session\u00a0:lookalike:-,session :lookalike:-,sESSION:lookalike:-,VID:lookalike:-",
			nil, true,
		},
		{
			"glob look-alikes",
			[]string{"SESS_x=1; Sess_y=1; sess.x=1; sess x=1; sess[x=1; sess%5Fx=1; SESS%5fX=1; sess_x=" + gv},
			"sess_x=glob",
			"SESS_x:lookalike:-,Sess_y:lookalike:-,sess.x:lookalike:-,sess x:lookalike:-,sess[x:lookalike:-," +
				"sess%5Fx:lookalike:-,SESS%5fX:lookalike:-",
			[]string{"sess_x=glob"}, true,
		},
		{
			// csrf is not managed: its look-alikes are nobody's business.
			"not look-alikes",
			[]string{"sessionx=1; xsession=1; session2=1; sess=1; sessx=1; enc2=1; ENCx=1; v_id=1; csrf=1; CSRF=1"},
			"sessionx=1; xsession=1; session2=1; sess=1; sessx=1; enc2=1; ENCx=1; v_id=1; csrf=1; CSRF=1",
			"", nil, false,
		},
		{
			"unparsable",
			[]string{"noequals; =v; a\x01b=c; d=e\x7f; f\x00=1; ok=1"},
			"ok=1",
			":unparsable:-,:unparsable:-,a\x01b:unparsable:-,d:unparsable:-,f\x00:unparsable:-",
			nil, true,
		},
		{"lines joined", []string{"a=1", "b=2; session=" + sv}, "a=1; b=2; session=alice", "", []string{"session=alice"}, true},
		{"unmanaged lines joined", []string{"a=1", "b=2"}, "a=1; b=2", "", nil, true},
		{"empty line among others", []string{"a=1", "", "b=2"}, "a=1; b=2", "", nil, true},
	} {
		var res result
		if !tp.rebuild(&res, tc.lines, t0, nil, false) {
			t.Fatalf("%s: too many pairs", tc.desc)
		}
		if string(res.header) != tc.header {
			t.Errorf("%s: header %q, want %q", tc.desc, res.header, tc.header)
		}
		if got := tp.droppedString(res.dropped); got != tc.dropped {
			t.Errorf("%s: dropped %q, want %q", tc.desc, got, tc.dropped)
		}
		var found []string
		for _, f := range res.found {
			found = append(found, f.name+"="+string(f.Value))
			if f.rule != tp.jar.match(f.name) || f.Signed != t0 || f.Key != 0 {
				t.Errorf("%s: found %+v", tc.desc, f)
			}
		}
		if !slices.Equal(found, tc.found) {
			t.Errorf("%s: found %q, want %q", tc.desc, found, tc.found)
		}
		if res.changed != tc.changed {
			t.Errorf("%s: changed %v, want %v", tc.desc, res.changed, tc.changed)
		}
	}
}

func TestRebuildPairCount(t *testing.T) {
	tp := newTestPolicy(t, nil)
	var res result
	if !tp.rebuild(&res, []string{"a=1; b; ;c=3", "d=4"}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if res.pairs != 4 {
		t.Errorf("pairs = %d, want 4", res.pairs)
	}
}

func TestRebuildTooManyPairs(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	pairs := make([]string, maxPairs)
	for i := range pairs {
		pairs[i] = "c" + strconv.Itoa(i) + "=v"
	}
	pairs[0] = "session=" + sv
	pairs[1] = "SESSION=x"
	var res result
	if ok := tp.rebuild(&res, []string{strings.Join(pairs, "; ")}, t0, nil, false); !ok || res.pairs != maxPairs {
		t.Fatalf("%d pairs: %v, %d", maxPairs, ok, res.pairs)
	}
	for _, lines := range [][]string{
		{strings.Join(pairs, "; ") + "; one=more"},
		{strings.Join(pairs[:1000], "; "), strings.Join(pairs[1000:], "; "), "x=1"},
	} {
		if tp.rebuild(&res, lines, t0, nil, false) {
			t.Errorf("%d lines, more than maxPairs: accepted", len(lines))
		}
		if len(res.header) != 0 || len(res.found) != 0 || len(res.dropped) != 0 || res.pairs != 0 || res.changed {
			t.Errorf("result past maxPairs is not empty: %d-byte header, %d found, %d dropped, %d pairs",
				len(res.header), len(res.found), len(res.dropped), res.pairs)
		}
		if _, ok := res.lookup(tp.jar.match("session")); ok {
			t.Error("lookup finds a cookie past maxPairs")
		}
	}
}

func TestResultReuse(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	ev := tp.signed(t, "enc", "e")
	session, enc, glob := tp.jar.match("session"), tp.jar.match("enc"), tp.jar.match("sess_x")
	var res result
	if !tp.rebuild(&res, []string{"session=" + sv + "; enc=" + ev + "; SESSION=1; x=1"}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if len(res.found) != 2 || len(res.dropped) != 1 || res.decodes != 2 || res.macs != 2 {
		t.Fatalf("first rebuild: %+v", res)
	}
	if !tp.rebuild(&res, []string{"y=2"}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if string(res.header) != "y=2" || len(res.found) != 0 || len(res.dropped) != 0 || res.pairs != 1 || res.changed ||
		res.decodes != 0 || res.macs != 0 {
		t.Errorf("second rebuild kept state: %+v", res)
	}
	if _, ok := res.lookup(session); ok {
		t.Error("lookup finds a cookie of the previous rebuild")
	}
	if !tp.rebuild(&res, []string{"enc=" + ev + "; session=" + sv}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	f, ok := res.lookup(session)
	if !ok || f.name != "session" || string(f.Value) != "alice" {
		t.Errorf("lookup(session) = %+v, %v", f, ok)
	}
	f, ok = res.lookup(enc)
	if !ok || string(f.Value) != "e" {
		t.Errorf("lookup(enc) = %+v, %v", f, ok)
	}
	if _, ok := res.lookup(glob); ok {
		t.Error("lookup(sess_*) found a cookie that is not there")
	}
	if !res.hasFound("session") || res.hasFound("sess_x") {
		t.Error("hasFound disagrees with found")
	}
	res.reset()
	if len(res.header) != 0 || len(res.found) != 0 || res.pairs != 0 || res.decodes != 0 || res.macs != 0 || res.consent {
		t.Errorf("reset left %+v", res)
	}
}

// Found values stay intact while later cookies are decoded into the same buffer. Past
// maxMACs, even valid values are not verified: the glob's names share one budget.
func TestRebuildFoundValuesStable(t *testing.T) {
	tp := newTestPolicy(t, nil)
	const n = maxMACs + 8
	var parts []string
	for i := 0; i < n; i++ {
		name := "sess_" + strconv.Itoa(i)
		parts = append(parts, name+"="+tp.signed(t, name, strings.Repeat(strconv.Itoa(i%10), 50+i)))
	}
	var res result
	if !tp.rebuild(&res, []string{strings.Join(parts, "; ")}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if len(res.found) != maxMACs {
		t.Fatalf("found %d, want %d", len(res.found), maxMACs)
	}
	for i, f := range res.found {
		if want := strings.Repeat(strconv.Itoa(i%10), 50+i); string(f.Value) != want {
			t.Errorf("%s = %q, want %q", f.name, f.Value, want)
		}
	}
	if c := countReasons(res.dropped); c[OverBudget] != n-maxMACs || len(res.dropped) != n-maxMACs {
		t.Errorf("dropped %s, want %d over budget", tp.droppedString(res.dropped), n-maxMACs)
	}
}

func TestAppendPair(t *testing.T) {
	tp := newTestPolicy(t, nil)
	var res result
	if !tp.rebuild(&res, []string{"a=1"}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if res.changed {
		t.Fatal("changed before appendPair")
	}
	appendPair(&res, "vid", []byte("00010203-0405-4607-8809-0a0b0c0d0e0f"))
	if string(res.header) != "a=1; vid=00010203-0405-4607-8809-0a0b0c0d0e0f" {
		t.Errorf("appendPair: %q", res.header)
	}
	res.reset()
	appendPair(&res, "vid", "x")
	if string(res.header) != "vid=x" {
		t.Errorf("appendPair on an empty header: %q", res.header)
	}
}

func TestLookalikeRules(t *testing.T) {
	c := cookie.NewCodec(testRing(t, "k"), cookie.Options{})
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
		j := newJar([]rule{{pattern: tc.pattern, kind: kindSign, codec: c}})
		for _, n := range tc.managed {
			if j.match(n) != 0 || j.isLookalike(n) {
				t.Errorf("%q: %q is not managed", tc.pattern, n)
			}
		}
		for _, n := range tc.lookalike {
			if j.match(n) >= 0 || !j.isLookalike(n) {
				t.Errorf("%q: %q is not a look-alike", tc.pattern, n)
			}
		}
		for _, n := range tc.unrelated {
			if j.match(n) >= 0 || j.isLookalike(n) {
				t.Errorf("%q: %q is managed or a look-alike", tc.pattern, n)
			}
		}
	}
}

func TestJarMatchOrder(t *testing.T) {
	a := cookie.NewCodec(testRing(t, "a"), cookie.Options{})
	b := cookie.NewCodec(testRing(t, "b"), cookie.Options{})
	j := newJar([]rule{{pattern: "sess_admin", codec: a}, {pattern: "sess_*", codec: b}})
	if j.match("sess_admin") != 0 || j.match("sess_user") != 1 || j.match("other") != -1 {
		t.Error("the first matching rule does not win")
	}
	if j.rules[1].codec != b || j.rules[0].pattern != "sess_admin" {
		t.Error("rules are not kept in order")
	}

	// New refuses a name two rules claim: a glob of sign over the visitor cookie or over a
	// name encrypt lists.
	for _, c := range []Config{
		{Visitor: &Visitor{Name: "sess_vid", Codec: a, MaxAge: time.Hour, Path: "/"}, Sign: []string{"sess_*"}, SignCodec: a, MaxAge: time.Hour},
		{Encrypt: []string{"sess_admin"}, Sign: []string{"sess_*"}, SignCodec: a, EncryptCodec: b, MaxAge: time.Hour},
	} {
		if _, err := New(c); err == nil || !strings.Contains(err.Error(), "both claim") {
			t.Errorf("%v + %v: %v, want both claim", c.Encrypt, c.Sign, err)
		}
	}
	// It orders the rules visitor first, then Encrypt, then Sign.
	p, err := New(Config{
		Visitor:   &Visitor{Name: "vid", Codec: a, MaxAge: time.Hour, Path: "/"},
		Encrypt:   []string{"sess_admin"},
		Sign:      []string{"sess_u*"},
		SignCodec: a, EncryptCodec: b, MaxAge: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]ruleKind{"vid": kindVisitor, "sess_admin": kindEncrypt, "sess_user": kindSign} {
		if i := p.jar.match(name); i < 0 || p.jar.rules[i].kind != want {
			t.Errorf("%s: rule %d, want kind %d", name, i, want)
		}
	}
	if p.visitorRule != 0 || p.jar.match("vid") != 0 {
		t.Errorf("visitor rule %d, want 0", p.visitorRule)
	}
	if i := p.jar.match("sess_user"); p.jar.rules[i].maxAge != 3600 {
		t.Errorf("sign rule max age %d, want 3600", p.jar.rules[i].maxAge)
	}
}

// Patterns are checked by the configuration, which New trusts; an empty policy manages
// nothing and sees no look-alikes.
func TestEmptyJar(t *testing.T) {
	if j := newJar(nil); j.match("a") != -1 || j.isLookalike("a") || j.isLookalike("") {
		t.Error("an empty jar manages names")
	}
	var res result
	p, _ := New(Config{})
	if !p.rebuild(&res, []string{"a=1; SESSION=2"}, t0, nil, false) || string(res.header) != "a=1; SESSION=2" || res.changed {
		t.Errorf("an empty policy rebuilt %q (changed %v)", res.header, res.changed)
	}
}

// The canonical form of every name a glob manages matches the canonical glob: a name that
// reads like a managed one can never slip past isLookalike. (Names with '%' are left out:
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
		canon := string(appendCanonical(nil, name))
		if ok, _ := path.Match(cg, canon); !ok {
			t.Fatalf("%q matches %q, but its canonical form %q does not match %q", name, pattern, canon, cg)
		}
	})
}

// FuzzRebuild checks, for any Cookie header, that a managed cookie reaches the upstream only
// with a value the test signed, once, in a form no parser splits, and that no look-alike or
// unparsable pair does; and that the verification stays within its budget.
func FuzzRebuild(f *testing.F) {
	tp := newTestPolicy(f, nil)
	// plain[name] holds the values signed for name, as the upstream sees them.
	plain := map[string]map[string]bool{}
	sign := func(name, value string) string {
		v := tp.signed(f, name, value)
		if plain[name] == nil {
			plain[name] = map[string]bool{}
		}
		plain[name][value] = true
		return v
	}
	s1, s2 := sign("session", "alice"), sign("session", "bob")
	e1 := sign("enc", "secret plain")
	g1, g2 := sign("sess_x", "gx"), sign("sess_y", "gy")
	v1 := sign("vid", string(testVisitorID))
	u1 := sign("session", "dark session=admin") // never forwarded: another parser reads two pairs
	delete(plain["session"], "dark session=admin")
	f.Add("a=1; session=" + s1 + "; b=2")
	f.Add("session=" + s1[:30] + "; session=" + s2 + "; session=" + s1)
	f.Add("enc=" + e1 + "; ENC=" + e1 + "; enc =" + e1)
	f.Add("sess_x=" + g1 + "; sess_y=" + g2 + "; sess_x=" + g2 + "; sess_y=" + g1)
	f.Add("vid=" + v1 + ";csrf=token;x=y")
	f.Add("SESSION=" + s1 + "; sess%69on=" + s1 + "; %20session=" + s1 + "; \u00a0session=" + s1)
	f.Add("session=" + s1 + "\n; a\x00=1; =; ;;; noeq")
	f.Add(`q="a;b"; session="` + s1 + `"`)
	f.Add("session=" + u1 + "; session=" + s2)
	f.Add(strings.Repeat("session=x; ", 40) + "session=" + s1)
	f.Fuzz(func(t *testing.T, header string) {
		var res result
		// Something else in the buffers first: reuse must not leak into this rebuild.
		if !tp.rebuild(&res, []string{"pre=1; session=" + s2 + "; enc=" + e1}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		ok := tp.rebuild(&res, []string{header}, t0, nil, false)
		inPairs := 0
		for _, p := range strings.Split(header, ";") {
			if trimWS(p) != "" {
				inPairs++
			}
		}
		if inPairs > maxPairs {
			if ok || len(res.header) != 0 {
				t.Fatalf("%d pairs: accepted, %d-byte header", inPairs, len(res.header))
			}
			return
		}
		if !ok {
			t.Fatalf("%d pairs refused", inPairs)
		}
		if res.pairs != inPairs {
			t.Fatalf("pairs = %d, want %d", res.pairs, inPairs)
		}
		if !res.changed && string(res.header) != header {
			t.Fatalf("changed is false, but %q became %q", header, res.header)
		}
		if res.macs > maxMACs {
			t.Fatalf("%d HMACs, over the budget", res.macs)
		}
		out := 0
		seen := map[string]bool{}
		if len(res.header) > 0 {
			for _, p := range strings.Split(string(res.header), "; ") {
				out++
				name, value, ok := strings.Cut(p, "=")
				if !ok || name == "" || hasCTL(name) {
					t.Fatalf("unparsable pair %q forwarded", p)
				}
				if tp.jar.isLookalike(name) {
					t.Fatalf("look-alike %q forwarded", name)
				}
				if i := tp.jar.match(name); i >= 0 {
					if tp.jar.rules[i].kind == kindVisitor {
						t.Fatalf("visitor cookie %q forwarded as it came", name)
					}
					if !plain[name][value] {
						t.Fatalf("managed %s=%q forwarded, but that value was never signed", name, value)
					}
					if !spliceSafe(value) {
						t.Fatalf("managed %s=%q forwarded, but another parser splits it", name, value)
					}
					if seen[name] {
						t.Fatalf("managed %q forwarded twice", name)
					}
					seen[name] = true
				}
			}
		}
		visitors := 0
		for _, f := range res.found {
			if !plain[f.name][string(f.Value)] {
				t.Fatalf("found %s=%q, never signed", f.name, f.Value)
			}
			if tp.jar.rules[f.rule].kind == kindVisitor {
				visitors++
			}
		}
		if out > inPairs || out+visitors+len(res.dropped) != inPairs {
			t.Fatalf("%d pairs in, %d forwarded + %d visitor + %d dropped", inPairs, out, visitors, len(res.dropped))
		}
		var again result
		if !tp.rebuild(&again, []string{header}, t0, nil, false) || !bytes.Equal(again.header, res.header) {
			t.Fatalf("a fresh result gives %q, the reused one %q", again.header, res.header)
		}
	})
}
