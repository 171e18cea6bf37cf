package revoke

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

var ctx = context.Background()

// t0 is the tests' now.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// newStore is a store over a file_system storage in dir, at a fixed now, counting errors.
func newStore(t testing.TB, dir string) (*Store, *errorCounts) {
	t.Helper()
	counts := &errorCounts{}
	s := New(&certmagic.FileStorage{Path: dir}, Options{OnError: counts.add})
	s.now = func() time.Time { return t0 }
	t.Cleanup(func() { _ = s.Destruct() })
	return s, counts
}

type errorCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *errorCounts) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[op]++
}

func (c *errorCounts) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[op]
}

// entry is an entry of kind for value, revoking what was signed at or before before, for a
// day after it.
func entry(kind Kind, name, value string, before time.Time) Entry {
	e := Entry{Kind: kind, Name: name, Before: before, Until: before.Add(24 * time.Hour)}
	if kind != All {
		e.Subject = SubjectOf(kind, name, value).String()
	}
	return e
}

func fileOf(realm string, entries ...Entry) *File {
	return &File{Version: Version, Realms: map[string][]Entry{realm: entries}}
}

func storedBytes(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(StorageKey)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeStored(t testing.TB, dir string, b []byte) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(StorageKey))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// cookieRevoked asks v about session=value signed at signed.
func cookieRevoked(v *View, value string, signed time.Time) bool {
	return v.Revoked("cookie", "session", []byte(value), signed.Unix())
}

// What a view answers: by subject and signing time (at or before Before), by realm, and
// nothing for values without a signing time.
func TestViewAnswers(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir)
	u, err := s.Join(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Join(ctx, "other", 0)
	if err != nil {
		t.Fatal(err)
	}
	v := u.View
	if !v.Empty() || cookieRevoked(v, "alice", t0.Add(-time.Hour)) {
		t.Fatal("an empty store revokes")
	}
	id := [16]byte{1, 2, 3, 4, 5, 6, 0x47, 8, 0x89, 10, 11, 12, 13, 14, 15, 16}
	T := t0.Add(-time.Minute)
	if _, err := s.Add(ctx, fileOf("",
		entry(Cookie, "session", "alice", T),
		entry(Visitor, "", string(id[:]), T),
		entry(Flask, "user_id", "42", T))); err != nil {
		t.Fatal(err)
	}
	if v.Empty() || !other.View.Empty() {
		t.Fatal("the entries did not reach their realm's view alone")
	}
	idText := cookie.AppendUUID(nil, id[:])
	for _, c := range []struct {
		name string
		got  bool
		want bool
	}{
		{"alice signed before T", cookieRevoked(v, "alice", T.Add(-time.Hour)), true},
		{"alice signed at T", cookieRevoked(v, "alice", T), true},
		{"alice signed after T", cookieRevoked(v, "alice", T.Add(time.Second)), false},
		{"bob signed before T", cookieRevoked(v, "bob", T.Add(-time.Hour)), false},
		{"alice as another cookie", v.Revoked("cookie", "other", []byte("alice"), T.Add(-time.Hour).Unix()), false},
		{"alice without a signing time", v.Revoked("cookie", "session", []byte("alice"), 0), false},
		{"alice in another realm", cookieRevoked(other.View, "alice", T.Add(-time.Hour)), false},
		{"visitor as bytes", v.Revoked("visitor", "", id[:], T.Unix()), true},
		{"visitor as UUID text", v.Revoked("visitor", "", idText, T.Unix()), true},
		{"visitor after T", v.Revoked("visitor", "", id[:], T.Unix()+1), false},
		{"another visitor", v.Revoked("visitor", "", []byte("0123456789abcdef"), T.Unix()), false},
		{"flask user 42", v.RevokedSession(testFields{"user_id": "42", "role": "admin"}, T.Unix()), true},
		{"flask user 42 after T", v.RevokedSession(testFields{"user_id": "42"}, T.Unix()+1), false},
		{"flask user 7", v.RevokedSession(testFields{"user_id": "7"}, T.Unix()), false},
		{"flask without the field", v.RevokedSession(testFields{"role": "42"}, T.Unix()), false},
	} {
		if c.got != c.want {
			t.Errorf("%s: revoked %v, want %v", c.name, c.got, c.want)
		}
	}
	// the emergency brake: everything of the realm signed at or before its time
	if _, err := s.Add(ctx, fileOf("", entry(All, "", "", T))); err != nil {
		t.Fatal(err)
	}
	if !cookieRevoked(v, "bob", T) || !v.RevokedSession(testFields{}, T.Unix()) || !v.Revoked("visitor", "", []byte("0123456789abcdef"), T.Unix()) {
		t.Error("all does not revoke everything signed at or before its time")
	}
	if cookieRevoked(v, "bob", T.Add(time.Second)) || v.Revoked("cookie", "session", []byte("bob"), 0) {
		t.Error("all revokes what was signed after it, or what carries no signing time")
	}
	if !other.View.Empty() {
		t.Error("all reached another realm")
	}
}

