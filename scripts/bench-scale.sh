#!/usr/bin/env bash
# bench-scale.sh — the dev cluster at the size of a large lab: 3 nodes and a
# simulated lab of MOZPOOL_BENCH_BOARDS boards (default 50,000; mozpool-sim
# generate), health checks running, at time scale 1. Prints a table of
# figures against their targets:
#
#   - CPU (cores, from /proc/PID/stat over MOZPOOL_BENCH_WINDOW seconds,
#     default 60) and peak RSS of each node once the boards have settled
#     and the first have been health-checked (11 minutes after the start);
#   - the newest snapshot's size, and per 1,000 boards;
#   - seconds from restarting one follower (SIGTERM, start) to it serving
#     reads again (caught up with the leader's commit index);
#   - the Devices page at that size in headless Chromium (make bench-ui
#     BENCH_DEVICES=N), after the cluster is down.
#
#   scripts/bench-scale.sh [all]        every phase below, then down
#   scripts/bench-scale.sh up           generate the lab, start the cluster
#   scripts/bench-scale.sh settle       wait for the boards to settle
#   scripts/bench-scale.sh measure      CPU, RSS, snapshot, restart; profiles
#   scripts/bench-scale.sh ui           the Devices page benchmark
#   scripts/bench-scale.sh table        print the figures recorded so far
#   scripts/bench-scale.sh down         stop the cluster
#
# The boards settle at the pace the cluster drives them from "new" through
# their self-test to "ready" (at 50,000 boards on a 2-core machine, some
# 20 minutes): settled is when no board is new and the counts of boards
# by state hold still (see cmd_settle), or after MOZPOOL_BENCH_SETTLE
# seconds (default 5400; the table then says so).
#
# Environment: MOZPOOL_BENCH_BOARDS, MOZPOOL_BENCH_WINDOW,
# MOZPOOL_BENCH_SETTLE, MOZPOOL_BENCH_NETS (second octets of the boards'
# and relay boards' loopback addresses, default "41 42"),
# MOZPOOL_BENCH_PROFILE (default 1: 30 s CPU and heap profiles of every node
# into DIR/prof, top items printed), MOZPOOL_DEVCLUSTER_DIR (default
# .bench-scale), MOZPOOL_PLAIN_HTTP, GO. The simulator runs as one process
# per 6,000 boards (MOZPOOL_SIM_SHARDS), each within the open file limit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
boards=${MOZPOOL_BENCH_BOARDS:-50000}
window=${MOZPOOL_BENCH_WINDOW:-60}
settle_timeout=${MOZPOOL_BENCH_SETTLE:-5400}
read -r board_net relay_net <<<"${MOZPOOL_BENCH_NETS:-41 42}"
profile=${MOZPOOL_BENCH_PROFILE:-1}
export MOZPOOL_DEVCLUSTER_DIR=${MOZPOOL_DEVCLUSTER_DIR:-$root/.bench-scale}
dir=$MOZPOOL_DEVCLUSTER_DIR
export MOZPOOL_TIME_SCALE=1 MOZPOOL_INVENTORY=$dir.lab.json
export MOZPOOL_SIM_SHARDS=${MOZPOOL_SIM_SHARDS:-$(((boards + 5999) / 6000))}
export MOZPOOL_NODE_ARGS="${MOZPOOL_NODE_ARGS:-} -pprof 127.0.0.1:0"
results=$dir.results # figures, one "key value" a line, kept across phases
dc=$root/scripts/devcluster.sh

die() { echo "bench-scale: $*" >&2; exit 1; }
say() { echo "bench-scale: $*" >&2; }
put() { # put KEY VALUE: record a figure
	[ -f "$results" ] && sed -i "/^$1 /d" "$results"
	echo "$1 $2" >>"$results"
}
get() { sed -n "s/^$1 //p" "$results" 2>/dev/null | tail -1; }

curl_args=(-s --max-time 60)
if [ "$(cat "$dir/plain-http" 2>/dev/null || echo "${MOZPOOL_PLAIN_HTTP:-0}")" != 1 ]; then
	curl_args+=(--cacert "$dir/tls/ca.pem")
fi
node_url() { sed -n "${1}p" "$dir/nodes"; }
node_pid() { cat "$dir/node$1/pid"; }
pprof_url() { grep -h 'serving pprof' "$dir/node$1/log" | tail -1 | sed 's/.*url=//'; }
status_json() { curl "${curl_args[@]}" "$(node_url "$1")/api/cluster/status/"; }

cmd_up() {
	"$dc" down >/dev/null 2>&1 || true
	rm -f "$results"
	(cd "$root" && "$GO" build -o bin/ ./cmd/mozpool-sim)
	local per=$(((boards + 2) / 3))
	"$root/bin/mozpool-sim" generate -boards "$per" -board-net "$board_net" -relay-net "$relay_net" >"$MOZPOOL_INVENTORY"
	put boards $((per * 3))
	say "$((per * 3)) boards, $MOZPOOL_SIM_SHARDS simulator processes; starting the cluster"
	local t0=$SECONDS
	"$dc" up 3 >&2
	put up_s $((SECONDS - t0))
	date +%s >"$dir.started"
}

