package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/internal/revoke"
)

// fakeRevocations revokes what its maps name, signed at or before the time given.
type fakeRevocations struct {
	all     int64
	cookies map[string]int64 // name=value
	visitor map[string]int64 // the ID's bytes
	fields  map[string]int64 // field=value
}

func (f *fakeRevocations) Revoked(kind, name string, value []byte, signed int64) bool {
	if signed > 0 && signed <= f.all {
		return true
	}
	var before int64
	var ok bool
	switch kind {
	case RevokeVisitor:
		before, ok = f.visitor[string(value)]
	case RevokeCookie:
		before, ok = f.cookies[name+"="+string(value)]
	}
	return ok && signed > 0 && signed <= before
}

func (f *fakeRevocations) RevokedSession(fields interface{ Get(string) (string, bool) }, signed int64) bool {
	if signed <= f.all {
		return true
	}
	for kv, before := range f.fields {
		k, v, _ := strings.Cut(kv, "=")
		if got, ok := fields.Get(k); ok && got == v && signed <= before {
			return true
		}
	}
	return false
}

// A revoked value is one more verdict of the pass: dropped with reason revoked, cleared in
// the browser (a visitor cookie replaced by a new ID), or the request rejected; other values
// of the name, the same value under another name, and values signed after the revocation
// verify.
func TestRevokedVerdict(t *testing.T) {
	rv := &fakeRevocations{cookies: map[string]int64{"session=alice": t0, "enc=gone": t0 - 1}, visitor: map[string]int64{string(testVisitorID): t0}}
	tp := newTestPolicy(t, nil, func(c *Config) { c.Revocations = rv })
	vid := tp.signed(t, "vid", string(testVisitorID))
	header := "session=" + tp.signed(t, "session", "alice") + "; sess_a=" + tp.signed(t, "sess_a", "alice") +
		"; enc=" + tp.signed(t, "enc", "gone") + "; vid=" + vid
	var res result
	if !tp.rebuild(&res, []string{header}, t0, nil, false) {
		t.Fatal("too many pairs")
	}
	if got, want := tp.droppedString(res.dropped), "session:revoked:session,vid:revoked:vid"; got != want {
		t.Errorf("dropped %s, want %s", got, want)
	}
	if got, want := string(res.header), "sess_a=alice; enc=gone"; got != want {
		t.Errorf("forwarded %q, want %q", got, want)
	}

	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", header)
	ps, err := tp.Request(nil, r, t0, func() int64 { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{}
	ps.Done(hdr)
	if ps.Report.Invalid[Revoked] != 2 || !ps.issue {
		t.Errorf("revoked counted %d times, new visitor ID %v", ps.Report.Invalid[Revoked], ps.issue)
	}
	if id, _ := ps.f.VisitorID(); id == "" || ps.visitor == [16]byte(testVisitorID) {
		t.Errorf("the revoked visitor kept its ID: %q", id)
	}
	lines := fmt.Sprint(hdr.Values("Set-Cookie"))
	if want := "session=; Path=/; Max-Age=0"; !contains(hdr.Values("Set-Cookie"), want) {
		t.Errorf("Set-Cookie %s: the revoked session is not cleared", lines)
	}
	ps.Release()

	reject := newTestPolicy(t, nil, func(c *Config) { c.Revocations, c.Reject = rv, true })
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Cookie", "session="+tp.signed(t, "session", "alice"))
	ps, err = reject.Request(nil, r, t0, func() int64 { return t0 })
	if !errors.Is(err, ErrInvalidCookie) {
		t.Errorf("on_invalid reject: %v", err)
	}
	ps.Release()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// benchView is a view of the realm "" with n entries for cookies named "other" (so that a
// lookup of "session" costs what it costs when the store holds entries of other cookies),
// or, with sameName, n entries of "session" values other than the one looked up.
func benchView(b *testing.B, n int, sameName bool) *revoke.View {
	s := revoke.New(&certmagic.FileStorage{Path: b.TempDir()}, revoke.Options{})
	b.Cleanup(func() { _ = s.Destruct() })
	u, err := s.Join(context.Background(), "", 0)
	if err != nil {
		b.Fatal(err)
	}
	if n == 0 {
		return u.View
	}
	name := "other"
	if sameName {
		name = "session"
	}
	f := &revoke.File{Version: revoke.Version, Realms: map[string][]revoke.Entry{}}
	now := time.Now().Truncate(time.Second)
	for i := range n {
		f.Realms[""] = append(f.Realms[""], revoke.Entry{Kind: revoke.Cookie, Name: name,
			Subject: revoke.SubjectOf(revoke.Cookie, name, "user"+strconv.Itoa(i)).String(), Before: now, Until: now.Add(time.Hour)})
	}
	if _, err := s.Add(context.Background(), f); err != nil {
		b.Fatal(err)
	}
	return u.View
}

// The cost of revocation on the request pass: none configured, an empty store, and a store
// with entries (for other cookies, and for other values of the cookie verified).
//
//	go test ./internal/engine -run XXX -bench Revocation -benchmem
func BenchmarkRevocation(b *testing.B) {
	for _, c := range []struct {
		name     string
		n        int
		sameName bool
		none     bool
	}{
		{"none", 0, false, true},
		{"empty", 0, false, false},
		{"entries=10000,other_cookie", 10000, false, false},
		{"entries=1,same_cookie", 1, true, false},
		{"entries=10000,same_cookie", 10000, true, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			var rv Revocations
			if !c.none {
				rv = benchView(b, c.n, c.sameName)
			}
			tp := newTestPolicy(b, nil, func(cfg *Config) { cfg.Revocations = rv })
			lines := []string{"vid=" + tp.signed(b, "vid", string(testVisitorID)) + "; " + benchCookieHeader(b, tp, 10)}
			b.ReportAllocs()
			var res result
			for b.Loop() {
				if !tp.rebuild(&res, lines, t0, nil, false) {
					b.Fatal("too many pairs")
				}
			}
			if len(res.found) != 2 || len(res.dropped) != 0 {
				b.Fatalf("found %d, dropped %s", len(res.found), tp.droppedString(res.dropped))
			}
		})
	}
}