// The lookup allocates nothing, with or without entries.
func TestViewAllocates(t *testing.T) {
	s, _ := newStore(t, t.TempDir())
	u, _ := s.Join(ctx, "", 0)
	v := u.View
	value := []byte("alice")
	fields := testFields{"user_id": "42"}
	check := func(stage string) {
		if n := testing.AllocsPerRun(100, func() {
			v.Revoked("cookie", "session", value, t0.Unix())
			v.RevokedSession(fields, t0.Unix())
			v.Revoked("visitor", "", []byte("0123456789abcdef"), t0.Unix())
		}); n != 0 {
			t.Errorf("%s: %v allocations per lookup", stage, n)
		}
	}
	check("empty")
	if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "bob", t0), entry(Flask, "user_id", "7", t0), entry(Visitor, "", "fedcba9876543210", t0))); err != nil {
		t.Fatal(err)
	}
	check("with entries")
}

// An entry goes once the cookies it revokes cannot verify: not in the views after Until, and
// not stored again by the next write.
func TestEntriesExpire(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir)
	u, _ := s.Join(ctx, "", 0)
	old := entry(Cookie, "session", "alice", t0.Add(-48*time.Hour)) // until t0-24h
	writeStored(t, dir, []byte(fmt.Sprintf(`{"version":1,"realms":{"":[{"kind":"cookie","name":"session","subject":%q,"before":%q,"until":%q}]}}`,
		old.Subject, old.Before.Format(time.RFC3339), old.Until.Format(time.RFC3339))))
	s.Reread(ctx)
	if !u.View.Empty() {
		t.Error("an expired entry is in force")
	}
	f, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "bob", t0)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Count() != 1 || bytes.Contains(storedBytes(t, dir), []byte(old.Subject)) {
		t.Errorf("the expired entry was stored again:\n%s", storedBytes(t, dir))
	}
	// the same subject revoked again: one entry, the later times
	later := entry(Cookie, "session", "bob", t0.Add(time.Hour))
	if f, err = s.Add(ctx, fileOf("", later)); err != nil {
		t.Fatal(err)
	}
	if e := f.Realms[""]; len(e) != 1 || !e[0].Before.Equal(later.Before) || !e[0].Until.Equal(later.Until) {
		t.Errorf("a second revocation of one subject: %+v", e)
	}
}

