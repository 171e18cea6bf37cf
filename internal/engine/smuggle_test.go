package engine

import "testing"

// Pairs that look unmanaged to Go but carry a managed cookie for another parser: hidden
// after a ',' / space / '"' (ASP.NET Core, Python's SimpleCookie, old Rack), PHP arrays, and
// the names old PHP decodes ('+' as a space, a NUL ending the name). None may be forwarded,
// and ordinary cookies that merely hold '=' or brackets must still pass.
func TestRebuildDropsSmuggledManagedCookies(t *testing.T) {
	tp := newTestPolicy(t, nil)
	sv := tp.signed(t, "session", "alice")
	for _, part := range []string{
		"x=1,session=forged",
		"x=1 session=forged",
		`x=1"session=forged`,
		"x=1\\session=forged",
		"x=1\tsession=forged",
		"x=1, session=forged",
		"x=1,,session=forged",
		"x=a b,sess_admin=forged",
		"x=1,SESSION=forged",
		"x=1,vid=forged",
		"x=1,other=2,session=forged", // not only the first hidden pair counts
		"x=a=b,session=forged",       // a value holding '=' before the hidden pair
		"a,session=forged",
		"a session=forged",
		"session[x]=forged",
		"session[]=forged",
		"Session[a][b]=forged",
		"session%5Bx%5D=forged",
		"session%5bx%5D=forged",
		"x=1,session[]=forged",
		"sess+x=forged", // sess_x under the sess_* glob
		"session%00x=forged",
		"session%00=forged",
	} {
		var res result
		if !tp.rebuild(&res, []string{"session=" + sv + "; " + part}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		if got := string(res.header); got != "session=alice" {
			t.Errorf("%q: upstream gets %q, want only the verified session", part, got)
		}
		if len(res.dropped) != 1 || res.dropped[0].reason != Lookalike || res.dropped[0].rule != -1 {
			t.Errorf("%q: dropped %s, want one look-alike", part, tp.droppedString(res.dropped))
		}
	}
	for _, part := range []string{
		"x=a=b=c",
		"token=abc==",
		"pref=dark,compact",
		"list=a b c",
		"cart[items]=3",
		"x=1,other=2",
		"x=1,,other=2",
		"q=session",
		"x=session=1",    // one pair: every parser reads x
		"x=1,=session=1", // no name before the '=': "=session" to Python, nothing to the others
		"x=1,a=session=1",
	} {
		var res result
		if !tp.rebuild(&res, []string{part}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		if got := string(res.header); got != part || len(res.dropped) != 0 {
			t.Errorf("%q: forwarded %q, dropped %s; want it untouched", part, got, tp.droppedString(res.dropped))
		}
	}
}

// A rule whose name is not its own canonical form ("Session", read as "session" by PHP and
// ASP.NET Core): a hidden name in plain lower case is a look-alike of it, though it is its own
// canonical form and managed by no rule.
func TestRebuildDropsHiddenLookalikesOfCapitalizedRules(t *testing.T) {
	tp := newTestPolicy(t, nil, func(c *Config) { c.Sign = []string{"Session"} })
	for _, part := range []string{"x=1,session=forged", "x=1 session=forged", "x=1,SESSION=forged", "x=1,%73ession=forged"} {
		var res result
		if !tp.rebuild(&res, []string{part}, t0, nil, false) {
			t.Fatal("too many pairs")
		}
		if len(res.header) != 0 || len(res.dropped) != 1 || res.dropped[0].reason != Lookalike {
			t.Errorf("%q: upstream gets %q, dropped %s; want one look-alike", part, res.header, tp.droppedString(res.dropped))
		}
	}
}
