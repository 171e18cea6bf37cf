// The cost of the hostile header shapes the newer paths read, through a real Caddy in this
// process: split values (many first pieces sharing one set of chunks), pairs that need
// consent, adopted plain values, and Flask session copies. Each is measured against a benign
// header of the same size and pair count (the same pairs under names no rule matches), as
// the fastest of interleaved requests, at 4, 16 and 64 KiB and, with max_header_size 1MB, at
// 960 KiB. Wall-clock ratios: gated by SIGNED_COOKIES_COST=1, run in their own CI step.

package signedcookies

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/cookie"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// attackCostSizes are the header sizes measured; the last fits Caddy's max_header_size 1MB
// (10^6 bytes) with the request line and other headers.
var attackCostSizes = []int{4 << 10, 16 << 10, 64 << 10, 960 << 10}

const (
	attackMaxRatio  = 10.0 // hostile against benign, at each size
	attackPerDouble = 2.5  // hostile cost growth when the size doubles, at most
	attackMaxPairs  = 2900 // under the module's 3000-pair limit, so that no request is a 431
)

// attackShape is one hostile header shape: the signed_cookies lines that give it meaning, and
// the header of about n bytes, with managed names (hostile) or names no rule matches (benign).
type attackShape struct {
	name  string
	lines string
	build func(t testing.TB, n int, managed bool) string
}

// attackTail is one unmanaged pair of about n bytes, the part of a header the hostile pairs'
// work moves or scans again.
func attackTail(n int) string {
	return "tail=" + strings.Repeat("a", max(n-5, 1))
}

// attackPairs joins count pairs name<i>=value and a tail filling the rest of n bytes.
func attackPairs(n, count int, name func(int) string, value string) string {
	var b strings.Builder
	for i := 0; i < count; i++ {
		fmt.Fprintf(&b, "%s=%s; ", name(i), value)
	}
	return b.String() + attackTail(n-b.Len())
}

var attackShapes = []attackShape{
	{
		// Many first pieces of a split value ("big=8*…"), each joined with every chunk before
		// it is verified: the work is pieces × chunk bytes. The joined value is a real signed
		// value with its MAC broken, so each verification costs an HMAC too.
		name:  "split heads sharing chunks",
		lines: "\t\tsign big\n\t\tcookie big {\n\t\t\tsplit 8\n\t\t}",
		build: func(t testing.TB, n int, managed bool) string {
			name := "big"
			if !managed {
				name = "zig"
			}
			chunkBytes := n / 2 // the 7 chunks
			heads := min(attackMaxPairs, max(1, (n-chunkBytes)/16))
			f := max(4, (n-chunkBytes)/heads-len(name)-5) // each head's own piece
			// Joined, a real signed value with its MAC broken, so that each verification costs
			// an HMAC; past the longest value a split carries, text (refused unread, but joined).
			whole := randomText(f+chunkBytes, 7)
			if f+chunkBytes <= splitMaxLength {
				codec := cookie.NewCodec(mustRing(t, testSecret), cookie.Options{MaxLength: splitMaxLength})
				plain := 0
				for codec.EncodedLen(plain+1) <= f+chunkBytes {
					plain++
				}
				whole = rolloutTamperMAC(t, encodeFor(t, codec, "big", randomText(plain, 7)))
			}
			first, rest := whole[:f], whole[f:]
			var b strings.Builder
			for i := 1; i <= 7; i++ {
				lo, hi := len(rest)*(i-1)/7, len(rest)*i/7
				fmt.Fprintf(&b, "%s__%d=%s; ", name, i, rest[lo:hi])
			}
			for i := 0; i < heads; i++ {
				fmt.Fprintf(&b, "%s=8*%s; ", name, first)
			}
			return strings.TrimSuffix(b.String(), "; ")
		},
	},
	{
		// Many pairs that need consent, withheld one by one in front of a long pair that each
		// removal moves.
		name:  "consent-gated pairs",
		lines: "\t\ttrack {\n\t\t\tconsent ok\n\t\t}\n\t\tcookie g* {\n\t\t\tneeds_consent\n\t\t}",
		build: func(_ testing.TB, n int, managed bool) string {
			p := "g"
			if !managed {
				p = "z"
			}
			return attackPairs(n, min(attackMaxPairs, n/2/12), func(i int) string { return fmt.Sprintf("%s%d", p, i) }, "x")
		},
	},
	{
		// Many plain values of adopted names in front of a long pair.
		name:  "adopted plain values",
		lines: "\t\tsign sess_*\n\t\tadopt sess_* until " + attackFuture(),
		build: func(_ testing.TB, n int, managed bool) string {
			p := "sess_"
			if !managed {
				p = "zess_"
			}
			return attackPairs(n, min(attackMaxPairs, n/2/14), func(i int) string { return fmt.Sprintf("%s%d", p, i) }, "plain")
		},
	},
	{
		// Many copies of a Flask session cookie in front of a long pair.
		name:  "Flask session copies",
		lines: "\t\tflask_session {\n\t\t\tsecret_key " + flaskKey + "\n\t\t\texpose user_id\n\t\t}",
		build: func(_ testing.TB, n int, managed bool) string {
			name := "session"
			if !managed {
				name = "zession"
			}
			token := "eyJ1c2VyX2lkIjo0Mn0.axYlKQ.82M0ZcZj1v8IF9smiUzXl-4RJIY"
			return attackPairs(n, min(attackMaxPairs, n/2/(len(token)+10)), func(int) string { return name }, token)
		},
	},
}