# settle_poll PREV NEXT: read node 1's devices by state into NEXT (JSON) and
# print "new moved total": boards in new, and how many boards the counts
# moved since PREV (the sum of the counts' changes, halved).
settle_poll() {
	status_json 1 | python3 -c '
import json, sys
s = json.load(sys.stdin)["devices_by_state"]
try:
    prev = json.load(open(sys.argv[1]))
except Exception:
    prev = None
json.dump(s, open(sys.argv[2], "w"))
moved = "-" if prev is None else sum(abs(s.get(k, 0) - prev.get(k, 0)) for k in set(s) | set(prev)) // 2
print(s.get("new", 0), moved, sum(s.values()))' "$1" "$2"
}

# The lab has settled when no board is new and, twice running, the counts
# by state moved by at most 0.2% of the boards in 15 s: the boards rest in
# ready (health-checked every 10 minutes), in a failed state, or in a
# self-test that hangs (one in five of the simulator's, timed out after an
# hour).
cmd_settle() {
	local t0=$SECONDS line new moved total calm=0
	rm -f "$dir.settle.prev" "$dir.settle.next"
	while true; do
		line=$(settle_poll "$dir.settle.prev" "$dir.settle.next" 2>/dev/null || echo "? - 0")
		[ -f "$dir.settle.next" ] && mv "$dir.settle.next" "$dir.settle.prev"
		read -r new moved total <<<"$line"
		say "$(date -u +%H:%M:%S) new $new, moved $moved of $total in 15 s"
		if [ "$new" = 0 ] && [ "$moved" != - ] && [ "$total" -gt 0 ] && [ $((moved * 500)) -le "$total" ]; then
			calm=$((calm + 1))
		else
			calm=0
		fi
		if [ "$calm" -ge 2 ]; then
			put settled yes
			break
		fi
		if [ $((SECONDS - t0)) -ge "$settle_timeout" ]; then
			put settled "no"
			break
		fi
		sleep 15
	done
	local started
	started=$(cat "$dir.started" 2>/dev/null || date +%s)
	put settle_s $(($(date +%s) - started))
	status_json 1 | python3 -c 'import json, sys; print("bench-scale: devices by state:", json.load(sys.stdin)["devices_by_state"])' >&2
}

# cpu_ticks PID: user + system clock ticks of PID so far.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# rss_kib PID [FIELD]: VmRSS (or RssAnon, RssFile) of PID in KiB.
rss_kib() { awk -v f="${2:-VmRSS}:" '$1 == f { print $2 }' "/proc/$1/status"; }