// The store holds at most MaxEntries: a revocation past them is refused with ErrFull,
// counted, and the stored file is left as it was; an oversized file is not read.
func TestStoreBounds(t *testing.T) {
	dir := t.TempDir()
	s, counts := newStore(t, dir)
	full := &File{Version: Version, Realms: map[string][]Entry{}}
	for i := range MaxEntries {
		full.Realms[""] = append(full.Realms[""], entry(Cookie, "session", fmt.Sprint("user", i), t0))
	}
	if _, err := s.Add(ctx, full); err != nil {
		t.Fatal(err)
	}
	before := storedBytes(t, dir)
	if len(before) > MaxFileBytes/2 {
		t.Errorf("%d entries take %d bytes: MaxFileBytes (%d) leaves too little room", MaxEntries, len(before), MaxFileBytes)
	}
	_, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "one more", t0)))
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "10001 entries, 10000 at most") {
		t.Fatalf("a revocation past the bound: %v", err)
	}
	if counts.get("full") != 1 {
		t.Errorf("full counted %d times", counts.get("full"))
	}
	if !bytes.Equal(storedBytes(t, dir), before) {
		t.Error("a refused revocation changed the store")
	}
	// a revocation of a subject already held still fits
	if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "user7", t0.Add(time.Minute)))); err != nil {
		t.Errorf("revoking a held subject again: %v", err)
	}

	// A file over MaxFileBytes is refused unread, and so is one with too many entries.
	big := t.TempDir()
	writeStored(t, big, bytes.Repeat([]byte(" "), MaxFileBytes+1))
	s2, _ := newStore(t, big)
	if _, err := s2.Join(ctx, "", 0); err == nil || !strings.Contains(err.Error(), "more than a revocation store can be") {
		t.Errorf("an oversized store: %v", err)
	}
	many := &File{Version: Version, Realms: map[string][]Entry{"": full.Realms[""], "b": {entry(All, "", "", t0)}}}
	if err := many.Check(t0); err == nil || !strings.Contains(err.Error(), "more than 10000 entries") {
		t.Errorf("a file with too many entries: %v", err)
	}
}

// A damaged store never lets a revoked cookie back in and never logs everyone out: a running
// store keeps its last good copy (counted), refuses to write over the damage, and a store
// with no copy refuses to start.
func TestDamagedStore(t *testing.T) {
	dir := t.TempDir()
	s, counts := newStore(t, dir)
	u, _ := s.Join(ctx, "", 0)
	if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "alice", t0))); err != nil {
		t.Fatal(err)
	}
	ahead := entry(All, "", "", t0.Add(48*time.Hour))
	damages := map[string][]byte{
		"not JSON":          []byte("{\"version\":1,\"realms\":{\"\":[{"),
		"another version":   []byte(`{"version":2,"realms":{}}`),
		"a bad subject":     []byte(`{"version":1,"realms":{"":[{"kind":"cookie","name":"session","subject":"xyz","before":"2026-12-01T12:00:00Z","until":"2026-12-02T12:00:00Z"}]}}`),
		"an unknown kind":   []byte(`{"version":1,"realms":{"":[{"kind":"user","before":"2026-12-01T12:00:00Z","until":"2026-12-02T12:00:00Z"}]}}`),
		"all far ahead":     []byte(fmt.Sprintf(`{"version":1,"realms":{"":[{"kind":"all","before":%q,"until":%q}]}}`, ahead.Before.Format(time.RFC3339), ahead.Until.Format(time.RFC3339))),
		"until before time": []byte(`{"version":1,"realms":{"":[{"kind":"all","before":"2026-12-01T12:00:00Z","until":"2026-11-02T12:00:00Z"}]}}`),
		"a directory":       nil,
	}
	p := filepath.Join(dir, filepath.FromSlash(StorageKey))
	for name, b := range damages {
		t.Run(name, func(t *testing.T) {
			if b == nil {
				os.Remove(p)
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				defer os.Remove(p)
			} else {
				writeStored(t, dir, b)
			}
			reads := counts.get("read")
			s.Reread(ctx)
			if counts.get("read") != reads+1 {
				t.Error("the failed read was not counted")
			}
			if !cookieRevoked(u.View, "alice", t0) || cookieRevoked(u.View, "bob", t0) {
				t.Error("the last good copy is not in force")
			}
			if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "carol", t0))); err == nil || !strings.Contains(err.Error(), "move it away") {
				t.Errorf("a write over a damaged store: %v", err)
			}
			if b != nil && !bytes.Equal(storedBytes(t, dir), b) {
				t.Error("the damaged store was written over")
			}
			fresh, _ := newStore(t, dir)
			if _, err := fresh.Join(ctx, "", 0); err == nil || !strings.Contains(err.Error(), "move it away") {
				t.Errorf("a fresh instance started on a damaged store: %v", err)
			}
		})
	}
}

