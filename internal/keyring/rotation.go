// Rotation as pure functions of the stored ring, the secrets a process knows, the settings of
// its handlers and the time: what to add to storage (Merge), when a new secret is due (Due),
// which secrets to keep in memory (Remember) and in what order to use them (Reorder). Nothing
// here reads storage or a clock.

package keyring

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// activationMargin is what a rotated-in secret waits beyond two of the slowest re-read
// intervals before it signs: the margin that keeps on-demand re-reads from missing it.
const activationMargin = 2 * onDemandEvery

// Settings are what the handlers sharing a ring ask of it.
type Settings struct {
	Keep   time.Duration // the longest cookie lifetime: how long a retired secret still verifies
	Check  time.Duration // the slowest re-read interval
	Rotate time.Duration // the shortest rotation interval; 0: never due (a ring with no handler)
	Every  time.Duration // the fastest re-read interval: how often this process re-reads
}

// ActivationDelay is how long after its creation a rotated-in secret starts signing, when the
// slowest sharer re-reads every check: two of its re-reads, and the margin. (The stored
// activation time is rounded up to the second.)
func ActivationDelay(check time.Duration) time.Duration {
	return satAdd(satDouble(check), activationMargin)
}

// ShortestSafeRotate is the shortest rotation interval with which the ring never drops a
// secret whose cookies may still be valid: a secret stays from its creation until a rotation
// interval, an activation delay and keep later, so (keep + delay) / rotate + 2 secrets are
// stored at once, and at most MaxSecrets can be. It is rounded up to whole days, hours, minutes
// or seconds.
func ShortestSafeRotate(keep, check time.Duration) time.Duration {
	delay := satAdd(ActivationDelay(check), time.Second) // the rounding of the activation time
	d := satAdd(keep, delay)/(MaxSecrets-1) + 1
	for _, unit := range []time.Duration{24 * time.Hour, time.Hour, time.Minute, time.Second} {
		if d > unit && d <= math.MaxInt64-unit || unit == time.Second {
			return satAdd(d, unit-1) / unit * unit
		}
	}
	return d
}

// Fresh is a new ring: one secret, signing from now, made by an instance that re-reads it
// every check (recorded, as every ring this release writes records one).
func Fresh(now time.Time, check time.Duration) *File {
	now = now.UTC().Truncate(time.Second)
	return &File{Version: Version, Secrets: []Secret{{Secret: cookie.NewSecret(), Created: now, Active: now}}, CheckInterval: check}
}

// ActiveFrom is when a stored secret signs from: its activation time, or its creation when it
// has none (it has signed since it was stored).
func ActiveFrom(s Secret) time.Time {
	if s.Active.IsZero() {
		return s.Created
	}
	return s.Active
}

// signsAt is when the rotation logic considers s signing: the later of its creation and
// activation.
func signsAt(s Secret) time.Time {
	if s.Active.After(s.Created) {
		return s.Active
	}
	return s.Created
}

// Signer is the index of the secret that signs at now: the newest one already active (one
// stored without an activation time always is), else the oldest, for want of any other.
func (f *File) Signer(now time.Time) int {
	for i, s := range f.Secrets {
		if !s.Active.After(now) {
			return i
		}
	}
	return len(f.Secrets) - 1
}

// Merge returns f with what a process adds to it: the secrets it knows that f lacks and whose
// cookies may still be valid (a ring deleted or replaced under running instances must not log
// anyone out; they verify only), the settings s where they exceed f's, and a new secret when
// one is due (see Due; firstSeen is when the process first saw f's newest secret). why lists
// the changes (none: f needs no write); dropped counts secrets within keep that the cap pushed
// out. known is newest first (NewestFirst).
func Merge(f *File, known []Secret, s Settings, now, firstSeen time.Time) (m *File, why []string, dropped int) {
	now = now.UTC()
	m = &File{Version: Version, Secrets: slices.Clone(f.Secrets), Keep: f.Keep, CheckInterval: f.CheckInterval}
	if len(f.Secrets) > 0 && f.CheckInterval == 0 {
		// Secrets without an interval: a release that records none wrote the ring (0.1.0,
		// rotating it); its instances re-read at their default until they are gone.
		s.Check = max(s.Check, UnrecordedCheckInterval)
	}
	if s.Keep > m.Keep {
		m.Keep, why = s.Keep, append(why, "keep")
	}
	if s.Check > m.CheckInterval {
		m.CheckInterval, why = s.Check, append(why, "check_interval")
	}
	inFile := make(map[string]bool, len(m.Secrets))
	for _, x := range m.Secrets {
		inFile[x.Secret] = true
	}
	expired := func(x Secret) bool { return !x.Retired.IsZero() && now.Sub(x.Retired) > m.Keep }
	restored := 0
	for _, x := range known {
		if inFile[x.Secret] || expired(x) || len(m.Secrets) >= MaxSecrets {
			continue
		}
		if x.Retired.IsZero() {
			x.Retired = now.Truncate(time.Second) // it signed there; the stored ring's signer takes over
		}
		m.Secrets = append(m.Secrets, x) // after the stored ones: they verify only
		restored++
	}
	if restored > 0 {
		why = append(why, fmt.Sprintf("kept %d secrets this process knows", restored))
	}
	if Due(m, s, now, firstSeen) {
		// Every instance re-reads within CheckInterval: two of them, and the margin, pass
		// before it signs.
		active := now.Add(ActivationDelay(m.CheckInterval))
		fresh := Secret{Secret: cookie.NewSecret(), Created: now.Truncate(time.Second), Active: active.Add(time.Second - 1).Truncate(time.Second)}
		for i := range m.Secrets {
			if m.Secrets[i].Retired.IsZero() {
				m.Secrets[i].Retired = fresh.Active
			}
		}
		m.Secrets = append([]Secret{fresh}, m.Secrets...)
		why = append(why, "rotated")
	}
	before := len(m.Secrets)
	m.Secrets = slices.DeleteFunc(m.Secrets, expired)
	if len(m.Secrets) > MaxSecrets {
		for _, x := range m.Secrets[MaxSecrets:] {
			if !expired(x) {
				dropped++
			}
		}
		m.Secrets = m.Secrets[:MaxSecrets] // the oldest go, even if cookies they signed live on
	}
	if len(m.Secrets) != before && len(why) > 0 {
		why = append(why, "pruned")
	}
	return m, why, dropped
}

