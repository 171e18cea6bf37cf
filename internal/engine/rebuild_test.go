package engine

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestSpliceSafe(t *testing.T) {
	for _, tc := range []struct {
		v    string
		safe bool
	}{
		{"", true},
		{"alice", true},
		{"a,b", true},
		{"abc==", true},
		{"=x", true},
		{"a=b=c", true}, // no byte before the '=' splits pairs: every parser reads one value
		{`{"theme":"dark","n":1}`, true},
		{`"quoted"`, true},
		{"a b c", true},
		{"a\tb", true},
		{"ü=1", true},
		{"dark session=admin", false}, // two pairs to Python's SimpleCookie
		{"a,b=c", false},              // two to ASP.NET Core and old Rack
		{`a"b=c`, false},
		{`{"a":"b=c"}`, false},
		{`a\=b`, false},
		{"a\tb=c", false},
		{"a;b", false},
		{"a\x00b", false},
		{"a\x01b", false},
		{"a\nb", false},
		{"a\x7fb", false},
	} {
		if got := spliceSafe(tc.v); got != tc.safe {
			t.Errorf("spliceSafe(%q) = %v, want %v", tc.v, got, tc.safe)
		}
		if got := spliceSafe([]byte(tc.v)); got != tc.safe {
			t.Errorf("spliceSafe([]byte(%q)) = %v, want %v", tc.v, got, tc.safe)
		}
	}
}

// A decoded value that another parser of the rebuilt header could read as more than one
// pair is not forwarded: the signature vouches for one value, not for a second cookie.
func TestRebuildUnsafeValue(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	gv := tp.signed(t, "sess_x", "glob")
	for _, tc := range []struct {
		name, plain string
		safe        bool
	}{
		{"session", "dark session=admin", false},
		{"session", "a,b=c", false},
		{"session", `x"=y`, false},
		{"session", "a;b", false},
		{"enc", "dark session=admin", false},
		{"enc", "a\x01b", false},
		{"sess_y", `a\=b`, false},
		{"session", "a,b", true},
		{"session", "abc==", true},
		{"session", `{"theme":"dark","n":1}`, true},
		{"enc", "a b", true},
	} {
		v := tp.signed(t, tc.name, tc.plain)
		var res result
		// Another copy follows, then another cookie: the dropped value must not take the
		// place of either, nor spoil the buffer they are decoded into.
		other := "session=" + sv
		if tc.name == "session" {
			other = "sess_x=" + gv
		}
		if !tp.rebuild(&res, []string{tc.name + "=" + v + "; " + other}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		otherPlain := strings.Replace(strings.Replace(other, sv, "alice", 1), gv, "glob", 1)
		want, wantDropped := tc.name+"="+tc.plain+"; "+otherPlain, ""
		if !tc.safe {
			want, wantDropped = otherPlain, tc.name+":unsafe_value:"+tp.ruleOf(tp.jar.match(tc.name))
		}
		if string(res.header) != want || tp.droppedString(res.dropped) != wantDropped {
			t.Errorf("%s=%q: header %q, dropped %q; want %q, %q", tc.name, tc.plain, res.header,
				tp.droppedString(res.dropped), want, wantDropped)
		}
		if res.hasFound(tc.name) != tc.safe || len(res.found) != strings.Count(string(res.header), "; ")+1 {
			t.Errorf("%s=%q: found %+v", tc.name, tc.plain, res.found)
		}
	}

	// A second, safe copy of the same cookie is still verified.
	uv := tp.signed(t, "session", "dark session=admin")
	var res result
	tp.rebuild(&res, []string{"session=" + uv + "; session=" + sv}, t0, nil, false)
	if string(res.header) != "session=alice" || tp.droppedString(res.dropped) != "session:unsafe_value:session" {
		t.Errorf("unsafe then safe copy: header %q, dropped %q", res.header, tp.droppedString(res.dropped))
	}
}

// The upstream's own unsafe values do not leave signed either.
func TestFinalizeUnsafeValue(t *testing.T) {
	tp := newTestPolicy(t, nil)
	var f Flow
	ps := &Pass{p: tp.Policy, f: &f, now: t0, clock: func() int64 { return t0 }}
	hdr := http.Header{"Set-Cookie": {"session=dark session=admin; Path=/", "session=a,b; Path=/", "x=dark session=admin"}}
	ps.Finalize(hdr)
	lines := hdr["Set-Cookie"]
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "session=") || strings.Contains(lines[0], "a,b") || lines[1] != "x=dark session=admin" {
		t.Errorf("Set-Cookie %q", lines)
	}
	if ps.Report.Dropped[UnsafeValue] != 1 || ps.Report.Signed != 1 {
		t.Errorf("report %+v", ps.Report)
	}
}

