package engine

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/cputime"
	"github.com/signedcookies/caddy-signedcookies/internal/testsupport/testskip"
)

// The work per request is linear in what the client (or the upstream) sends: no header shape
// may cost more than an ordinary header of as many bytes and pairs (or lines) beyond a
// constant factor, nor grow faster than its size. The cryptography is bounded separately
// (maxMACs on the request side) and allowed for as such.
//
//	go test ./internal/engine -run TestLinearCost -v              # the table, CPU time
//	go test ./internal/engine -run XXX -bench Shapes -benchmem    # the same shapes, wall time

// costSizes are the header sizes every shape is measured at.
var costSizes = []int{4 << 10, 16 << 10, 64 << 10}

func sizeName(size int) string { return strconv.Itoa(size>>10) + "KiB" }

// Bounds. Only super-linear work should trip them: a shape costs less than maxCostRatio times
// an ordinary header of as many bytes and units, and from 16 to 64 KiB (4×) its cost grows
// less than maxGrowth times. Both leave room for a busy machine and for the constant factors
// of the slower linear paths (canonicalizing names, parsing dates).
const (
	maxCostRatio = 10
	maxGrowth    = 10
)

// fill joins unit(0), unit(1)… with sep while the result stays within size (at least one).
func fill(size int, sep string, unit func(i int) string) string {
	var b strings.Builder
	for i := 0; ; i++ {
		u := unit(i)
		if i > 0 && b.Len()+len(sep)+len(u) > size {
			return b.String()
		}
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(u)
	}
}

// run1 is one pair of about size bytes: prefix, then c repeated, then suffix.
func run1(size int, prefix, c, suffix string) string {
	n := max(1, (size-len(prefix)-len(suffix))/len(c))
	return prefix + strings.Repeat(c, n) + suffix
}

// costPolicy is the test policy over a ring of four keys: a forged value costs four HMACs,
// so maxMACs/4 forged values spend exactly maxMACs, the most any request can.
func costPolicy(tb testing.TB) testPolicy {
	return newTestPolicy(tb, testRing(tb, "cost 0", "cost 1", "cost 2", "cost 3"))
}

// requestShape is a Cookie header shape. Its pairs are long enough (about 22 bytes or more)
// that 64 KiB of them stay within maxPairs, unless the shape is about maxPairs.
type requestShape struct {
	name string
	gen  func(size int) string
	// crypto: the shape spends the verification budget, whose cost (measured on the first
	// maxMACs pairs) is allowed on top of the linear bound.
	crypto bool
	// check says whether the rebuild took the path the shape is named for.
	check func(res *result, ok bool) error
}

// reasons checks the drop counts: want maps each reason to its count, -1 for "the rest".
func reasons(want map[Reason]int) func(res *result, ok bool) error {
	return func(res *result, ok bool) error {
		if !ok {
			return fmt.Errorf("refused (%d pairs)", res.pairs)
		}
		got := countReasons(res.dropped)
		rest := len(res.dropped)
		for _, n := range want {
			if n >= 0 {
				rest -= n
			}
		}
		for r, n := range want {
			if n < 0 {
				n = rest
			}
			if got[r] != n {
				return fmt.Errorf("dropped %v, want %v (rest %d)", got, want, rest)
			}
		}
		for r, n := range got {
			if _, ok := want[r]; !ok && n > 0 {
				return fmt.Errorf("dropped %v, want %v", got, want)
			}
		}
		return nil
	}
}

// forwardedAll checks that nothing was dropped and the pairs are all forwarded.
func forwardedAll(res *result, ok bool) error {
	if !ok || len(res.dropped) != 0 {
		return fmt.Errorf("refused %v, dropped %v", !ok, countReasons(res.dropped))
	}
	return nil
}

