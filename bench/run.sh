#!/usr/bin/env bash
# Load test: what signed_cookies costs Caddy next to a bare reverse_proxy, with nginx with and
# without `userid` as the external anchor. One upstream, one Caddy, one front nginx; wrk runs
# alternate between variants round after round, so that drift on the machine hits them all.
#
#   bench/run.sh                       # 5 rounds of 10 s per variant
#   DURATION=5 ROUNDS=3 bench/run.sh   # quicker
#
# Environment: DURATION (s, default 10), ROUNDS (5), CONNECTIONS (32), THREADS (1),
# PORT_BASE (18400; uses PORT_BASE..PORT_BASE+12 on 127.0.0.1), UPSTREAM (nginx|go; default
# nginx when available), NGINX (1 to run the nginx anchor, 0 to skip; default 1 when nginx
# with the userid module is available), WARMUP (s, default 2), OUT (bench/out), ONLY (a
# regular expression: only the variants whose whole name matches run, with their baselines,
# e.g. 'caddy-(floor-sign|sign)'), PROFILE (1: after the rounds, CPU and allocation
# profiles of Caddy under each Caddy variant, via admin).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
PORT_BASE=${PORT_BASE:-18400}
OUT=${OUT:-$ROOT/bench/out}

UPSTREAM_PORT=$PORT_BASE
BARE_PORT=$((PORT_BASE + 1))
VERIFY_PORT=$((PORT_BASE + 2))
ISSUE_PORT=$((PORT_BASE + 3))
SIGN_PORT=$((PORT_BASE + 4))
FLOOR_PORT=$((PORT_BASE + 5))
FLOOR_ISSUE_PORT=$((PORT_BASE + 6))
FLOOR_SIGN_PORT=$((PORT_BASE + 7))
ADMIN_PORT=$((PORT_BASE + 9))
NGINX_BARE_PORT=$((PORT_BASE + 11))
NGINX_USERID_PORT=$((PORT_BASE + 12))

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- tools --------------------------------------------------------------------------------