// Each hostile shape costs at most attackMaxRatio × a benign header of the same size and pair
// count, and its cost grows at most attackPerDouble× per doubling of the size. On the old
// code the split heads cost 40–90× a benign header (about 2 s a request near 1 MB: each head
// re-joins every chunk) and withholding consent-gated pairs grows about 4× per doubling (each
// removal moves the rest of the header).
func TestAttackHostileShapesCost(t *testing.T) {
	testskip.CostTest(t)
	for _, s := range attackShapes {
		t.Run(s.name, func(t *testing.T) {
			ci := startCaddy(t, attackBlock(s.lines)+"\trespond 204", withGlobals(secQuietGlobals))
			c := secClient(t)
			hdrs := map[int][2]string{}
			for _, n := range attackCostSizes {
				h, b := s.build(t, n, true), s.build(t, n, false)
				if len(h) != len(b) {
					t.Fatalf("%d bytes: hostile header %d bytes, benign %d", n, len(h), len(b))
				}
				hdrs[n] = [2]string{h, b}
			}
			secTime(t, c, ci.URL+"/", hdrs[attackCostSizes[0]][1]) // warm up
			secTwice(t, func() error {
				var errs []error // every size is measured, so that a failure shows how the cost grows
				var prevN int
				var prev time.Duration
				for _, n := range attackCostSizes {
					m := secFastest(t, c, ci.URL+"/", 5, 3*time.Second, hdrs[n][0], hdrs[n][1])
					ratio := float64(m[0]) / float64(m[1])
					t.Logf("%4d KiB (%d bytes): hostile %v, benign %v: %.1f×", n>>10, len(hdrs[n][0]), m[0], m[1], ratio)
					if ratio > attackMaxRatio {
						errs = append(errs, fmt.Errorf("%s, %d KiB: fastest %v against %v for a benign header of the same size: %.1f× (want at most %.0f×)",
							s.name, n>>10, m[0], m[1], ratio, attackMaxRatio))
					}
					if prevN != 0 {
						doublings := math.Log2(float64(n) / float64(prevN))
						if growth, bound := float64(m[0])/float64(prev), math.Pow(attackPerDouble, doublings); growth > bound {
							errs = append(errs, fmt.Errorf("%s: %d KiB → %d KiB costs %v → %v: %.1f× for %.0f doublings (want at most %.1f×, %.1f× per doubling)",
								s.name, prevN>>10, n>>10, prev, m[0], growth, doublings, bound, attackPerDouble))
						}
					}
					prevN, prev = n, m[0]
				}
				return errors.Join(errs...)
			})
		})
	}
}