func requestShapes(tb testing.TB, tp testPolicy) []requestShape {
	sv := tp.signed(tb, "session", "alice")
	forged := make([]string, 64)
	for i := range forged {
		forged[i] = forgedFor(tb, "session", "mallory", i)
	}
	longForged := forgedFor(tb, "session", strings.Repeat("m", 2200), 0)
	if len(longForged) > tp.sign.MaxLength() || len(longForged) < tp.sign.MaxLength()-200 {
		tb.Fatalf("long forged value of %d bytes", len(longForged))
	}
	tried := maxMACs / tp.ring.Len()
	shapes := []requestShape{
		{name: "benign", gen: func(size int) string {
			return fill(size, "; ", func(i int) string {
				return "_ga_" + strconv.Itoa(i) + "=GS1.1." + strconv.Itoa(1700000000+i) + ".4.1.1700000300.0.0.0"
			})
		}, check: forwardedAll},
		// Ordinary short cookies: the baseline per pair (long enough that 64 KiB of them stay
		// within maxPairs).
		{name: "benign_short", gen: func(size int) string {
			return fill(size, "; ", func(i int) string { return "c" + strconv.Itoa(i%100) + "=0123456789abcdef" })
		}, check: forwardedAll},
		// One unmanaged value of '=': every one could end a hidden name.
		{name: "eq_run", gen: func(size int) string { return run1(size, "x=", "=", "") }, check: forwardedAll},
		{name: "eq_chain", gen: func(size int) string { return run1(size, "a=", "b=", "c") }, check: forwardedAll},
		// After a ',', each '=' of the chain once made a scan back to the ','.
		{name: "eq_chain_after_comma", gen: func(size int) string { return run1(size, "x=1,", "b=", "c") }, check: forwardedAll},
		{name: "eq_chain_after_space", gen: func(size int) string { return run1(size, "x=1 ", "b=", "c") }, check: forwardedAll},
		// Hidden names that are nearly managed: each one is canonicalized and matched.
		{name: "hidden_candidates", gen: func(size int) string { return run1(size, "x=1", ",sessio=1", "") }, check: forwardedAll},
		{name: "hidden_candidates_space", gen: func(size int) string { return run1(size, "x=1", " sessio=1", "") }, check: forwardedAll},
		// Names that are not their own canonical form take the look-alike check.
		{name: "hidden_lookalike_candidates", gen: func(size int) string { return run1(size, "x=1", ",Sessio=1", "") }, check: forwardedAll},
		{name: "hidden_escaped_candidates", gen: func(size int) string { return run1(size, "x=1", ",%73essio=1", "") }, check: forwardedAll},
		{name: "long_value", gen: func(size int) string { return run1(size, "x=", "a", "") }, check: forwardedAll},
		{name: "non_ascii", gen: func(size int) string {
			return run1(size, "é", "é", "=ü") + "; x=" + strings.Repeat("\xff", 100)
		}, check: forwardedAll},
		{name: "a=b=c", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "a=b=c=d=e=f=g=h=i=j=k=l=m" })
		}, check: forwardedAll},
		{name: "lookalikes", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "SESSION=0123456789abcdef" })
		}, check: reasons(map[Reason]int{Lookalike: -1})},
		{name: "lookalikes_escaped", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "%73%65%73%73%69%6F%6E=1" })
		}, check: reasons(map[Reason]int{Lookalike: -1})},
		{name: "lookalikes_hidden", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "x=1,session=forged-value" })
		}, check: reasons(map[Reason]int{Lookalike: -1})},
		{name: "php_arrays", gen: func(size int) string {
			return fill(size, "; ", func(i int) string { return "session[" + strconv.Itoa(i%1000) + "]=forged-value" })
		}, check: reasons(map[Reason]int{Lookalike: -1})},
		{name: "managed_malformed", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "session=forged-value-0123" })
		}, check: reasons(map[Reason]int{Malformed: -1})}, // no HMAC: not counted against the budget
		{name: "managed_forged", crypto: true, gen: func(size int) string {
			return fill(size, "; ", func(i int) string { return "session=" + forged[i%len(forged)] })
		}, check: reasons(map[Reason]int{BadMAC: tried, OverBudget: -1})},
		{name: "managed_forged_long", crypto: true, gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "session=" + longForged })
		}, check: func(res *result, ok bool) error {
			// A 4 KiB header holds one such value.
			return reasons(map[Reason]int{BadMAC: min(tried, res.pairs), OverBudget: -1})(res, ok)
		}},
		{name: "managed_too_long", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "session=" + strings.Repeat("A", 5000) })
		}, check: func(res *result, ok bool) error {
			return reasons(map[Reason]int{TooLong: -1})(res, ok) // refused before any HMAC
		}},
		{name: "duplicates", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "session=" + sv })
		}, check: func(res *result, ok bool) error {
			if len(res.found) != 1 || res.macs != 1 {
				return fmt.Errorf("found %d, %d HMACs", len(res.found), res.macs)
			}
			return reasons(map[Reason]int{Duplicate: -1})(res, ok)
		}},
		{name: "glob_names_valid", crypto: true, gen: func(size int) string {
			return fill(size, "; ", func(i int) string {
				name := "sess_" + strconv.Itoa(i)
				return name + "=" + tp.signed(tb, name, "v")
			})
		}, check: func(res *result, ok bool) error {
			if len(res.found) != min(maxMACs-tp.ring.Len()+1, res.pairs) {
				return fmt.Errorf("found %d", len(res.found))
			}
			return reasons(map[Reason]int{OverBudget: -1})(res, ok)
		}},
		// Past maxPairs (from 16 KiB on) the request is refused, after maxPairs pairs' work.
		{name: "tiny_pairs", gen: func(size int) string {
			return fill(size, "; ", func(int) string { return "a=1" })
		}, check: func(res *result, ok bool) error {
			if ok && (len(res.dropped) != 0 || len(res.header) == 0) || !ok && (res.pairs != 0 || len(res.header) != 0) {
				return fmt.Errorf("accepted %v: %d pairs, %d-byte header", ok, res.pairs, len(res.header))
			}
			return nil
		}},
	}
	for _, c := range []string{",", " ", `"`, "%", ";", `\`, "é", "\t"} {
		check := forwardedAll
		if c == ";" {
			check = reasons(map[Reason]int{Unparsable: 1}) // the "x" before the run
		}
		name := map[string]string{",": "comma", " ": "space", `"`: "quote", "%": "percent", ";": "semicolon",
			`\`: "backslash", "é": "non_ascii", "\t": "tab"}[c]
		shapes = append(shapes, requestShape{name: "run_" + name, gen: func(size int) string {
			// A run in a name, then one in a value holding an '=': both scans cross it.
			return run1(size/2, "x", c, "y=1") + "; " + run1(size/2, "x=a", c, "b=1")
		}, check: check})
	}
	return shapes
}

// budgetPrefix is the first maxMACs pairs of header: all the verification it can cost.
func budgetPrefix(header string) string {
	parts := strings.SplitN(header, "; ", maxMACs+1)
	return strings.Join(parts[:min(len(parts), maxMACs)], "; ")
}

// costRow is one shape's measurements at every size: CPU time per op, the part of it allowed
// for the bounded cryptography, and the header's bytes and units (pairs, or lines).
type costRow struct {
	t, allowance []time.Duration
	bytes, units []int
}

// costCase is a shape at one size: what to measure, and (allow, if set) its part that is
// allowed for as bounded cryptography.
type costCase struct {
	run, allow   func()
	bytes, units int
}

// growth is how much the cost grows from 16 to 64 KiB, scaled to an exact 4× in bytes.
func (r costRow) growth() float64 {
	return float64(r.t[2]) / float64(r.t[1]) * 4 * float64(r.bytes[1]) / float64(r.bytes[2])
}

// costTable judges shapes against ordinary headers. What an ordinary header of n units and
// b bytes costs is estimated from two baselines: the cost per byte of one with long units,
// and the cost per unit of one with short units, whichever is more. (Its real cost is about
// a·n + c·b: the estimate is off by at most 2×.) A shape of tiny pairs is then compared with
// ordinary tiny pairs, and one long pair with ordinary long ones.
type costTable struct {
	names []string
	// bases maps a shape to its baselines, per byte and per unit; a baseline maps to none.
	bases map[string][2]string
	cases map[string][]costCase // each shape at each of costSizes
	rows  map[string]costRow
}

// measure measures the named shapes at every size, interleaved (see cputime.PerOps).
func (ct *costTable) measure(names ...string) {
	var fs []func()
	for _, name := range names {
		for _, c := range ct.cases[name] {
			fs = append(fs, c.run)
			if c.allow != nil {
				fs = append(fs, c.allow)
			}
		}
	}
	ts := cputime.PerOps(fs...)
	for _, name := range names {
		var r costRow
		for _, c := range ct.cases[name] {
			t := ts[0]
			ts = ts[1:]
			var allowance time.Duration
			if c.allow != nil {
				allowance = min(ts[0], t)
				ts = ts[1:]
			}
			r.t, r.allowance = append(r.t, t), append(r.allowance, allowance)
			r.bytes, r.units = append(r.bytes, c.bytes), append(r.units, c.units)
		}
		ct.rows[name] = r
	}
}

// ratio is a shape's cost (the allowance taken off) over an ordinary header's, at size i.
func (ct *costTable) ratio(name string, i int) float64 {
	b, ok := ct.bases[name]
	if !ok {
		return 1
	}
	r, perByte, perUnit := ct.rows[name], ct.rows[b[0]], ct.rows[b[1]]
	ordinary := max(float64(perByte.t[i])/float64(perByte.bytes[i])*float64(r.bytes[i]),
		float64(perUnit.t[i])/float64(perUnit.units[i])*float64(r.units[i]))
	return float64(r.t[i]-r.allowance[i]) / ordinary
}

// verdict is what is wrong with a shape's cost, "" for nothing.
func (ct *costTable) verdict(name string) string {
	var bad []string
	for i, size := range costSizes {
		if q := ct.ratio(name, i); q >= maxCostRatio {
			bad = append(bad, fmt.Sprintf("%.1f× the cost of an ordinary header at %s", q, sizeName(size)))
		}
	}
	if g := ct.rows[name].growth(); g >= maxGrowth {
		bad = append(bad, fmt.Sprintf("%.1f× the cost at 64 KiB as at 16 KiB", g))
	}
	return strings.Join(bad, "; ")
}

// run measures every shape, and up to twice more (with its baselines, just before it) any
// that fails its bounds: a busy machine may spoil a measurement, not three in a row. Then it
// logs the table and reports the shapes still out of bounds.
func (ct *costTable) run(t *testing.T) {
	ct.rows = map[string]costRow{}
	ct.measure(ct.names...)
	for _, name := range ct.names {
		for try := 0; try < 2; try++ {
			v := ct.verdict(name)
			if v == "" {
				break
			}
			t.Logf("%s: %s; measuring again", name, v)
			if b, ok := ct.bases[name]; ok {
				ct.measure(b[0], b[1], name)
			} else {
				ct.measure(name)
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-26s", "shape")
	for _, size := range costSizes {
		fmt.Fprintf(&b, " %12s %7s", sizeName(size), "ratio")
	}
	fmt.Fprintf(&b, " %7s\n", "growth")
	for _, name := range ct.names {
		fmt.Fprintf(&b, "%-26s", name)
		for i := range costSizes {
			fmt.Fprintf(&b, " %10.1fµs %6.2f×", float64(ct.rows[name].t[i])/1e3, ct.ratio(name, i))
		}
		fmt.Fprintf(&b, " %6.2f×\n", ct.rows[name].growth())
	}
	t.Logf("CPU time per op (least of seven interleaved runs); ratio to an ordinary header of as many bytes and units; growth 16→64 KiB:\n%s", b.String())
	for _, name := range ct.names {
		if v := ct.verdict(name); v != "" {
			t.Errorf("%s: %s", name, v)
		}
	}
}

func skipTimings(t *testing.T) {
	testskip.CostTest(t)
	if raceEnabled {
		t.Skip("timings mean nothing under the race detector")
	}
}

func TestLinearCost(t *testing.T) {
	skipTimings(t)
	tp := costPolicy(t)
	shapes := requestShapes(t, tp)
	byName := map[string]requestShape{}
	var names []string
	for _, s := range shapes {
		byName[s.name] = s
		names = append(names, s.name)
	}
	var res result
	headers := map[string][]string{}
	for _, s := range shapes {
		for _, size := range costSizes {
			h := s.gen(size)
			headers[s.name] = append(headers[s.name], h)
			if err := s.check(&res, tp.rebuild(&res, []string{h}, t0, nil, false)); err != nil {
				t.Fatalf("%s/%s: %v", s.name, sizeName(size), err)
			}
		}
	}
	ct := &costTable{names: names, bases: map[string][2]string{}, cases: map[string][]costCase{}}
	for _, name := range names {
		for _, h := range headers[name] {
			lines := []string{h}
			c := costCase{run: func() { tp.rebuild(&res, lines, t0, nil, false) }, bytes: len(h), units: countPairs(h)}
			if byName[name].crypto {
				prefix := []string{budgetPrefix(h)}
				c.allow = func() { tp.rebuild(&res, prefix, t0, nil, false) }
			}
			ct.cases[name] = append(ct.cases[name], c)
		}
		if name != "benign" && name != "benign_short" {
			ct.bases[name] = [2]string{"benign", "benign_short"}
		}
	}
	ct.run(t)
}

// countPairs counts the pairs of a Cookie header as the rebuild does, up to the first one
// past maxPairs, where it stops.
func countPairs(header string) int {
	n := 0
	for part := range strings.SplitSeq(header, ";") {
		if trimWS(part) != "" {
			n++
		}
	}
	return min(n, maxPairs+1)
}

func BenchmarkRebuildShapes(b *testing.B) {
	tp := costPolicy(b)
	for _, s := range requestShapes(b, tp) {
		for _, size := range costSizes {
			lines := []string{s.gen(size)}
			b.Run(s.name+"/"+sizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(lines[0])))
				var res result
				var ok bool
				for b.Loop() {
					ok = tp.rebuild(&res, lines, t0, nil, false)
				}
				if err := s.check(&res, ok); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// responseShape is a shape of the upstream's Set-Cookie lines.
type responseShape struct {
	name string
	// managed: the lines are managed cookies, each signed unless dropped; their baseline is
	// ordinary managed lines, which cost an HMAC each, not unmanaged ones.
	managed bool
	gen     func(size int) []string
	// check says whether Finalize took the path the shape is named for.
	check func(ps *Pass, in, out []string) error
}

// lines repeats unit until the lines hold size bytes.
func lines(size int, unit func(i int) string) []string {
	var out []string
	n := 0
	for i := 0; n == 0 || n+len(unit(i)) <= size; i++ {
		u := unit(i)
		out, n = append(out, u), n+len(u)
	}
	return out
}

func totalLen(ls []string) int {
	n := 0
	for _, l := range ls {
		n += len(l)
	}
	return n
}

// report checks a pass's counts: lines signed, dropped by reason, and sent (-1: every line).
func report(signed int, dropped map[Reason]int, sent int) func(ps *Pass, in, out []string) error {
	return func(ps *Pass, in, out []string) error {
		all := func(n int) int {
			if n < 0 {
				return len(in)
			}
			return n
		}
		if ps.Report.Signed != all(signed) || len(out) != all(sent) {
			return fmt.Errorf("%d of %d lines signed, %d sent", ps.Report.Signed, len(in), len(out))
		}
		for r := Reason(1); r < numReasons; r++ {
			if want, ok := dropped[r]; ps.Report.Dropped[r] != all(want) && (ok || ps.Report.Dropped[r] != 0) {
				return fmt.Errorf("dropped %v, want %v", ps.Report.Dropped, dropped)
			}
		}
		return nil
	}
}

func responseShapes() []responseShape {
	one := func(size int, prefix, c string) []string { return []string{run1(size, prefix, c, "")} }
	return []responseShape{
		{name: "benign", gen: func(size int) []string {
			return lines(size, func(i int) string {
				return "_ga_" + strconv.Itoa(i) + "=GS1.1." + strconv.Itoa(1700000000+i) +
					".4.1.1700000300.0.0.0; Path=/; Domain=.example.com; Max-Age=63072000; SameSite=Lax"
			})
		}, check: report(0, nil, -1)},
		{name: "benign_short", gen: func(size int) []string {
			return lines(size, func(i int) string { return "c" + strconv.Itoa(i%100) + "=en; Path=/" })
		}, check: report(0, nil, -1)},
		// The baseline of the managed shapes: each line costs an HMAC, more than a plain line
		// but just as linearly.
		{name: "benign_managed", managed: true, gen: func(size int) []string {
			return lines(size, func(i int) string {
				return "sess_" + strconv.Itoa(i) + "=" + strconv.Itoa(1e15+i) + "; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=3600"
			})
		}, check: report(-1, nil, -1)},
		{name: "unmanaged_long_attrs", gen: func(size int) []string { return one(size, "_x=1", "; Path=/") }, check: report(0, nil, 1)},
		{name: "unmanaged_semicolons", gen: func(size int) []string { return one(size, "_x=1", ";") }, check: report(0, nil, 1)},
		{name: "unmanaged_long_value", gen: func(size int) []string { return one(size, "_x=", "a") }, check: report(0, nil, 1)},
		{name: "unmanaged_tiny_lines", gen: func(size int) []string {
			return lines(size, func(int) string { return "a=b" })
		}, check: report(0, nil, -1)},
		{name: "lookalike_lines", gen: func(size int) []string {
			return lines(size, func(int) string { return "SESSION=x; Path=/" })
		}, check: report(0, nil, -1)},
		{name: "nameless_lines", gen: func(size int) []string {
			return lines(size, func(i int) string { return [...]string{"=x; Path=/", "noequals; Path=/"}[i%2] })
		}, check: report(0, nil, -1)},
		{name: "managed_long_attrs", managed: true, gen: func(size int) []string { return one(size, "session=v", "; Path=/") }, check: report(1, nil, 1)},
		{name: "managed_semicolons", managed: true, gen: func(size int) []string { return one(size, "session=v", ";") }, check: report(1, nil, 1)},
		{name: "managed_equals_attrs", managed: true, gen: func(size int) []string { return one(size, "session=v", "; a=b=c") }, check: report(1, nil, 1)},
		{name: "managed_expires_attrs", managed: true, gen: func(size int) []string {
			return one(size, "session=v", "; Expires=Wed, 21 Oct 2099 07:28:00 GMT")
		}, check: report(1, nil, 1)},
		{name: "managed_bad_expires", managed: true, gen: func(size int) []string {
			return one(size, "session=v", "; Expires=Wed, 21 Oct 2099 07:28:00 XYZ")
		}, check: report(1, nil, 1)},
		{name: "managed_max_age_attrs", managed: true, gen: func(size int) []string { return one(size, "session=v", "; Max-Age=3600") }, check: report(1, nil, 1)},
		{name: "managed_long_max_age", managed: true, gen: func(size int) []string { return one(size, "session=v; Max-Age=", "9") }, check: report(1, nil, 1)},
		{name: "managed_non_ascii_attrs", managed: true, gen: func(size int) []string { return one(size, "session=v; ", "é") }, check: report(1, nil, 1)},
		{name: "managed_lines", managed: true, gen: func(size int) []string {
			return lines(size, func(int) string { return "session=v; Path=/; HttpOnly" })
		}, check: report(-1, nil, -1)},
		{name: "managed_long_values", managed: true, gen: func(size int) []string {
			return lines(size, func(i int) string { return "sess_" + strconv.Itoa(i) + "=" + strings.Repeat("v", 2000) + "; Path=/" })
		}, check: report(-1, nil, -1)},
		{name: "managed_too_long", managed: true, gen: func(size int) []string {
			return lines(size, func(int) string { return "session=" + strings.Repeat("v", 5000) + "; Path=/" })
		}, check: report(0, map[Reason]int{TooLong: -1}, 0)},
		{name: "managed_unsafe", managed: true, gen: func(size int) []string {
			return lines(size, func(int) string { return "session=dark session=admin; Path=/" })
		}, check: report(0, map[Reason]int{UnsafeValue: -1}, 0)},
		{name: "deletions", managed: true, gen: func(size int) []string {
			return lines(size, func(i int) string {
				return [...]string{"session=; Path=/", "session=x; Path=/; Max-Age=0", "sess_a=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"}[i%3]
			})
		}, check: report(0, nil, -1)},
		{name: "visitor_lines", managed: true, gen: func(size int) []string {
			return lines(size, func(int) string { return "vid=forged; Path=/; Max-Age=3600" })
		}, check: report(0, map[Reason]int{TrackingName: -1}, 0)},
	}
}

// finalizer runs Finalize on fresh passes over one set of lines, reusing the buffers.
type finalizer struct {
	p   *Policy
	f   Flow
	ps  Pass
	hdr http.Header
}

func (fz *finalizer) run(in []string) []string {
	fz.f = Flow{}
	fz.ps = Pass{p: fz.p, f: &fz.f, now: t0, clock: func() int64 { return t0 }, buf: fz.ps.buf[:0],
		Report: Report{Events: fz.ps.Report.Events[:0]}}
	if fz.hdr == nil {
		fz.hdr = http.Header{}
	}
	fz.hdr["Set-Cookie"] = in
	fz.ps.Finalize(fz.hdr)
	return fz.hdr["Set-Cookie"]
}

func TestLinearCostResponse(t *testing.T) {
	skipTimings(t)
	tp := costPolicy(t)
	shapes := responseShapes()
	var names []string
	inputs := map[string][][]string{}
	fz := &finalizer{p: tp.Policy}
	for _, s := range shapes {
		names = append(names, s.name)
		for _, size := range costSizes {
			in := s.gen(size)
			inputs[s.name] = append(inputs[s.name], in)
			if err := s.check(&fz.ps, in, fz.run(in)); err != nil {
				t.Fatalf("%s/%s: %v", s.name, sizeName(size), err)
			}
		}
	}
	ct := &costTable{names: names, bases: map[string][2]string{}, cases: map[string][]costCase{}}
	for _, name := range names {
		for _, in := range inputs[name] {
			ct.cases[name] = append(ct.cases[name], costCase{run: func() { fz.run(in) }, bytes: totalLen(in), units: len(in)})
		}
	}
	for _, s := range shapes {
		switch {
		case strings.HasPrefix(s.name, "benign"):
		case s.managed:
			ct.bases[s.name] = [2]string{"benign_managed", "benign_managed"}
		default:
			ct.bases[s.name] = [2]string{"benign", "benign_short"}
		}
	}
	ct.run(t)
}

func BenchmarkFinalizeShapes(b *testing.B) {
	tp := costPolicy(b)
	for _, s := range responseShapes() {
		for _, size := range costSizes {
			in := s.gen(size)
			b.Run(s.name+"/"+sizeName(size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(totalLen(in)))
				fz := &finalizer{p: tp.Policy}
				var out []string
				for b.Loop() {
					out = fz.run(in)
				}
				if err := s.check(&fz.ps, in, out); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
