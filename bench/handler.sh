#!/usr/bin/env bash
# The handler against the cryptography it must do, and against an earlier version of itself:
# runs BenchmarkServeHTTP of this tree (and of OLD, a commit, when given) in alternated rounds,
# and prints per path the module's CPU per request (signed_cookies - noop) divided by the
# floor (the path's codec calls alone, measured in the same round by this tree's binary),
# median and range over the rounds, with bytes and allocations per request.
#
#   bench/handler.sh                 # this tree, 6 rounds
#   OLD=1024f70 bench/handler.sh     # and that commit, alternated with it
#   ROUNDS=10 BENCHTIME=50000x bench/handler.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-6}
BENCHTIME=${BENCHTIME:-30000x}
OLD=${OLD:-}
tmp=$(mktemp -d)
cleanup() {
	if [ -n "$OLD" ] && [ -d "$tmp/old" ]; then git worktree remove --force "$tmp/old" >/dev/null 2>&1 || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "building the test binaries" >&2
go test -c -o "$tmp/new.test" .
variants=new
if [ -n "$OLD" ]; then
	git worktree add -q --detach "$tmp/old" "$OLD"
	(cd "$tmp/old" && go test -c -o "$tmp/old.test" .)
	variants="old new"
fi

for i in $(seq "$ROUNDS"); do
	for v in $variants; do
		echo "round $i: $v" >&2
		"$tmp/$v.test" -test.run '^$' -test.bench 'ServeHTTP$' -test.benchmem -test.benchtime "$BENCHTIME" |
			awk -v v="$v" -v i="$i" '/^BenchmarkServeHTTP\// {
				split($1, p, "/"); sub(/-[0-9]+$/, "", p[3])
				cpu = ""; bytes = ""; allocs = ""
				for (k = 3; k < NF; k++) {
					if ($(k+1) == "cpu-ns/op") cpu = $k
					if ($(k+1) == "B/op") bytes = $k
					if ($(k+1) == "allocs/op") allocs = $k
				}
				print v, i, p[2], p[3], cpu, bytes, allocs
			}'
	done
done >"$tmp/rows"

# Per round: cost = signed_cookies - noop of each variant, over the new binary's floor.
awk '
function median(a, n,    i, j, t) {
	for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
{ cpu[$1, $2, $3, $4] = $5; if ($4 == "signed_cookies") { mem[$1, $3] = $6 " B, " $7 " allocs" }
  paths[$3] = 1; vars[$1] = 1; rounds[$2] = 1 }
END {
	printf "%-22s %-8s %-24s %-10s %s\n", "path", "version", "cost / floor: median (range)", "cost ns", "per request"
	no = split("verify verify_10_unmanaged verify_50_unmanaged issue upstream_sign cookie_block split flask_session rollout_unused", order, " ")
	for (o = 1; o <= no; o++) {
		path = order[o]
		if (!(path in paths)) continue
		for (v in vars) {
			n = 0; delete r; delete c
			for (i in rounds) {
				fl = cpu["new", i, path, "floor"]
				if (fl == "" || cpu[v, i, path, "signed_cookies"] == "") continue
				cost = cpu[v, i, path, "signed_cookies"] - cpu[v, i, path, "noop"]
				n++; r[n] = cost / fl; c[n] = cost
			}
			if (n == 0) continue
			lo = r[1]; hi = r[1]; for (k = 2; k <= n; k++) { if (r[k] < lo) lo = r[k]; if (r[k] > hi) hi = r[k] }
			printf "%-22s %-8s %.2f (%.2f-%.2f)%8s %-10.0f %s\n", path, v, median(r, n), lo, hi, "", median(c, n), mem[v, path]
		}
	}
}' "$tmp/rows"