// forgedFor is a well-formed value for name signed with a key the policy does not hold: it
// costs a full ring of HMACs to refuse.
func forgedFor(tb testing.TB, name, plain string, i int) string {
	tb.Helper()
	v, err := cookie.NewCodec(testRing(tb, "attacker"), cookie.Options{Now: at(t0)}).Encode(name, []byte(plain+strconv.Itoa(i)))
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// The verification work of one request is bounded: at most maxMACs HMACs, and a value is
// only tried while a whole ring still fits.
func TestRebuildBudget(t *testing.T) {
	for _, keys := range []int{1, 2, 3, 4, 5, 7, 64} {
		var labels []string
		for i := 0; i < keys; i++ {
			labels = append(labels, "budget key "+strconv.Itoa(i))
		}
		tp := newTestPolicy(t, testRing(t, labels...))
		sv := tp.signed(t, "session", "alice")
		const copies = 100
		var parts []string
		for i := 0; i < copies; i++ {
			parts = append(parts, "session="+forgedFor(t, "session", "mallory", i))
		}
		parts = append(parts, "session="+sv, "a=1")
		var res result
		if !tp.rebuild(&res, []string{strings.Join(parts, "; ")}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		// A value is tried while a whole ring still fits: the forged copies first, then the
		// valid one if there is room left.
		tried := min(copies, maxMACs/keys)
		validRead := tried*keys+keys <= maxMACs
		over, macs, header := copies-tried, tried*keys, "a=1"
		if validRead {
			macs, header = macs+1, "session=alice; a=1"
		} else {
			over++
		}
		c := countReasons(res.dropped)
		if c[BadMAC] != tried || c[OverBudget] != over || len(res.dropped) != tried+over {
			t.Errorf("%d keys: dropped %v, want %d bad_mac and %d over_budget", keys, c, tried, over)
		}
		if res.macs != macs || res.macs > maxMACs {
			t.Errorf("%d keys: %d HMACs; want %d", keys, res.macs, macs)
		}
		// Unmanaged cookies are not held back by the budget.
		if string(res.header) != header {
			t.Errorf("%d keys: header %q, want %q", keys, res.header, header)
		}

		// Once a valid copy is found, later copies cost nothing.
		res.reset()
		tp.rebuild(&res, []string{"session=" + sv + "; " + strings.Join(parts[:copies], "; ")}, t0, nil, false)
		if c := countReasons(res.dropped); string(res.header) != "session=alice" || c[Duplicate] != copies || res.macs != 1 || res.decodes != 1 {
			t.Errorf("%d keys: valid copy first: header %q, dropped %v, %d HMACs", keys, res.header, c, res.macs)
		}

		// Forged copies under many names of a glob share the one budget.
		var glob []string
		for i := 0; i < copies; i++ {
			name := "sess_" + strconv.Itoa(i)
			glob = append(glob, name+"="+forgedFor(t, name, "mallory", i))
		}
		tp.rebuild(&res, []string{strings.Join(glob, "; ")}, t0, nil, false)
		if c := countReasons(res.dropped); c[BadMAC] != tried || c[OverBudget] != copies-tried || res.macs > maxMACs {
			t.Errorf("%d keys, glob names: dropped %v, %d HMACs", keys, c, res.macs)
		}
	}
}

// A valid value costs one HMAC when the signing key made it, one more per older key.
func TestRebuildValidCost(t *testing.T) {
	ring := testRing(t, "new", "older", "oldest")
	tp := newTestPolicy(t, ring)
	var res result
	parts := []string{
		"session=" + tp.signed(t, "session", "alice"),
		"enc=" + tp.signed(t, "enc", "e"),
		"sess_x=" + tp.signed(t, "sess_x", "g"),
		"vid=" + tp.signed(t, "vid", string(testVisitorID)),
	}
	tp.rebuild(&res, []string{strings.Join(parts, "; ")}, t0, nil, false)
	if len(res.found) != 4 || res.decodes != 4 || res.macs != 4 {
		t.Errorf("signing key: %d found, %d decodes, %d HMACs; want 4 each", len(res.found), res.decodes, res.macs)
	}
	oldest, err := cookie.NewCodec(testRing(t, "oldest"), cookie.Options{Now: at(t0)}).Encode("session", []byte("alice"))
	if err != nil {
		t.Fatal(err)
	}
	tp.rebuild(&res, []string{"session=" + oldest}, t0, nil, false)
	if f, ok := res.lookup(tp.jar.match("session")); !ok || f.Key != 2 || res.macs != 3 {
		t.Errorf("oldest key: found %+v, %d HMACs; want key 2, 3 HMACs", f, res.macs)
	}
}

// Names that an earlier policy on the request path verified pass through as they are: the
// value the later policy sees is already plain, and verifying it again would drop it.
func TestRebuildTrusted(t *testing.T) {
	ring := testRing(t, "shared")
	a := newTestPolicy(t, ring, func(c *Config) {
		c.Visitor, c.Encrypt, c.Sign, c.Name = nil, nil, []string{"session"}, "a"
	})
	b := newTestPolicy(t, ring, func(c *Config) { c.Visitor, c.Name = nil, "b" })
	ev := b.signed(t, "enc", "secret")

	var res result
	b.rebuild(&res, []string{"session=alice; enc=" + ev + "; sess_x=plain"}, t0, []*Policy{a.Policy}, false)
	if string(res.header) != "session=alice; enc=secret" || b.droppedString(res.dropped) != "sess_x:malformed:sess_*" {
		t.Errorf("trusted session: header %q, dropped %q", res.header, b.droppedString(res.dropped))
	}
	if res.hasFound("session") || !res.hasFound("enc") || res.decodes != 2 {
		t.Errorf("trusted session was verified again: found %+v, %d decodes", res.found, res.decodes)
	}
	// Trust covers the earlier policy's names only, not their look-alikes.
	b.rebuild(&res, []string{"SESSION=alice"}, t0, []*Policy{a.Policy}, false)
	if len(res.header) != 0 || b.droppedString(res.dropped) != "SESSION:lookalike:-" {
		t.Errorf("look-alike of a trusted name: header %q, dropped %q", res.header, b.droppedString(res.dropped))
	}
	// Without it, the plain value is a forgery.
	b.rebuild(&res, []string{"session=alice"}, t0, nil, false)
	if len(res.header) != 0 || b.droppedString(res.dropped) != "session:malformed:session" {
		t.Errorf("untrusted: header %q, dropped %q", res.header, b.droppedString(res.dropped))
	}

	// The same through Request: a verifies session, b trusts it and decodes enc.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", "session="+a.signed(t, "session", "alice")+"; enc="+ev)
	var f Flow
	clock := func() int64 { return t0 }
	pa, err := a.Request(&f, r, t0, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer pa.Release()
	pb, err := b.Request(&f, r, t0, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer pb.Release()
	if got := r.Header["Cookie"]; len(got) != 1 || got[0] != "session=alice; enc=secret" {
		t.Errorf("upstream gets %q", got)
	}
	if pb.Report.Verified != 1 || f.Invalid() != "" {
		t.Errorf("b verified %d, invalid %q", pb.Report.Verified, f.Invalid())
	}

	// A policy that manages a name differently does not trust the earlier one: the request
	// stops there.
	c := newTestPolicy(t, testRing(t, "other"), func(c *Config) { c.Visitor, c.KeyID, c.Name = nil, "other", "c" })
	pc, err := c.Request(&f, r, t0, clock)
	defer pc.Release()
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Earlier != "a" || ce.Later != "c" {
		t.Errorf("conflicting policy: %v", err)
	}
}

// The visitor's consent cookie counts when it is forwarded, managed or not, and only then.
func TestRebuildConsent(t *testing.T) {
	for _, tc := range []struct {
		consent string
		managed bool
		header  func(tp testPolicy) string
		want    bool
	}{
		{"cc=yes", false, func(testPolicy) string { return "cc=yes" }, true},
		{"cc=yes", false, func(testPolicy) string { return "a=1; cc=yes; b=2" }, true},
		{"cc=yes", false, func(testPolicy) string { return "cc=no" }, false},
		{"cc=yes", false, func(testPolicy) string { return "cc=yes2" }, false},
		{"cc=yes", false, func(testPolicy) string { return "CC=yes" }, false},
		{"cc=yes", false, func(testPolicy) string { return "cc\x01=yes" }, false},
		{"cc=yes", false, func(testPolicy) string { return "" }, false},
		{"cc", false, func(testPolicy) string { return "cc=anything" }, true},
		{"cc", false, func(testPolicy) string { return "cc=" }, true},
		{"cc", false, func(testPolicy) string { return "ccx=1; xcc=1" }, false},
		// Dropped pairs do not count: a look-alike of a managed cookie hides in this one.
		{"cc", false, func(testPolicy) string { return "cc=1,session=forged" }, false},
		{"cc=yes", true, func(tp testPolicy) string { return "cc=" + tp.signed(t, "cc", "yes") }, true},
		{"cc=yes", true, func(tp testPolicy) string { return "cc=" + tp.signed(t, "cc", "no") }, false},
		{"cc=yes", true, func(testPolicy) string { return "cc=yes" }, false}, // unsigned: a forgery
		{"cc", true, func(tp testPolicy) string { return "cc=" + forgedFor(t, "cc", "yes", 0) }, false},
		{"cc", true, func(tp testPolicy) string { return "cc=" + tp.signed(t, "cc", "") }, true},
	} {
		tp := newTestPolicy(t, nil, func(c *Config) {
			c.Visitor.Consent = tc.consent
			if tc.managed {
				c.Sign = append(c.Sign, "cc")
			}
		})
		header := tc.header(tp)
		var res result
		tp.rebuild(&res, []string{header}, t0, nil, false)
		if res.consent != tc.want {
			t.Errorf("consent %q, managed %v, header %q: consent %v, want %v", tc.consent, tc.managed, header, res.consent, tc.want)
		}
	}

	// A consent cookie that an earlier policy verified counts as it passes.
	ring := testRing(t, "jar")
	earlier := newTestPolicy(t, ring, func(c *Config) { c.Visitor, c.Encrypt, c.Sign = nil, nil, []string{"cc"} })
	tp := newTestPolicy(t, ring, func(c *Config) { c.Visitor.Consent = "cc=yes"; c.Sign = append(c.Sign, "cc") })
	var res result
	tp.rebuild(&res, []string{"cc=yes"}, t0, []*Policy{earlier.Policy}, false)
	if !res.consent {
		t.Error("consent verified by an earlier policy does not count")
	}
	res.reset()
	if res.consent {
		t.Error("reset keeps consent")
	}

	// Without consent no ID is issued; with it, one is.
	for _, header := range []string{"", "cc=yes", "cc=" + tp.signed(t, "cc", "yes")} {
		r := httptest.NewRequest("GET", "/", nil)
		if header != "" {
			r.Header.Set("Cookie", header)
		}
		var f Flow
		ps, err := tp.Request(&f, r, t0, func() int64 { return t0 })
		if err != nil {
			t.Fatal(err)
		}
		id, tracked := f.VisitorID()
		if issued := len(header) > len("cc=yes"); ps.issue != issued || (id != "") != issued || !tracked {
			t.Errorf("cookie %q: issue %v, visitor ID %q", header, ps.issue, id)
		}
		ps.Release()
	}
}

// The key refresh runs at most once per request, on a failed MAC, and its HMACs count.
func TestRebuildRefresh(t *testing.T) {
	calls := 0
	tp := newTestPolicy(t, nil, func(c *Config) { c.Refresh = func() bool { calls++; return false } })
	sv := tp.signed(t, "session", "alice")
	var parts []string
	for i := 0; i < 5; i++ {
		parts = append(parts, "session="+forgedFor(t, "session", "mallory", i))
	}
	var res result
	tp.rebuild(&res, []string{strings.Join(parts, "; ") + "; session=" + sv}, t0, nil, false)
	if calls != 1 || string(res.header) != "session=alice" {
		t.Errorf("%d refreshes, header %q", calls, res.header)
	}
	tp.rebuild(&res, []string{"session=" + sv}, t0, nil, false)
	if calls != 1 {
		t.Errorf("a valid cookie asked for a refresh")
	}

	// Keys that arrive through the refresh verify the cookie that asked for them.
	newKey := testRing(t, "rotated in", "jar")
	fresh, err := cookie.NewCodec(newKey, cookie.Options{Now: at(t0)}).Encode("session", []byte("bob"))
	if err != nil {
		t.Fatal(err)
	}
	tp = newTestPolicy(t, nil, func(c *Config) {
		c.Refresh = func() bool { c.SignCodec.(*cookie.Codec).SetKeyRing(newKey); return true }
	})
	tp.rebuild(&res, []string{"session=" + fresh}, t0, nil, false)
	if string(res.header) != "session=bob" || res.macs > maxMACs {
		t.Errorf("after a refresh: header %q, dropped %q", res.header, tp.droppedString(res.dropped))
	}
}

// A valid cookie behind a flood of forged copies goes unread once the budget is spent, but it
// is not judged: nothing clears it in the browser and no new visitor ID replaces it.
func TestOverBudgetClearsNothing(t *testing.T) {
	tp := newTestPolicy(t, testRing(t, "k0", "k1", "k2", "k3"))
	sv := tp.signed(t, "session", "alice")
	vv := tp.signed(t, "vid", string(testVisitorID))
	var parts []string
	for i := 0; i < maxMACs/4; i++ {
		parts = append(parts, "session="+forgedFor(t, "session", "mallory", i))
	}
	parts = append(parts, "session="+sv, "vid="+vv)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", strings.Join(parts, "; "))
	var f Flow
	ps, err := tp.Request(&f, r, t0, func() int64 { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Release()
	hdr := http.Header{}
	ps.Finalize(hdr)
	if lines := hdr["Set-Cookie"]; len(lines) != 0 {
		t.Errorf("Set-Cookie %q: a cookie that was not read was cleared or replaced", lines)
	}
	if c := countReasons(ps.res.dropped); c[OverBudget] != 2 || ps.Report.Issued != 0 {
		t.Errorf("dropped %v, issued %d", c, ps.Report.Issued)
	}
}

// The first copy of a plain cookie decides what the upstream reads, also when the policy
// that manages it (here with a transparent prefix) runs after one that drops that copy for
// hiding a pair of its own: the later copies are not taken for the first. A header of more
// hidden first copies than a shadow lists drops every later copy rather than forward one.
func TestRebuildFirstCopyDroppedEarlier(t *testing.T) {
	a := newTestPolicy(t, nil, func(c *Config) { c.Visitor, c.Name = nil, "a" })
	b := newTestPolicy(t, testRing(t, "b"), func(c *Config) {
		c.Visitor, c.Sign, c.Encrypt, c.KeyID, c.Name = nil, nil, nil, "b", "b"
		c.Cookies = []CookieRule{{Names: []string{"ad"}, Prefix: "__Secure-"}}
	})
	hidden := func(n int) string {
		var s []string
		for i := range n {
			s = append(s, "x"+strconv.Itoa(i)+"=1 session=forged")
		}
		return strings.Join(s, "; ")
	}
	for _, tc := range []struct{ header, want string }{
		{"__Secure-ad=dark session=forged; __Secure-ad=light", ""},
		{"__Secure-ad=light; __Secure-ad=dark session=forged", "ad=light"},
		{"__Secure-ad=light", "ad=light"},
		{"x=1 session=forged; __Secure-ad=light", "ad=light"},
		{hidden(maxShadowed) + "; __Secure-ad=light", "ad=light"},
		{hidden(maxShadowed+1) + "; __Secure-ad=light", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Cookie", tc.header)
		var f Flow
		clock := func() int64 { return t0 }
		pa, err := a.Request(&f, r, t0, clock)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := b.Request(&f, r, t0, clock)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Header.Get("Cookie"); got != tc.want {
			t.Errorf("%.60q: upstream gets %q, want %q", tc.header, got, tc.want)
		}
		pb.Release()
		pa.Release()
	}
}

// A copy left unverified for the budget may be the valid one: no plain copy of the name is
// forwarded in its place on the way back (unwrap) or in a rollout, prefixed names included
// (the dropped copy is listed under the name the browser holds, the plain one under the
// name the upstream reads).
func TestRebuildUnreadCopyKeepsPlainOut(t *testing.T) {
	for _, prefix := range []string{"", "__Secure-"} {
		tp := newTestPolicy(t, nil, func(c *Config) {
			c.Visitor, c.Unwrap = nil, true
			if prefix != "" {
				c.Cookies = []CookieRule{{Names: []string{"session"}, Prefix: prefix}}
			}
		})
		valid, err := tp.sign.Encode(prefix+"session", []byte("alice"))
		if err != nil {
			t.Fatal(err)
		}
		var parts []string
		for i := 0; i < maxMACs/tp.ring.Len(); i++ {
			parts = append(parts, "enc="+forgedFor(t, "enc", "mallory", i))
		}
		parts = append(parts, prefix+"session="+valid, prefix+"session=bob", "a=1")
		var res result
		if !tp.rebuild(&res, []string{strings.Join(parts, "; ")}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		if got := string(res.header); got != "a=1" {
			t.Errorf("prefix %q: upstream gets %q, want only a=1: the unread copy may be the valid one", prefix, got)
		}
	}
}
