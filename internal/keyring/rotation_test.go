// Rotation's pure functions, table by table: no storage, no clock.

package keyring

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// sec is a stored secret named by label, created at c (minutes from t0), active and retired at
// a and r (minutes; math.MinInt for none).
func sec(label string, c, a, r int) Secret {
	at := func(m int) time.Time {
		if m == math.MinInt {
			return time.Time{}
		}
		return t0.Add(time.Duration(m) * time.Minute)
	}
	return Secret{Secret: fixedSecret(label), Created: at(c), Active: at(a), Retired: at(r)}
}

const none = math.MinInt

func ring(keep, check time.Duration, secrets ...Secret) *File {
	return &File{Version: Version, Keep: keep, CheckInterval: check, Secrets: secrets}
}

// label names a secret of the tables ("?" for one made by the function under test).
func label(s string) string {
	for _, l := range []string{"a", "b", "c", "d", "known", "old", "future"} {
		if fixedSecret(l) == s {
			return l
		}
	}
	return "?"
}

func describe(f *File) string {
	out := fmt.Sprintf("keep %v check %v:", f.Keep, f.CheckInterval)
	for _, s := range f.Secrets {
		out += fmt.Sprintf(" %s(c%v a%v r%v)", label(s.Secret), mins(s.Created), mins(s.Active), mins(s.Retired))
	}
	return out
}

func mins(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprint(t.Sub(t0))
}

