package cookie

import "testing"

// Pairs that look unmanaged to Go but carry a managed cookie for another parser: hidden
// after a ',' / space / '"' (ASP.NET Core, Python's SimpleCookie, old Rack), PHP arrays, and
// the names old PHP decodes ('+' as a space, a NUL ending the name). None may be forwarded,
// and ordinary cookies that merely hold '=' or brackets must still pass.
func TestRebuildDropsSmuggledManagedCookies(t *testing.T) {
	tj := newTestJar(t)
	sv := tj.signed(t, "session", "alice")
	for _, part := range []string{
		"x=1,session=forged",
		"x=1 session=forged",
		`x=1"session=forged`,
		"x=1\\session=forged",
		"x=a b,sess_admin=forged",
		"x=1,SESSION=forged",
		"x=1,vid=forged",
		"a,session=forged",
		"a session=forged",
		"session[x]=forged",
		"session[]=forged",
		"Session[a][b]=forged",
		"session%5Bx%5D=forged",
		"x=1,session[]=forged",
		"sess+x=forged", // sess_x under the sess_* glob
		"session%00x=forged",
		"session%00=forged",
	} {
		var res Result
		if err := tj.Rebuild(&res, []string{"session=" + sv + "; " + part}); err != nil {
			t.Fatal(err)
		}
		if got := string(res.Header); got != "session=alice" {
			t.Errorf("%q: upstream gets %q, want only the verified session", part, got)
		}
		if len(res.Dropped) != 1 || res.Dropped[0].Reason != ReasonLookalike {
			t.Errorf("%q: dropped %s, want one look-alike", part, droppedString(res.Dropped))
		}
	}
	for _, part := range []string{
		"x=a=b=c",
		"token=abc==",
		"pref=dark,compact",
		"list=a b c",
		"cart[items]=3",
		"x=1,other=2",
		"q=session",
		"x=session=1", // one pair: every parser reads x
	} {
		var res Result
		if err := tj.Rebuild(&res, []string{part}); err != nil {
			t.Fatal(err)
		}
		if got := string(res.Header); got != part || len(res.Dropped) != 0 {
			t.Errorf("%q: forwarded %q, dropped %s; want it untouched", part, got, droppedString(res.Dropped))
		}
	}
}
