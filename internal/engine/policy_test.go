package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

func TestCompose(t *testing.T) {
	ring1, ring2 := testRing(t, "compose 1"), testRing(t, "compose 2")
	sign1 := cookie.NewCodec(ring1, cookie.Options{MaxAge: time.Hour})
	encr1 := cookie.NewCodec(ring1, cookie.Options{Encrypt: true, MaxAge: time.Hour})
	sign2 := cookie.NewCodec(ring2, cookie.Options{MaxAge: time.Hour})
	visitor := func(name, fingerprint string) *Visitor {
		return &Visitor{Name: name, Codec: sign1, MaxAge: time.Hour, Path: "/", Fingerprint: fingerprint}
	}
	// key1 and key2 configure policies over different keys; the rest adjusts them.
	key1 := func(c *Config) { c.SignCodec, c.EncryptCodec, c.KeyID, c.MaxAge = sign1, encr1, "k1", time.Hour }
	key2 := func(c *Config) { c.SignCodec, c.EncryptCodec, c.KeyID, c.MaxAge = sign2, sign2, "k2", time.Hour }
	sign := func(names ...string) func(*Config) { return func(c *Config) { c.Sign = names } }
	encrypt := func(names ...string) func(*Config) { return func(c *Config) { c.Encrypt = names } }
	maxAge := func(d time.Duration) func(*Config) { return func(c *Config) { c.MaxAge = d } }
	track := func(v *Visitor) func(*Config) { return func(c *Config) { c.Visitor = v } }
	policy := func(name string, edits ...func(*Config)) *Policy {
		c := Config{Name: name}
		for _, e := range edits {
			e(&c)
		}
		p, err := New(c)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	for _, tc := range []struct {
		desc       string
		a, b       []func(*Config)
		compatible bool
	}{
		{"disjoint names", []func(*Config){key1, sign("session")}, []func(*Config){key2, sign("cart")}, true},
		{"disjoint globs", []func(*Config){key1, sign("a_*")}, []func(*Config){key2, sign("b_*")}, true},
		{"nothing managed", nil, []func(*Config){key2, sign("session")}, true},
		{"same name, same keys and max age", []func(*Config){key1, sign("session")}, []func(*Config){key1, sign("session", "other")}, true},
		{"same glob, same keys", []func(*Config){key1, sign("sess_*")}, []func(*Config){key1, sign("sess_a")}, true},
		{"same name, other keys", []func(*Config){key1, sign("session")}, []func(*Config){key2, sign("session")}, false},
		{"same name, other max age", []func(*Config){key1, sign("session")}, []func(*Config){key1, sign("session"), maxAge(2 * time.Hour)}, false},
		{"signed here, encrypted there", []func(*Config){key1, sign("session")}, []func(*Config){key1, encrypt("session")}, false},
		{"look-alike names", []func(*Config){key1, sign("Session")}, []func(*Config){key1, sign("session")}, false},
		{"look-alike by PHP's mangling", []func(*Config){key1, sign("sess.id")}, []func(*Config){key2, sign("sess_id")}, false},
		{"glob and a name it matches, other keys", []func(*Config){key1, sign("sess_*")}, []func(*Config){key2, sign("sess_a")}, false},
		{"glob and a look-alike", []func(*Config){key1, sign("sess_*")}, []func(*Config){key1, sign("SESS_A")}, false},
		{"overlapping globs, other keys", []func(*Config){key1, sign("sess_*")}, []func(*Config){key2, sign("*_id")}, false},
		{"the other's visitor cookie", []func(*Config){key1, track(visitor("vid", "f"))}, []func(*Config){key1, sign("vid")}, false},
		{"a look-alike of the visitor cookie", []func(*Config){key1, track(visitor("vid", "f"))}, []func(*Config){key1, sign("VID")}, false},
		{"different visitor cookies", []func(*Config){key1, track(visitor("vid", "f1"))}, []func(*Config){key1, track(visitor("uid", "f2"))}, false},
		{"one visitor, configured differently", []func(*Config){key1, track(visitor("vid", "f1"))}, []func(*Config){key1, track(visitor("vid", "f2"))}, false},
		{"one visitor, other keys", []func(*Config){key1, track(visitor("vid", "f"))}, []func(*Config){key2, track(visitor("vid", "f"))}, false},
		{"identical visitors", []func(*Config){key1, track(visitor("vid", "f")), sign("a")}, []func(*Config){key1, track(visitor("vid", "f")), sign("b")}, true},
		{"one visitor only", []func(*Config){key1, track(visitor("vid", "f"))}, []func(*Config){key2, sign("session")}, true},
	} {
		for _, swap := range []bool{false, true} {
			ea, eb := tc.a, tc.b
			if swap {
				ea, eb = eb, ea
			}
			earlier, later := policy("first", ea...), policy("second", eb...)
			err := Compose(earlier, later)
			if (err == nil) != tc.compatible {
				t.Errorf("%s (swapped %v): %v, want compatible %v", tc.desc, swap, err, tc.compatible)
				continue
			}
			if err == nil {
				continue
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || ce.Earlier != "first" || ce.Later != "second" || ce.Why == "" {
				t.Errorf("%s: error %#v", tc.desc, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "first") || !strings.Contains(msg, "second") {
				t.Errorf("%s: %q does not name both policies", tc.desc, msg)
			}
			// The verdict is kept: the second check answers the same.
			if again := Compose(earlier, later); again == nil || again.Error() != err.Error() {
				t.Errorf("%s: second check %v", tc.desc, again)
			}
		}
	}
}