need_install=()
command -v wrk >/dev/null || need_install+=(wrk)
command -v curl >/dev/null || need_install+=(curl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
if [ ${#need_install[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "installing ${need_install[*]} with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
		# nginx is optional (the anchor); wrk and curl are not
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_install[@]}" >&2 ||
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk curl >&2
	else
		log "missing: ${need_install[*]}"
		log "install them (Debian/Ubuntu: sudo apt-get install wrk curl nginx; nginx is optional, it is"
		log "the external anchor and needs the userid module, built into Debian's nginx / nginx-core)"
	fi
fi
command -v wrk >/dev/null || die "wrk is required"
command -v curl >/dev/null || die "curl is required"
command -v go >/dev/null || die "go is required (to build cmd/caddy and bench/upstream)"
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX_BIN" ] || NGINX_BIN=

mkdir -p "$OUT"
rm -rf "$OUT/nginx" && mkdir -p "$OUT/nginx"

# nginx with userid? Ask nginx itself to load a config using it.
nginx_has_userid() {
	[ -n "$NGINX_BIN" ] || return 1
	local d="$OUT/nginx/probe"
	mkdir -p "$d/logs"
	cat >"$d/nginx.conf" <<-EOF
		pid $d/nginx.pid;
		error_log stderr;
		events {}
		http { server { listen 127.0.0.1:1; userid on; } }
	EOF
	env -u NGINX "$NGINX_BIN" -t -q -p "$d" -c "$d/nginx.conf" -e stderr >/dev/null 2>&1
}
if [ -z "${NGINX:-}" ]; then
	if nginx_has_userid; then NGINX=1; else
		NGINX=0
		log "note: nginx with the userid module not found; skipping the nginx anchor"
	fi
elif [ "$NGINX" = 1 ] && ! nginx_has_userid; then
	die "NGINX=1 but nginx with the userid module is not available"
fi
if [ -z "${UPSTREAM:-}" ]; then
	if [ -n "$NGINX_BIN" ]; then UPSTREAM=nginx; else UPSTREAM=go; fi
fi

# --- processes ------------------------------------------------------------------------------

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in $UPSTREAM_PORT $BARE_PORT $VERIFY_PORT $ISSUE_PORT $SIGN_PORT $FLOOR_PORT $FLOOR_ISSUE_PORT $FLOOR_SIGN_PORT $ADMIN_PORT $NGINX_BARE_PORT $NGINX_USERID_PORT; do
	port_busy "$p" && die "port $p on 127.0.0.1 is in use (set PORT_BASE)"
done

wait_port() {
	local i
	for i in $(seq 100); do
		port_busy "$1" && return 0
		sleep 0.1
	done
	die "nothing listening on 127.0.0.1:$1 after 10 s (logs in $OUT)"
}

log "building cmd/caddy and bench/upstream"
go build -o "$OUT/caddy" ./cmd/caddy
go build -o "$OUT/upstream" ./bench/upstream

start_nginx() { # name conf-body
	local d="$OUT/nginx/$1"
	mkdir -p "$d/logs" "$d/tmp"
	cat >"$d/nginx.conf" <<-EOF
		daemon off;
		pid $d/nginx.pid;
		error_log $d/error.log warn;
		$2
	EOF
	# nginx reads an NGINX variable as inherited sockets: not this script's setting
	env -u NGINX "$NGINX_BIN" -p "$d" -c "$d/nginx.conf" -e "$d/error.log" &
	PIDS+=($!)
}

nginx_http_common="
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $OUT/nginx/tmp-body;
	proxy_temp_path $OUT/nginx/tmp-proxy;
	fastcgi_temp_path $OUT/nginx/tmp-fastcgi;
	uwsgi_temp_path $OUT/nginx/tmp-uwsgi;
	scgi_temp_path $OUT/nginx/tmp-scgi;"

if [ "$UPSTREAM" = nginx ]; then
	start_nginx upstream "
worker_processes 1;
events { worker_connections 4096; }
http {
	$nginx_http_common
	server {
		listen 127.0.0.1:$UPSTREAM_PORT;
		default_type text/plain;
		location = /sign {
			add_header Set-Cookie \"session=alice; Path=/; HttpOnly; SameSite=Lax\" always;
			return 200 \"ok\n\";
		}
		location / { return 200 \"ok\n\"; }
	}
}"
else
	"$OUT/upstream" -addr "127.0.0.1:$UPSTREAM_PORT" -sign /sign 2>"$OUT/upstream.log" &
	PIDS+=($!)
fi
wait_port "$UPSTREAM_PORT"

BENCH_SECRET=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
export BENCH_SECRET BENCH_OUT="$OUT" BENCH_ADMIN_PORT=$ADMIN_PORT BENCH_UPSTREAM_PORT=$UPSTREAM_PORT \
	BENCH_BARE_PORT=$BARE_PORT BENCH_VERIFY_PORT=$VERIFY_PORT BENCH_ISSUE_PORT=$ISSUE_PORT BENCH_SIGN_PORT=$SIGN_PORT \
	BENCH_FLOOR_PORT=$FLOOR_PORT BENCH_FLOOR_ISSUE_PORT=$FLOOR_ISSUE_PORT \
	BENCH_FLOOR_SIGN_PORT=$FLOOR_SIGN_PORT
HOME="$OUT" XDG_DATA_HOME="$OUT" XDG_CONFIG_HOME="$OUT" \
	"$OUT/caddy" run --config "$ROOT/bench/Caddyfile" --adapter caddyfile >"$OUT/caddy.log" 2>&1 &
CADDY_PID=$!
PIDS+=($CADDY_PID)
for p in $BARE_PORT $VERIFY_PORT $ISSUE_PORT $SIGN_PORT $FLOOR_PORT $FLOOR_ISSUE_PORT $FLOOR_SIGN_PORT; do wait_port "$p"; done

NGINX_PID=
if [ "$NGINX" = 1 ]; then
	start_nginx front "
worker_processes auto;
events { worker_connections 4096; }
http {
	$nginx_http_common
	upstream app {
		server 127.0.0.1:$UPSTREAM_PORT;
		keepalive 64;
	}
	server {
		listen 127.0.0.1:$NGINX_BARE_PORT;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
		}
	}
	server {
		listen 127.0.0.1:$NGINX_USERID_PORT;
		userid on;
		userid_name uid;
		userid_path /;
		userid_expires 365d;
		location / {
			proxy_pass http://app;
			proxy_http_version 1.1;
			proxy_set_header Connection \"\";
			proxy_set_header X-Visitor-Id \$uid_got\$uid_set;
		}
	}
}"
	NGINX_PID=${PIDS[-1]}
	wait_port "$NGINX_BARE_PORT"
	wait_port "$NGINX_USERID_PORT"
fi

# --- cookies --------------------------------------------------------------------------------

# set_cookie URL NAME [curl args...]: the NAME=value pair of the response's Set-Cookie.
set_cookie() {
	local url=$1 name=$2
	shift 2
	curl -sS --max-time 5 -o /dev/null -D - "$@" "$url" |
		tr -d '\r' | awk -v n="$name" 'tolower($1) == "set-cookie:" && index($2, n "=") == 1 { sub(/;.*/, "", $2); print $2; exit }'
}

VID=$(set_cookie "http://127.0.0.1:$ISSUE_PORT/" vid)
[ -n "$VID" ] || die "the issue site set no vid cookie (see $OUT/caddy.log)"
SESSION=$(set_cookie "http://127.0.0.1:$SIGN_PORT/sign" session -H "Cookie: $VID")
[ -n "$SESSION" ] || die "the sign site set no session cookie"
[ "$SESSION" != "session=alice" ] || die "the sign site sent session unsigned"
VERIFY_COOKIE="$VID; $SESSION"
# A verified request gets no Set-Cookie back: no new ID, no re-signing, nothing cleared.
extra=$(curl -sS --max-time 5 -o /dev/null -D - -H "Cookie: $VERIFY_COOKIE" "http://127.0.0.1:$VERIFY_PORT/" | tr -d '\r' | grep -ci '^set-cookie:' || true)
[ "$extra" = 0 ] || die "the verify site answered a valid cookie with Set-Cookie"
UID_COOKIE=
if [ "$NGINX" = 1 ]; then
	UID_COOKIE=$(set_cookie "http://127.0.0.1:$NGINX_USERID_PORT/" uid)
	[ -n "$UID_COOKIE" ] || die "nginx userid set no uid cookie"
fi

# --- variants -------------------------------------------------------------------------------

# name|baseline|url|Cookie header ("" for none)|pid whose process tree is the front server.
# *-bare-cookie sends the verify variant's Cookie header to the bare server: the cost of the
# bigger request alone, which the verify ratio includes.
VARIANTS=(
	"caddy-bare|caddy-bare|http://127.0.0.1:$BARE_PORT/||$CADDY_PID"
	"caddy-bare-cookie|caddy-bare|http://127.0.0.1:$BARE_PORT/|$VERIFY_COOKIE|$CADDY_PID"
	"caddy-floor|caddy-bare|http://127.0.0.1:$FLOOR_PORT/|$VERIFY_COOKIE|$CADDY_PID"
	"caddy-verify|caddy-bare|http://127.0.0.1:$VERIFY_PORT/|$VERIFY_COOKIE|$CADDY_PID"
	"caddy-floor-issue|caddy-bare|http://127.0.0.1:$FLOOR_ISSUE_PORT/||$CADDY_PID"
	"caddy-issue|caddy-bare|http://127.0.0.1:$ISSUE_PORT/||$CADDY_PID"
	"caddy-bare-sign|caddy-bare-sign|http://127.0.0.1:$BARE_PORT/sign|$VID|$CADDY_PID"
	"caddy-floor-sign|caddy-bare-sign|http://127.0.0.1:$FLOOR_SIGN_PORT/sign|$VID|$CADDY_PID"
	"caddy-sign|caddy-bare-sign|http://127.0.0.1:$SIGN_PORT/sign|$VID|$CADDY_PID"
)
if [ "$NGINX" = 1 ]; then
	VARIANTS+=(
		"nginx-bare|nginx-bare|http://127.0.0.1:$NGINX_BARE_PORT/||$NGINX_PID"
		"nginx-bare-cookie|nginx-bare|http://127.0.0.1:$NGINX_BARE_PORT/|$UID_COOKIE|$NGINX_PID"
		"nginx-userid-verify|nginx-bare|http://127.0.0.1:$NGINX_USERID_PORT/|$UID_COOKIE|$NGINX_PID"
		"nginx-userid-issue|nginx-bare|http://127.0.0.1:$NGINX_USERID_PORT/||$NGINX_PID"
	)
fi

# ONLY: the matching variants and their baselines, in the usual order.
if [ -n "${ONLY:-}" ]; then
	wanted=" "
	for v in "${VARIANTS[@]}"; do
		IFS='|' read -r name base _ <<<"$v"
		[[ $name =~ ^($ONLY)$ ]] && wanted+="$name $base "
	done
	[ "$wanted" != " " ] || die "ONLY=$ONLY matches no variant name"
	kept=()
	for v in "${VARIANTS[@]}"; do
		[[ $wanted == *" ${v%%|*} "* ]] && kept+=("$v")
	done
	VARIANTS=("${kept[@]}")
fi

CLK_TCK=$(getconf CLK_TCK)
# tree_pids PID: the process and its children (nginx master and workers).
tree_pids() {
	echo "$1"
	if command -v pgrep >/dev/null; then
		pgrep -P "$1" || true
	else
		for f in /proc/[0-9]*/stat; do
			[ "$(awk '{ sub(/^.*\) /, ""); print $2 }' "$f" 2>/dev/null)" = "$1" ] && basename "$(dirname "$f")"
		done
		true
	fi
}
# cpu_ticks PID: user+system ticks of the process tree.
cpu_ticks() {
	local t=0 p
	for p in $(tree_pids "$1"); do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
	done
	echo "$t"
}
# rss_kb PID: resident set of the process tree in KiB (VmRSS).
rss_kb() {
	local t=0 p
	for p in $(tree_pids "$1"); do
		[ -r "/proc/$p/status" ] || continue
		t=$((t + $(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status")))
	done
	echo "$t"
}

# run_wrk DURATION URL COOKIE: prints "req/s p99_us requests errors".
run_wrk() {
	local args=(-t"$THREADS" -c"$CONNECTIONS" -d"$1"s --latency --timeout 5s)
	[ -z "$3" ] || args+=(-H "Cookie: $3")
	timeout $(($1 + 30)) wrk "${args[@]}" "$2" | awk '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return (v + 0) * 1000
			if (v ~ /s$/) return (v + 0) * 1000000
			return v + 0
		}
		/^ +99%/ { p99 = us($2) }
		/requests in/ { n = $1 }
		/Requests\/sec:/ { rps = $2 }
		/Non-2xx|Socket errors/ { err = err $0 }
		END { gsub(/ +/, "_", err); printf "%s %d %s %s\n", rps, p99, n, (err == "" ? "-" : err) }'
}

RESULTS="$OUT/results.tsv"
printf 'round\tvariant\treq_s\tp99_us\tcpu_us_per_req\trss_start_kib\trss_end_kib\terrors\n' >"$RESULTS"

log "warming up (${WARMUP}s each)"
for v in "${VARIANTS[@]}"; do
	IFS='|' read -r name _ url cookie _ <<<"$v"
	run_wrk "$WARMUP" "$url" "$cookie" >/dev/null
done

n=${#VARIANTS[@]}
log "$(printf '%-5s %-20s %10s %9s %10s %15s  %s' round variant req/s p99_us cpu_us/req rss_KiB errors)"
for round in $(seq "$ROUNDS"); do
	for i in $(seq 0 $((n - 1))); do
		# rotate the order each round so no variant always follows the same one
		IFS='|' read -r name _ url cookie pid <<<"${VARIANTS[$(((i + round - 1) % n))]}"
		rss0=$(rss_kb "$pid")
		cpu0=$(cpu_ticks "$pid")
		read -r rps p99 reqs errs < <(run_wrk "$DURATION" "$url" "$cookie")
		cpu1=$(cpu_ticks "$pid")
		rss1=$(rss_kb "$pid")
		cpu_req=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
		printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$rps" "$p99" "$cpu_req" "$rss0" "$rss1" "$errs" >>"$RESULTS"
		log "$(printf '%-5s %-20s %10s %9s %10s %15s  %s' "$round" "$name" "$rps" "$p99" "$cpu_req" "$rss0→$rss1" "$errs")"
	done
done

# --- profiles (PROFILE=1) ------------------------------------------------------------------

# Caddy's CPU profile, and its allocation profile before and after, during a wrk run of each
# Caddy variant, through the admin API's /debug/pprof.
if [ "${PROFILE:-0}" = 1 ]; then
	admin="http://127.0.0.1:$ADMIN_PORT/debug/pprof"
	for v in "${VARIANTS[@]}"; do
		IFS='|' read -r name _ url cookie _ <<<"$v"
		case $name in caddy-*) ;; *) continue ;; esac
		log "profiling $name"
		curl -sS --max-time 10 -o "$OUT/pprof-$name.allocs0" "$admin/allocs"
		curl -sS --max-time $((DURATION + 10)) -o "$OUT/pprof-$name.cpu" "$admin/profile?seconds=$((DURATION > 2 ? DURATION - 1 : 1))" &
		prof=$!
		run_wrk "$DURATION" "$url" "$cookie" >"$OUT/pprof-$name.wrk" # req/s p99_us requests errors
		wait "$prof"
		curl -sS --max-time 10 -o "$OUT/pprof-$name.allocs1" "$admin/allocs"
	done
	log "profiles: go tool pprof -top -diff_base $OUT/pprof-caddy-bare.cpu $OUT/caddy $OUT/pprof-caddy-verify.cpu"
	log "          go tool pprof -sample_index=alloc_space -top -diff_base $OUT/pprof-caddy-verify.allocs0 $OUT/caddy $OUT/pprof-caddy-verify.allocs1"
fi

# --- summary --------------------------------------------------------------------------------

# median VARIANT COLUMN
median() {
	awk -F'\t' -v v="$1" -v c="$2" 'NR > 1 && $2 == v { print $c }' "$RESULTS" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# paired VARIANT BASELINE: median, min and max over rounds of variant/baseline req/s.
paired() {
	awk -F'\t' -v v="$1" -v b="$2" 'NR > 1 && $2 == v { x[$1] = $3 } NR > 1 && $2 == b { y[$1] = $3 }
		END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' "$RESULTS" | sort -g |
		awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR] }'
}
# paired_cpu VARIANT BASELINE: median, min and max over rounds of variant/baseline CPU µs/req.
paired_cpu() {
	awk -F'\t' -v v="$1" -v b="$2" 'NR > 1 && $2 == v { x[$1] = $5 } NR > 1 && $2 == b { y[$1] = $5 }
		END { for (r in x) if (y[r] > 0) print x[r] / y[r] }' "$RESULTS" | sort -g |
		awk '{ a[NR] = $1 } END { m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR] }'
}
has_rows() { awk -F'\t' -v v="$1" 'NR > 1 && $2 == v { found = 1 } END { exit !found }' "$RESULTS"; }
rss_range() { # first start and last end of a variant, MiB
	awk -F'\t' -v v="$1" 'NR > 1 && $2 == v { if (s == "") s = $6; e = $7 } END { printf "%.1f→%.1f", s / 1024, e / 1024 }' "$RESULTS"
}

echo
echo "signed_cookies load test: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -sr)"
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, $ROUNDS rounds, upstream: $UPSTREAM; $(go version | awk '{ print $3 }'), $("$OUT/caddy" version | awk '{ print $1 }')${NGINX_BIN:+, $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //')}"
echo
printf '%-20s %12s %10s %8s %22s %11s %14s\n' variant "req/s (med)" "p99 µs" ratio "paired ratio (min-max)" "CPU µs/req" "RSS MiB"
for v in "${VARIANTS[@]}"; do
	IFS='|' read -r name base _ _ _ <<<"$v"
	rps=$(median "$name" 3)
	brps=$(median "$base" 3)
	ratio=$(awk -v a="$rps" -v b="$brps" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
	pr="-"
	[ "$name" = "$base" ] || pr=$(paired "$name" "$base")
	printf '%-20s %12.0f %10.0f %8s %22s %11s %14s\n' "$name" "$rps" "$(median "$name" 4)" "$ratio" "$pr" "$(median "$name" 5)" "$(rss_range "$name")"
done
echo
echo "The module against the same requests without it: req/s and CPU µs/request paired per round"
echo "(median, min-max), and the CPU added per request, median, in µs and as a share of the baseline's:"
cpu_delta() { awk -v a="$(median "$1" 5)" -v b="$(median "$2" 5)" 'BEGIN { printf "%+.1f %+.1f%%", a - b, (b > 0 ? (a - b) / b * 100 : 0) }'; }
printf '  %-14s    %-18s %22s %22s %s\n' variant baseline "req/s ratio" "CPU ratio" "added CPU"
for pair in caddy-verify:caddy-bare-cookie caddy-verify:caddy-floor caddy-issue:caddy-floor-issue caddy-sign:caddy-bare-sign caddy-sign:caddy-floor-sign; do
	a=${pair%%:*} b=${pair#*:}
	has_rows "$a" && has_rows "$b" || continue
	printf '  %-14s vs %-18s %22s %22s %s\n' "$a" "$b" "$(paired "$a" "$b")" "$(paired_cpu "$a" "$b")" "$(cpu_delta "$a" "$b")"
done
echo
echo "ratio: median req/s over the median of its baseline (caddy-* vs caddy-bare, caddy-sign vs"
echo "caddy-bare-sign, nginx-* vs nginx-bare); paired: the same ratio per round. *-bare-cookie: the"
echo "bare server sent the verify variant's Cookie header (the cost of the bigger request alone)."
echo "caddy-floor*: no module; built-in handlers forward and set the same headers."
echo "CPU µs/req: the front server's own CPU time (Caddy, or nginx master and workers) per request,"
echo "steadier than req/s on a shared machine. RSS: first start → last end. Raw rows: $RESULTS"