func TestMerge(t *testing.T) {
	settings := Settings{Keep: day, Check: time.Minute, Rotate: time.Hour}
	full := ring(day, time.Minute)
	for i := range MaxSecrets {
		full.Secrets = append(full.Secrets, Secret{Secret: fixedSecret(fmt.Sprint("full ", i)), Created: t0.Add(-time.Duration(i+1) * time.Hour), Retired: t0.Add(-time.Duration(i) * time.Hour)})
	}
	full.Secrets[0].Retired = time.Time{}
	for _, tc := range []struct {
		name    string
		f       *File
		known   []Secret
		s       Settings
		want    string
		why     []string
		dropped int
	}{
		{name: "nothing to do", f: ring(day, time.Minute, sec("a", -10, -10, none)), s: settings,
			want: "keep 24h0m0s check 1m0s: a(c-10m0s a-10m0s r-)"},
		{name: "a longer keep and check recorded, never a shorter", f: ring(time.Hour, 2*time.Hour, sec("a", -10, -10, none)), s: settings,
			want: "keep 24h0m0s check 2h0m0s: a(c-10m0s a-10m0s r-)", why: []string{"keep"}},
		{name: "rotation due: a new secret signs after two check intervals and 2 s", f: ring(day, time.Minute, sec("a", -60, -60, none)), s: settings,
			want: "keep 24h0m0s check 1m0s: ?(c0s a2m2s r-) a(c-1h0m0s a-1h0m0s r2m2s)", why: []string{"rotated"}},
		{name: "the stored check interval sets the wait", f: ring(day, 10*time.Minute, sec("a", -60, -60, none)), s: settings,
			want: "keep 24h0m0s check 10m0s: ?(c0s a20m2s r-) a(c-1h0m0s a-1h0m0s r20m2s)", why: []string{"rotated"}},
		{name: "no rotation while the newest waits to sign", f: ring(day, time.Minute, sec("b", -61, 1, none), sec("a", -120, -120, 1)), s: settings,
			want: "keep 24h0m0s check 1m0s: b(c-1h1m0s a1m0s r-) a(c-2h0m0s a-2h0m0s r1m0s)"},
		{name: "no rotation without a rotation interval", f: ring(day, time.Minute, sec("a", -6000, none, none)), s: Settings{Keep: day, Check: time.Minute},
			want: "keep 24h0m0s check 1m0s: a(c-100h0m0s a- r-)"},
		{name: "known secrets the ring lacks are kept, retired now, after the stored ones", f: ring(day, time.Minute, sec("a", -10, -10, none)),
			known: []Secret{sec("a", -10, -10, none), sec("known", -30, -30, none), sec("old", -3000, -3000, -1500)}, s: settings,
			want: "keep 24h0m0s check 1m0s: a(c-10m0s a-10m0s r-) known(c-30m0s a-30m0s r0s)", why: []string{"kept 1 secrets this process knows"}},
		{name: "an expired secret is pruned but makes no write on its own", f: ring(day, time.Minute, sec("a", -10, -10, none), sec("old", -3000, -3000, -1500)), s: settings,
			want: "keep 24h0m0s check 1m0s: a(c-10m0s a-10m0s r-)"},
		{name: "pruned with a rotation", f: ring(day, time.Minute, sec("a", -60, -60, none), sec("old", -3000, -3000, -1500)), s: settings,
			want: "keep 24h0m0s check 1m0s: ?(c0s a2m2s r-) a(c-1h0m0s a-1h0m0s r2m2s)", why: []string{"rotated", "pruned"}},
		{name: "a newest secret dated in the future: rotation counts from first seen", f: ring(day, time.Minute, sec("future", 525600, none, none)), s: settings,
			want: "keep 24h0m0s check 1m0s: future(c8760h0m0s a- r-)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, why, dropped := Merge(tc.f, tc.known, tc.s, t0, t0)
			if got := describe(m); got != tc.want || !slices.Equal(why, tc.why) || dropped != tc.dropped {
				t.Errorf("got  %s, why %q, dropped %d\nwant %s, why %q, dropped %d", got, why, dropped, tc.want, tc.why, tc.dropped)
			}
			if len(m.Secrets) > 0 && len(tc.f.Secrets) > 0 && &m.Secrets[0] == &tc.f.Secrets[0] {
				t.Error("Merge shares the stored ring's secrets")
			}
		})
	}

	t.Run("the cap drops the oldest", func(t *testing.T) {
		m, why, dropped := Merge(full, nil, Settings{Keep: 400 * day, Check: time.Minute, Rotate: time.Hour}, t0, t0)
		if len(m.Secrets) != MaxSecrets || dropped != 1 || m.Secrets[MaxSecrets-1].Secret != full.Secrets[MaxSecrets-2].Secret || !slices.Contains(why, "rotated") {
			t.Errorf("%d secrets, %d dropped, why %q: want the cap, the oldest one dropped", len(m.Secrets), dropped, why)
		}
	})
	t.Run("known secrets fill the ring up to the cap only", func(t *testing.T) {
		var known []Secret
		for i := range 10 {
			known = append(known, Secret{Secret: fixedSecret(fmt.Sprint("known ", i)), Created: t0.Add(-time.Duration(i) * time.Minute)})
		}
		m, _, _ := Merge(ring(day, time.Minute, full.Secrets[:60]...), known, Settings{Keep: 400 * day, Check: time.Minute}, t0, t0)
		if len(m.Secrets) != MaxSecrets {
			t.Errorf("%d secrets, want the cap", len(m.Secrets))
		}
	})
}

