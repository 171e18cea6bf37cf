// The stored revocations: their format, the subjects as they are kept (hashed, never the
// values), the whole-file check a store passes before anything builds on it or writes over
// it, and the merge that makes every write a union (entries leave only by expiring).

package revoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/signedcookies/caddy-signedcookies/internal/keyring"
)

const (
	// StorageKey is where the revocations are stored, beside the key ring; LockName the
	// storage lock their writers take.
	StorageKey = "signed_cookies/revocations.json"
	LockName   = "signed_cookies_revocations"
	// Version is the stored format's version.
	Version = 1
	// MaxEntries bounds the entries of one store, all realms together: what every instance
	// re-reads and holds in memory. An emergency brake (All) takes one entry per realm.
	MaxEntries = 10000
	// MaxFileBytes is far above what MaxEntries take (about 170 bytes each).
	MaxFileBytes = 4 << 20
	// MaxAhead is how far in the future an entry's Before may lie: a revocation covers
	// cookies issued before it, and one far ahead would log out every new session until then.
	MaxAhead = 24 * time.Hour
	// maxRealmLen is the longest realm (the handlers' realm check allows 128 bytes).
	maxRealmLen = 128
)

// Kind is what an entry revokes.
type Kind string

// Kinds of entries.
const (
	// Visitor revokes a visitor ID: its cookie stops verifying and a new ID is issued.
	Visitor Kind = "visitor"
	// Cookie revokes a managed cookie's plain value, by cookie name.
	Cookie Kind = "cookie"
	// Flask revokes the Flask sessions whose field Name holds a value.
	Flask Kind = "flask"
	// All revokes everything of the realm signed at or before Before (the emergency brake).
	All Kind = "all"
)

// File is the stored object: each realm's entries.
type File struct {
	Version int                `json:"version"`
	Realms  map[string][]Entry `json:"realms"`
}

// Entry is one revocation: the subject's cookies signed at or before Before no longer verify.
type Entry struct {
	Kind Kind `json:"kind"`
	// Name is the cookie's name (Cookie) or the session's field (Flask); empty otherwise.
	Name string `json:"name,omitempty"`
	// Subject is the hex of the first 16 bytes of SHA-256 over the kind, the name and the
	// value (see SubjectOf): the store never holds a value or an ID. Empty for All.
	Subject string `json:"subject,omitempty"`
	// Before: cookies signed at or before it (whole seconds) are revoked.
	Before time.Time `json:"before"`
	// Until is when no cookie signed at or before Before can verify any more: the entry is
	// dropped then.
	Until time.Time `json:"until"`
}

// key is what makes an entry the same as another: a later revocation of the same subject
// replaces it (the later Before and Until win).
type key struct {
	realm   string
	kind    Kind
	name    string
	subject string
}

// subjectPrefix separates this use of SHA-256 from any other.
const subjectPrefix = "signed_cookies revocation\x00"

// Subject is the hashed form of what an entry names.
type Subject [16]byte

// SubjectOf hashes a subject: the kind, the name (empty for Visitor) and the value (a
// visitor ID's 16 bytes, a cookie's plain value, a session field as flask_session exposes
// it). It allocates nothing for values up to about 200 bytes.
func SubjectOf[T string | []byte](kind Kind, name string, value T) Subject {
	var buf [256]byte
	b := append(buf[:0], subjectPrefix...)
	b = append(b, kind...)
	b = append(b, 0)
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, value...)
	sum := sha256.Sum256(b)
	return Subject(sum[:16])
}

func (s Subject) String() string { return hex.EncodeToString(s[:]) }

// moveAway ends every error about a stored file that cannot be used: what to do about it.
const moveAway = "move it away: running instances then store the revocations they hold again"

// Read loads the stored revocations and checks them, whole (Check). A missing store is an
// error that matches fs.ErrNotExist.
func Read(ctx context.Context, stor certmagic.Storage, now time.Time) (*File, error) {
	b, err := keyring.LoadBounded(ctx, stor, StorageKey, MaxFileBytes, "a revocation store")
	var be *keyring.BoundError
	if errors.As(err, &be) {
		return nil, fmt.Errorf("%v; %s", err, moveAway)
	}
	if err != nil {
		return nil, err
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s in %s is not a revocation store (%v); %s", StorageKey, keyring.StorageName(stor), err, moveAway)
	}
	if err := f.Check(now); err != nil {
		return nil, fmt.Errorf("%s in %s: %v; %s", StorageKey, keyring.StorageName(stor), err, moveAway)
	}
	return &f, nil
}