// FutureDated reports whether f's newest secret signs later than any rotation can make it
// wait (two check intervals and a few seconds; a minute allowed): a clock that jumped.
func FutureDated(f *File, s Settings, now time.Time) bool {
	if len(f.Secrets) == 0 {
		return false
	}
	horizon := satDouble(max(f.CheckInterval, s.Check)) + time.Minute
	return signsAt(f.Secrets[0]).Sub(now) > horizon
}

// Due reports whether f must get a new signing secret: its newest one is older than the
// rotation interval and already signs (rotating while it still waits would pile up secrets
// nobody signs with, when a sharer re-reads slowly). A newest secret dated in the future
// (FutureDated) would stall rotation until that date: it counts from firstSeen, when the
// process first saw it, instead.
func Due(f *File, s Settings, now, firstSeen time.Time) bool {
	if len(f.Secrets) == 0 {
		return true
	}
	if s.Rotate <= 0 {
		return false
	}
	newest := f.Secrets[0]
	if FutureDated(f, s, now) {
		return now.Sub(firstSeen) >= s.Rotate
	}
	if signsAt(newest).After(now) {
		return false
	}
	return now.Sub(newest.Created) >= s.Rotate
}

// NextRotation is when a process rotating every rotate next adds a secret to f (at its first
// re-read from then on).
func NextRotation(f *File, rotate time.Duration) time.Time {
	newest := f.Secrets[0]
	if due, active := newest.Created.Add(rotate), ActiveFrom(newest); due.After(active) {
		return due
	}
	return ActiveFrom(newest)
}

// Remember returns the secrets a process knows after reading f: those it knew and f's, less
// those whose cookies cannot be valid any more (retired more than keep ago). Beyond the
// secrets in f and in inUse (the ring in use, which may not be f yet; nil for none), it keeps
// at most MaxSecrets, the newest: no more could be used or stored.
func Remember(known map[string]Secret, f, inUse *File, keep time.Duration, now time.Time) map[string]Secret {
	out := maps.Clone(known)
	if out == nil {
		out = map[string]Secret{}
	}
	keep = max(keep, f.Keep)
	held := make(map[string]bool, len(f.Secrets))
	for _, s := range f.Secrets {
		out[s.Secret] = s
		held[s.Secret] = true
	}
	if inUse != nil {
		for _, s := range inUse.Secrets {
			held[s.Secret] = true
		}
	}
	var extra []Secret
	for k, s := range out {
		switch {
		case held[k]:
		case !s.Retired.IsZero() && now.Sub(s.Retired) > keep:
			delete(out, k)
		default:
			extra = append(extra, s)
		}
	}
	if len(extra) > MaxSecrets {
		slices.SortFunc(extra, newerFirst)
		for _, s := range extra[MaxSecrets:] {
			delete(out, s.Secret)
		}
	}
	return out
}

// NewestFirst lists known secrets by creation, newest first (ties in a fixed order).
func NewestFirst(known map[string]Secret) []Secret {
	return slices.SortedFunc(maps.Values(known), newerFirst)
}

func newerFirst(a, b Secret) int {
	if c := b.Created.Compare(a.Created); c != 0 {
		return c
	}
	return strings.Compare(a.Secret, b.Secret)
}

// Reorder is the secrets in use at now: first the secret of f that signs (Signer), then every
// other secret known (newest first), which verify; at most MaxSecrets in all.
func Reorder(f *File, known []Secret, now time.Time) []string {
	order := make([]string, 0, min(len(known)+1, MaxSecrets))
	order = append(order, f.Secrets[f.Signer(now)].Secret)
	for _, s := range known {
		if len(order) == MaxSecrets {
			break
		}
		if s.Secret != order[0] {
			order = append(order, s.Secret)
		}
	}
	return order
}

// StateKind is what a stored secret does.
type StateKind int

const (
	Waits       StateKind = iota // rotated in, verifies, signs from State.At
	SignsOldest                  // signs although not active yet: no secret is, and it is the oldest
	Signs                        // signs; until State.At when a newer one is to take over
	Verifies                     // verifies only; until State.At (retired + keep) when retired
)

// State is what secret i of f does at now.
type State struct {
	Kind StateKind
	At   time.Time // Waits: when it signs; Signs: when it retires; Verifies: when it goes (zero: not known)
}

// StateOf says what secret i of f does at now.
func StateOf(f *File, i int, now time.Time) State {
	s, signer := f.Secrets[i], f.Signer(now)
	switch {
	case i < signer:
		return State{Waits, s.Active}
	case i == signer && s.Active.After(now):
		return State{Kind: SignsOldest}
	case i == signer:
		if s.Retired.After(now) {
			return State{Signs, s.Retired}
		}
		return State{Kind: Signs}
	case s.Retired.IsZero():
		return State{Kind: Verifies}
	default:
		return State{Verifies, s.Retired.Add(f.Keep)}
	}
}

// satDouble is 2*d, and satAdd a+b, for durations that are not negative, without overflowing.
func satDouble(d time.Duration) time.Duration { return satAdd(d, d) }

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