func TestDue(t *testing.T) {
	s := Settings{Keep: day, Check: time.Minute, Rotate: time.Hour}
	for _, tc := range []struct {
		name      string
		f         *File
		s         Settings
		firstSeen time.Time
		want      bool
	}{
		{"empty ring", ring(day, time.Minute), s, t0, true},
		{"newest younger than rotate", ring(day, time.Minute, sec("a", -59, -59, none)), s, t0, false},
		{"newest as old as rotate", ring(day, time.Minute, sec("a", -60, -60, none)), s, t0, true},
		{"no activation time: signs since created", ring(day, time.Minute, sec("a", -60, none, none)), s, t0, true},
		{"newest still waits to sign", ring(day, time.Minute, sec("a", -90, 1, none)), s, t0, false},
		{"no rotation interval", ring(day, time.Minute, sec("a", -9000, -9000, none)), Settings{Check: time.Minute}, t0, false},
		{"dated in the future, just seen", ring(day, time.Minute, sec("future", 525600, none, none)), s, t0, false},
		{"dated in the future, seen rotate ago", ring(day, time.Minute, sec("future", 525600, none, none)), s, t0.Add(-time.Hour), true},
		{"active within the horizon is no future date", ring(day, time.Hour, sec("a", -90, 110, none)), s, t0.Add(-time.Hour), false},
	} {
		if got := Due(tc.f, tc.s, t0, tc.firstSeen); got != tc.want {
			t.Errorf("%s: Due = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFutureDated(t *testing.T) {
	s := Settings{Check: time.Minute}
	for _, tc := range []struct {
		name string
		f    *File
		want bool
	}{
		{"empty", ring(day, time.Minute), false},
		{"now", ring(day, time.Minute, sec("a", 0, 0, none)), false},
		{"activation two check intervals and a minute away", ring(day, time.Minute, sec("a", 0, 3, none)), false},
		{"a second more", ring(day, time.Minute, Secret{Secret: testSecret, Created: t0, Active: t0.Add(3*time.Minute + time.Second)}), true},
		{"created a year ahead", ring(day, time.Minute, sec("a", 525600, none, none)), true},
		{"the stored interval widens the horizon", ring(day, time.Hour, sec("a", 0, 120, none)), false},
	} {
		if got := FutureDated(tc.f, s, t0); got != tc.want {
			t.Errorf("%s: FutureDated = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestRemember(t *testing.T) {
	known := func(secrets ...Secret) map[string]Secret {
		m := map[string]Secret{}
		for _, s := range secrets {
			m[s.Secret] = s
		}
		return m
	}
	labels := func(m map[string]Secret) []string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, label(k))
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		name  string
		known map[string]Secret
		f     *File
		inUse *File
		keep  time.Duration
		want  []string
	}{
		{"the stored ones are added", nil, ring(day, 0, sec("a", 0, 0, none)), nil, day, []string{"a"}},
		{"known ones are kept", known(sec("b", -10, -10, none)), ring(day, 0, sec("a", 0, 0, none)), nil, day, []string{"a", "b"}},
		{"expired ones are forgotten", known(sec("old", -3000, -3000, -1500)), ring(day, 0, sec("a", 0, 0, none)), nil, day, []string{"a"}},
		{"the stored keep counts when longer", known(sec("old", -3000, -3000, -1500)), ring(30*day, 0, sec("a", 0, 0, none)), nil, day, []string{"a", "old"}},
		{"the stored and in-use ones stay even if expired", known(sec("old", -3000, -3000, -1500)), ring(day, 0, sec("a", 0, 0, none)), ring(day, 0, sec("old", -3000, -3000, -1500)), day, []string{"a", "old"}},
	} {
		got := Remember(tc.known, tc.f, tc.inUse, tc.keep, t0)
		if !slices.Equal(labels(got), tc.want) {
			t.Errorf("%s: knows %v, want %v", tc.name, labels(got), tc.want)
		}
		if tc.known != nil && len(tc.known) != 1 {
			t.Errorf("%s: Remember changed the map it was given", tc.name)
		}
	}

	t.Run("at most MaxSecrets beyond the stored ones, the newest", func(t *testing.T) {
		k := map[string]Secret{}
		for i := range 2 * MaxSecrets {
			s := Secret{Secret: fixedSecret(fmt.Sprint("extra ", i)), Created: t0.Add(-time.Duration(i) * time.Minute)}
			k[s.Secret] = s
		}
		got := Remember(k, ring(day, 0, sec("a", 0, 0, none)), nil, day, t0)
		if len(got) != MaxSecrets+1 {
			t.Fatalf("knows %d, want %d", len(got), MaxSecrets+1)
		}
		if _, ok := got[fixedSecret(fmt.Sprint("extra ", MaxSecrets-1))]; !ok {
			t.Error("the newest extras were not the ones kept")
		}
	})
}

func TestReorderAndSigner(t *testing.T) {
	for _, tc := range []struct {
		name   string
		f      *File
		known  []Secret
		signer int
		want   []string
	}{
		{"the newest active one signs", ring(day, 0, sec("b", -10, -10, none), sec("a", -60, -60, -10)), nil, 0, []string{"b"}},
		{"a waiting one verifies", ring(day, 0, sec("b", -1, 1, none), sec("a", -60, -60, 1)), []Secret{sec("b", -1, 1, none), sec("a", -60, -60, 1)}, 1, []string{"a", "b"}},
		{"none active: the oldest signs", ring(day, 0, sec("b", -1, 2, none), sec("a", -2, 1, none)), nil, 1, []string{"a"}},
		{"no activation time: active", ring(day, 0, sec("a", 5, none, none)), nil, 0, []string{"a"}},
		{"known ones verify, newest first", ring(day, 0, sec("a", -10, -10, none)), []Secret{sec("c", -1, -1, none), sec("a", -10, -10, none), sec("b", -20, -20, -1)}, 0, []string{"a", "c", "b"}},
	} {
		if got := tc.f.Signer(t0); got != tc.signer {
			t.Errorf("%s: Signer = %d, want %d", tc.name, got, tc.signer)
		}
		var got []string
		for _, s := range Reorder(tc.f, tc.known, t0) {
			got = append(got, label(s))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: Reorder = %v, want %v", tc.name, got, tc.want)
		}
	}

	var known []Secret
	for i := range 2 * MaxSecrets {
		known = append(known, Secret{Secret: fixedSecret(fmt.Sprint(i)), Created: t0})
	}
	if n := len(Reorder(ring(day, 0, sec("a", 0, 0, none)), known, t0)); n != MaxSecrets {
		t.Errorf("Reorder uses %d secrets, want at most %d", n, MaxSecrets)
	}
}

func TestNewestFirst(t *testing.T) {
	m := map[string]Secret{}
	for _, s := range []Secret{sec("b", -20, none, none), sec("a", -10, none, none), sec("c", -20, none, none), sec("d", -30, none, none)} {
		m[s.Secret] = s
	}
	var got []string
	for _, s := range NewestFirst(m) {
		got = append(got, label(s.Secret))
	}
	tie := []string{"b", "c"} // by secret, in a fixed order
	if fixedSecret("c") < fixedSecret("b") {
		tie = []string{"c", "b"}
	}
	if want := append(append([]string{"a"}, tie...), "d"); !slices.Equal(got, want) {
		t.Errorf("NewestFirst = %v, want %v", got, want)
	}
}

func TestStateOf(t *testing.T) {
	f := ring(day, time.Minute,
		sec("c", -1, 2, none),      // waits
		sec("b", -60, -60, 2),      // signs until c does
		sec("a", -120, -120, -60),  // verifies until retired + keep
		sec("d", -200, -200, none), // verifies (no retirement recorded)
	)
	for i, want := range []State{
		{Waits, t0.Add(2 * time.Minute)},
		{Signs, t0.Add(2 * time.Minute)},
		{Verifies, t0.Add(-time.Hour + day)},
		{Verifies, time.Time{}},
	} {
		if got := StateOf(f, i, t0); got != want {
			t.Errorf("secret %d: %+v, want %+v", i+1, got, want)
		}
	}
	if got := StateOf(ring(day, 0, sec("a", 0, 0, none)), 0, t0); got != (State{Kind: Signs}) {
		t.Errorf("the only secret: %+v", got)
	}
	early := ring(day, 0, sec("b", -1, 2, none), sec("a", -2, 1, none))
	if got := StateOf(early, 1, t0); got != (State{Kind: SignsOldest}) {
		t.Errorf("none active yet, the oldest: %+v", got)
	}
}

func TestNextRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *File
		want time.Time
	}{
		{"rotate after creation", ring(day, 0, sec("a", -10, -10, none)), t0.Add(50 * time.Minute)},
		{"not before it signs", ring(day, 0, sec("a", -10, 70, none)), t0.Add(70 * time.Minute)},
		{"no activation time", ring(day, 0, sec("a", -10, none, none)), t0.Add(50 * time.Minute)},
	} {
		if got := NextRotation(tc.f, time.Hour); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// ShortestSafeRotate is a rotation interval with which a ring rotated as fast as it may be,
// for three times keep, never drops a secret whose cookies may be valid; shorter ones drop.
func TestShortestSafeRotate(t *testing.T) {
	for _, tc := range []struct {
		keep, check time.Duration
		want        time.Duration
	}{
		{365 * day, time.Minute, 6 * day},
		{400 * day, time.Minute, 7 * day},
		{30 * day, time.Hour, 12 * time.Hour},
		{time.Hour, time.Second, 58 * time.Second},
		{0, time.Second, time.Second},
		{math.MaxInt64, math.MaxInt64, 0}, // 0: at least the exact bound, no overflow
	} {
		got := ShortestSafeRotate(tc.keep, tc.check)
		if tc.want == 0 && got < math.MaxInt64/(MaxSecrets-1) || tc.want != 0 && got != tc.want {
			t.Errorf("ShortestSafeRotate(%v, %v) = %v, want %v", tc.keep, tc.check, got, tc.want)
		}
		if tc.keep == math.MaxInt64 || tc.keep == 0 {
			continue
		}
		if dropped := simulate(tc.keep, tc.check, got); dropped != 0 {
			t.Errorf("keep %v, check %v: rotating every %v dropped %d secrets", tc.keep, tc.check, got, dropped)
		}
		exact := (tc.keep + ActivationDelay(tc.check)) / (MaxSecrets - 1)
		if dropped := simulate(tc.keep, tc.check, exact*9/10); dropped == 0 {
			t.Errorf("keep %v, check %v: rotating every %v dropped nothing: the bound is not tight", tc.keep, tc.check, exact*9/10)
		}
	}
	if d := ActivationDelay(math.MaxInt64); d != math.MaxInt64 {
		t.Errorf("ActivationDelay overflows: %v", d)
	}
}

// simulate rotates a ring every rotate, as soon as it may, for three times keep (and at least
// 3*MaxSecrets rotations), and counts the secrets the cap dropped.
func simulate(keep, check, rotate time.Duration) (dropped int) {
	s := Settings{Keep: keep, Check: check, Rotate: rotate}
	f := Fresh(t0, time.Minute)
	f.Keep, f.CheckInterval = keep, check
	for n := 0; n < 3*MaxSecrets || f.Secrets[0].Created.Sub(t0) < 3*keep; n++ {
		now := NextRotation(f, rotate)
		m, why, d := Merge(f, nil, s, now, now)
		if !slices.Contains(why, "rotated") {
			panic(fmt.Sprintf("no rotation at %v: %v", now, why))
		}
		f, dropped = m, dropped+d
	}
	return dropped
}

func TestActiveFrom(t *testing.T) {
	if got := ActiveFrom(sec("a", -10, none, none)); !got.Equal(t0.Add(-10 * time.Minute)) {
		t.Errorf("no activation time: %v, want the creation", got)
	}
	if got := ActiveFrom(sec("a", -10, 5, none)); !got.Equal(t0.Add(5 * time.Minute)) {
		t.Errorf("%v, want the activation time", got)
	}
	if f := Fresh(t0.Add(1500*time.Millisecond), time.Minute); len(f.Secrets) != 1 || !f.Secrets[0].Created.Equal(t0.Add(time.Second)) || !f.Secrets[0].Active.Equal(f.Secrets[0].Created) || f.Check() != nil {
		t.Errorf("Fresh: %+v", f)
	}
}