cmd_measure() {
	[ -f "$dir/nodes" ] || die "no cluster (bench-scale.sh up)"
	# A ready board is health-checked 10 minutes after it became ready,
	# and every 10 minutes after that: measure once the first boards have
	# had theirs.
	local started wait
	started=$(cat "$dir.started" 2>/dev/null || date +%s)
	wait=$((started + 660 - $(date +%s)))
	if [ "$wait" -gt 0 ]; then
		say "waiting ${wait}s for the first health checks"
		sleep "$wait"
	fi
	local hz i t0 pids=() before=() peak=() anon=()
	hz=$(getconf CLK_TCK)
	for i in 1 2 3; do
		pids[i]=$(node_pid "$i")
		before[i]=$(cpu_ticks "${pids[i]}")
		peak[i]=0
		anon[i]=0
	done
	say "sampling CPU and RSS of the 3 nodes for ${window}s"
	t0=$(date +%s.%N)
	local end=$((SECONDS + window)) r
	while [ "$SECONDS" -lt "$end" ]; do
		for i in 1 2 3; do
			r=$(rss_kib "${pids[i]}")
			[ "$r" -gt "${peak[i]}" ] && peak[i]=$r
			r=$(rss_kib "${pids[i]}" RssAnon)
			[ "$r" -gt "${anon[i]}" ] && anon[i]=$r
		done
		sleep 1
	done
	local elapsed
	elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	for i in 1 2 3; do
		put "cpu$i" "$(awk -v d=$(($(cpu_ticks "${pids[i]}") - before[i])) -v hz="$hz" -v s="$elapsed" 'BEGIN { printf "%.3f", d / hz / s }')"
		put "rss$i" "$(awk -v k="${peak[i]}" 'BEGIN { printf "%.0f", k / 1024 }')"
		put "anon$i" "$(awk -v k="${anon[i]}" 'BEGIN { printf "%.0f", k / 1024 }')"
	done

	if [ "$profile" = 1 ]; then
		say "profiling every node for 30s into $dir/prof/"
		mkdir -p "$dir/prof"
		for i in 1 2 3; do
			(curl -s --max-time 60 "$(pprof_url "$i")profile?seconds=30" -o "$dir/prof/cpu$i.pb.gz"
				curl -s --max-time 60 "$(pprof_url "$i")heap" -o "$dir/prof/heap$i.pb.gz") &
		done
		wait
	fi

	# The newest snapshot of any node.
	local snap size
	snap=$( (ls -t "$dir"/node*/data/snapshots/*/state.bin 2>/dev/null || true) | head -1)
	size=$(stat -c %s "$snap" 2>/dev/null || echo -) # - : none taken yet
	put snapshot_bytes "$size"

	# Restart a follower: SIGTERM, start, time to serving reads.
	local f leader_name
	leader_name=$(status_json 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"]["name"])')
	for f in 3 2 1; do
		[ "$(printf 'mobile-imaging-%03d' "$f")" != "$leader_name" ] && break
	done
	say "restarting node $f (a follower)"
	kill -TERM "$(node_pid "$f")"
	while kill -0 "$(node_pid "$f")" 2>/dev/null; do sleep 0.1; done
	local t1 url code
	t1=$(date +%s.%N)
	"$dc" start "$f" >&2
	url=$(node_url "$f")
	for _ in $(seq 1 1200); do
		code=$(curl "${curl_args[@]}" -o /dev/null -w '%{http_code}' "$url/api/device/panda-0001/status/" || true)
		[ "$code" = 200 ] && break
		sleep 0.05
	done
	[ "$code" = 200 ] || die "node $f did not serve within a minute"
	put restart_s "$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')"
}

cmd_ui() {
	say "the Devices page with $boards devices (headless Chromium)"
	local out
	out=$(cd "$root" && make --no-print-directory bench-ui BENCH_DEVICES="$boards" 2>&1 | tee /dev/stderr)
	put ui_paint_ms "$(echo "$out" | sed -n 's/.* \([0-9.]*\) first-paint-ms.*/\1/p' | tail -1)"
	put ui_search_ms "$(echo "$out" | sed -n 's/.* \([0-9.]*\) search-ms.*/\1/p' | tail -1)"
	put ui_rebuild_ms "$(echo "$out" | sed -n 's/.* \([0-9.]*\) rebuild-ms.*/\1/p' | tail -1)"
}

# row NAME VALUE TARGET OK: one line of the table.
row() { printf '%-52s %10s   %-8s %s\n' "$1" "$2" "$3" "$4"; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "" || v == "-") print "?"; else print (v + 0 < t + 0) ? "ok" : "MISSED" }'; }

cmd_table() {
	local n i v per
	n=$(get boards)
	echo
	echo "bench-scale: $n boards, 3 nodes, time scale 1 (settled: $(get settled), after $(get settle_s) s)"
	row figure value target ""
	for i in 1 2 3; do
		v=$(get "cpu$i")
		row "node $i CPU (cores, ${window}s)" "$v" "< 0.5" "$(verdict "$v" 0.5)"
	done
	for i in 1 2 3; do
		v=$(get "rss$i")
		row "node $i RSS peak (MiB)" "$v" "< 600" "$(verdict "$v" 600)"
		row "  of it anonymous (MiB; the rest: bolt files mapped)" "$(get "anon$i")" "" ""
	done
	v=$(get snapshot_bytes)
	per=$(awk -v b="$v" -v n="$n" 'BEGIN { if (n > 0 && b != "-") printf "%.3f", b / 1048576 / (n / 1000); else print "-" }')
	row "snapshot (MiB)" "$(awk -v b="$v" 'BEGIN { if (b == "-") print "-"; else printf "%.1f", b / 1048576 }')" "" ""
	row "snapshot per 1,000 boards (MiB)" "$per" "<= 1" "$(verdict "$per" 1.000001)"
	v=$(get restart_s)
	row "restarted follower serving (s)" "$v" "< 10" "$(verdict "$v" 10)"
	row "Devices page first paint (ms)" "$(get ui_paint_ms)" "" ""
	row "Devices page search (ms)" "$(get ui_search_ms)" "" ""
	row "Devices page rebuild (ms)" "$(get ui_rebuild_ms)" "" ""
	if [ "$profile" = 1 ] && [ -f "$dir/prof/cpu1.pb.gz" ]; then
		for i in 1 2 3; do
			echo
			echo "node $i CPU profile, top 8 by own time ($dir/prof/cpu$i.pb.gz):"
			(cd "$root" && "$GO" tool pprof -top -nodecount=8 bin/mozpoold "$dir/prof/cpu$i.pb.gz" 2>/dev/null | sed -n '/flat%/,$p')
		done
	fi
}

case "${1:-all}" in
up) cmd_up ;;
settle) cmd_settle ;;
measure) cmd_measure ;;
ui) cmd_ui ;;
table) cmd_table ;;
down) "$dc" down ;;
all)
	trap '"$dc" down >/dev/null 2>&1 || true' EXIT
	cmd_up
	cmd_settle
	cmd_measure
	"$dc" down >&2
	cmd_ui
	cmd_table
	;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
esac