// Check validates the whole file, in time linear in its size: version, count, realms, each
// entry, duplicates.
func (f *File) Check(now time.Time) error {
	if f.Version != Version {
		return fmt.Errorf("unsupported version %d", f.Version)
	}
	n := 0
	seen := map[key]bool{}
	for realm, entries := range f.Realms {
		if len(realm) > maxRealmLen || strings.ContainsFunc(realm, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
			return fmt.Errorf("realm %.40q is not a realm", realm)
		}
		n += len(entries)
		if n > MaxEntries {
			return fmt.Errorf("more than %d entries", MaxEntries)
		}
		for i, e := range entries {
			if err := e.check(now); err != nil {
				return fmt.Errorf("realm %q entry %d: %v", realm, i+1, err)
			}
			k := key{realm, e.Kind, e.Name, e.Subject}
			if seen[k] {
				return fmt.Errorf("realm %q entry %d repeats an earlier one", realm, i+1)
			}
			seen[k] = true
		}
	}
	return nil
}

func (e *Entry) check(now time.Time) error {
	switch e.Kind {
	case All:
		if e.Name != "" || e.Subject != "" {
			return errors.New("kind all names no subject")
		}
	case Visitor, Cookie, Flask:
		if b, err := hex.DecodeString(e.Subject); err != nil || len(b) != len(Subject{}) {
			return fmt.Errorf("subject %.40q is not 32 hex digits", e.Subject)
		}
		if (e.Kind == Visitor) != (e.Name == "") {
			return fmt.Errorf("kind %s with name %.40q", e.Kind, e.Name)
		}
		if strings.ContainsFunc(e.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) || len(e.Name) > 256 {
			return errors.New("a name with control characters or longer than 256 bytes")
		}
	default:
		return fmt.Errorf("unknown kind %.20q", e.Kind)
	}
	switch {
	case e.Before.IsZero() || e.Until.IsZero():
		return errors.New("no before or until time")
	case e.Until.Before(e.Before):
		return errors.New("until is before before")
	case e.Before.After(now.Add(MaxAhead)):
		// it would log out every session issued until then: refused, not obeyed
		return fmt.Errorf("before %s is more than %s ahead", e.Before.UTC().Format(time.RFC3339), MaxAhead)
	}
	return nil
}

// Merge is the union of the files' entries still in force at now: for one subject, the
// latest Before and Until. It reports how many entries it holds. Entries within a realm are
// sorted (by kind, name, subject) so that equal contents store equal bytes.
func Merge(now time.Time, files ...*File) (*File, int) {
	merged := map[key]Entry{}
	for _, f := range files {
		if f == nil {
			continue
		}
		for realm, entries := range f.Realms {
			for _, e := range entries {
				if e.Until.Before(now) {
					continue
				}
				k := key{realm, e.Kind, e.Name, e.Subject}
				if prev, ok := merged[k]; ok {
					e.Before, e.Until = later(prev.Before, e.Before), later(prev.Until, e.Until)
				}
				merged[k] = e
			}
		}
	}
	out := &File{Version: Version, Realms: map[string][]Entry{}}
	for k, e := range merged {
		out.Realms[k.realm] = append(out.Realms[k.realm], e)
	}
	for _, entries := range out.Realms {
		slices.SortFunc(entries, func(a, b Entry) int {
			return strings.Compare(string(a.Kind)+"\x00"+a.Name+"\x00"+a.Subject, string(b.Kind)+"\x00"+b.Name+"\x00"+b.Subject)
		})
	}
	return out, len(merged)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// covers reports whether f holds every entry of g in force at now, as late or later.
func covers(f, g *File, now time.Time) bool {
	if g == nil {
		return true
	}
	have := map[key]Entry{}
	if f != nil {
		for realm, entries := range f.Realms {
			for _, e := range entries {
				have[key{realm, e.Kind, e.Name, e.Subject}] = e
			}
		}
	}
	for realm, entries := range g.Realms {
		for _, e := range entries {
			if e.Until.Before(now) {
				continue
			}
			h, ok := have[key{realm, e.Kind, e.Name, e.Subject}]
			if !ok || h.Before.Before(e.Before) || h.Until.Before(e.Until) {
				return false
			}
		}
	}
	return true
}

// Count is how many entries f holds.
func (f *File) Count() int {
	n := 0
	if f != nil {
		for _, entries := range f.Realms {
			n += len(entries)
		}
	}
	return n
}
