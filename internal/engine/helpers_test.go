package engine

import (
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
)

// testSecret is a fixed 32-byte secret named by label: reproducible, yet as random-looking as
// a real one (the cookie package refuses secrets that are plainly text). It is the cookie
// package's own test secret, so the values in the fuzz corpora still verify.
func testSecret(label string) []byte {
	s := sha256.Sum256([]byte(label))
	return s[:]
}

// testRing is a key ring of one key per label, the first signing.
func testRing(tb testing.TB, labels ...string) *cookie.KeyRing {
	tb.Helper()
	var secrets [][]byte
	for _, l := range labels {
		secrets = append(secrets, testSecret(l))
	}
	r, err := cookie.NewKeyRing(secrets...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func at(ts int64) func() time.Time { return func() time.Time { return time.Unix(ts, 0) } }

// t0 is a realistic signing time (10 digits, like every timestamp until 2286).
const t0 = 1764100000

// testPolicy manages the visitor cookie "vid" (verified, never forwarded as it is), "enc"
// (encrypted), and "session" and "sess_*" (signed). Values are signed at t0, and the codecs
// accept them for an hour.
type testPolicy struct {
	*Policy
	ring            *cookie.KeyRing
	sign, encr, vid *cookie.Codec
}

// testVisitorID is a visitor ID: the visitor cookie's plain value.
var testVisitorID = []byte("0123456789abcdef")

// newTestPolicy builds the test policy over ring (nil: a one-key ring); edit adjusts the
// configuration first.
func newTestPolicy(tb testing.TB, ring *cookie.KeyRing, edit ...func(*Config)) testPolicy {
	tb.Helper()
	if ring == nil {
		ring = testRing(tb, "jar")
	}
	tp := testPolicy{
		ring: ring,
		sign: cookie.NewCodec(ring, cookie.Options{MaxAge: time.Hour, Now: at(t0)}),
		encr: cookie.NewCodec(ring, cookie.Options{Encrypt: true, MaxAge: time.Hour, Now: at(t0)}),
		vid:  cookie.NewCodec(ring, cookie.Options{MaxAge: 400 * 24 * time.Hour, Now: at(t0)}),
	}
	c := Config{
		Visitor: &Visitor{Name: "vid", Codec: tp.vid, MaxAge: 400 * 24 * time.Hour, Refresh: 24 * time.Hour,
			Path: "/", Fingerprint: "vid"},
		Encrypt:      []string{"enc"},
		Sign:         []string{"session", "sess_*"},
		SignCodec:    tp.sign,
		EncryptCodec: tp.encr,
		MaxAge:       time.Hour,
		KeyID:        "jar",
		Name:         "test policy",
	}
	for _, e := range edit {
		e(&c)
	}
	var err error
	if tp.Policy, err = New(c); err != nil {
		tb.Fatal(err)
	}
	return tp
}

// signed encodes plain for name with the codec of the rule managing name.
func (tp testPolicy) signed(tb testing.TB, name, plain string) string {
	tb.Helper()
	i := tp.jar.match(name)
	if i < 0 {
		tb.Fatalf("%q is not managed", name)
	}
	b, err := tp.jar.rules[i].signer.AppendEncodeAt(nil, name, []byte(plain), t0)
	v := string(b)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// ruleOf names the rule managing a dropped or found cookie: its pattern, or "-" for none.
// Tables name rules by pattern, not index, so that they do not depend on the rule order.
func (tp testPolicy) ruleOf(i int) string {
	if i < 0 {
		return "-"
	}
	return tp.jar.rules[i].pattern
}

// droppedString renders res.dropped as "name:reason:rule,…".
func (tp testPolicy) droppedString(ds []dropped) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.name+":"+d.reason.String()+":"+tp.ruleOf(d.rule))
	}
	return strings.Join(s, ",")
}

// countReasons counts res.dropped by reason.
func countReasons(ds []dropped) map[Reason]int {
	m := map[Reason]int{}
	for _, d := range ds {
		m[d.reason]++
	}
	return m
}