// A store that lacks entries an instance holds (deleted, or an older copy put back) is
// written again with them at the next re-read; a missing store with nothing held is empty.
func TestMissingStoreRestored(t *testing.T) {
	dir := t.TempDir()
	s, _ := newStore(t, dir)
	u, _ := s.Join(ctx, "", 0)
	if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "alice", t0))); err != nil {
		t.Fatal(err)
	}
	older := storedBytes(t, dir)
	if _, err := s.Add(ctx, fileOf("", entry(Cookie, "session", "bob", t0))); err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(){
		"deleted":     func() { os.Remove(filepath.Join(dir, filepath.FromSlash(StorageKey))) },
		"older copy":  func() { writeStored(t, dir, older) },
		"emptied out": func() { writeStored(t, dir, []byte(`{"version":1,"realms":{}}`)) },
	} {
		damage()
		s.Reread(ctx)
		f, err := Read(ctx, &certmagic.FileStorage{Path: dir}, t0)
		if err != nil || f.Count() != 2 {
			t.Errorf("%s: the store was not restored: %v %s", name, err, storedBytes(t, dir))
		}
		if !cookieRevoked(u.View, "alice", t0) || !cookieRevoked(u.View, "bob", t0) {
			t.Errorf("%s: a held revocation is not in force", name)
		}
	}
	empty, _ := newStore(t, t.TempDir())
	eu, err := empty.Join(ctx, "", 0)
	if err != nil || !eu.View.Empty() {
		t.Errorf("a missing store: %v", err)
	}
	empty.Reread(ctx)
	if !eu.View.Empty() {
		t.Error("a re-read of a missing store revokes")
	}
}

// Two instances revoking at once, each under the storage lock: no revocation is lost, and
// each instance holds them all after a re-read.
func TestConcurrentRevocations(t *testing.T) {
	dir := t.TempDir()
	a, _ := newStore(t, dir)
	b, _ := newStore(t, dir)
	ua, _ := a.Join(ctx, "", 0)
	ub, _ := b.Join(ctx, "", 0)
	const each = 15
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range each {
		for _, st := range []*Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("%p-%d", st, i)
				if _, err := st.Add(ctx, fileOf("", entry(Cookie, "session", name, t0))); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			}()
		}
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	f, err := Read(ctx, &certmagic.FileStorage{Path: dir}, t0)
	if err != nil || f.Count() != 2*each {
		t.Fatalf("stored %d entries of %d: %v", f.Count(), 2*each, err)
	}
	a.Reread(ctx)
	b.Reread(ctx)
	for i := range each {
		for _, st := range []*Store{a, b} {
			name := fmt.Sprintf("%p-%d", st, i)
			if !cookieRevoked(ua.View, name, t0) || !cookieRevoked(ub.View, name, t0) {
				t.Errorf("%s is not revoked on both instances", name)
			}
		}
	}
}

// Entries are checked whole before any write: a revocation that would not load is refused.
func TestAddChecks(t *testing.T) {
	s, _ := newStore(t, t.TempDir())
	for name, e := range map[string]Entry{
		"far ahead":     entry(All, "", "", t0.Add(25*time.Hour)),
		"no subject":    {Kind: Cookie, Name: "session", Before: t0, Until: t0.Add(time.Hour)},
		"visitor named": {Kind: Visitor, Name: "vid", Subject: SubjectOf(Visitor, "", "x").String(), Before: t0, Until: t0.Add(time.Hour)},
		"no until":      {Kind: All, Before: t0},
	} {
		if _, err := s.Add(ctx, fileOf("", e)); err == nil {
			t.Errorf("%s: stored", name)
		}
	}
}

// testFields are a Flask session's fields, as the engine hands them over.
type testFields map[string]string

func (f testFields) Get(k string) (string, bool) { v, ok := f[k]; return v, ok }
