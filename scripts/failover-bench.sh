#!/usr/bin/env bash
# failover-bench.sh [TRIALS] [kill|stop] — leader failover time on a 3-node
# dev cluster.
#
# Each trial finds the leader, SIGKILLs its process (mode kill, the default: a
# crash) or SIGSTOPs it (mode stop: a hung process, a GC stall, a frozen VM;
# its kernel still accepts connections), and measures the time from then to
# the first successful write (a set-comments through mozpoolctl) sent to
# another node; then it restarts the killed node, or SIGCONTs the stopped one,
# and waits until every node is healthy again. Prints each trial and
# min/median/max in milliseconds.
# Starts its own dev cluster (scripts/devcluster.sh up 3) and stops it at the end.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
trials=${1:-10}
mode=${2:-kill}
case $mode in kill | stop) ;; *) echo "usage: $0 [TRIALS] [kill|stop]" >&2; exit 2 ;; esac
dc=$root/scripts/devcluster.sh
dir=${MOZPOOL_DEVCLUSTER_DIR:-$root/.devcluster}
ctl=$root/bin/mozpoolctl
# The dev cluster runs TLS (unless MOZPOOL_PLAIN_HTTP=1): trust its CA.
export MOZPOOL_CA_CERT=${MOZPOOL_CA_CERT:-$dir/tls/ca.pem}

"$dc" down >/dev/null 2>&1 || true
"$dc" up 3 >/dev/null
stopped=
# A stopped node is let go on before the cluster is stopped.
trap '[ -n "$stopped" ] && kill -CONT "$stopped" 2>/dev/null; "$dc" down >/dev/null 2>&1 || true' EXIT
mapfile -t urls <"$dir/nodes"
token=$(cat "$dir/token")

leader_index() {
	local i
	for i in "${!urls[@]}"; do
		if "$ctl" --server "${urls[$i]}" --json status 2>/dev/null | grep -q '"state": "Leader"'; then
			echo $((i + 1))
			return 0
		fi
	done
	return 1
}

all_healthy() {
	local u
	for u in "${urls[@]}"; do "$ctl" --server "$u" health >/dev/null 2>&1 || return 1; done
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

results=()
for t in $(seq 1 "$trials"); do
	for _ in $(seq 1 300); do all_healthy && break; sleep 0.1; done
	l=$(leader_index) || { echo "trial $t: no leader" >&2; exit 1; }
	other=$(( l % 3 ))          # index (0-based) of the next node
	start=$(now_ms)
	if [ "$mode" = stop ]; then
		stopped=$(cat "$dir/node$l/pid")
		kill -STOP "$stopped"
	else
		"$dc" kill "$l" >/dev/null
	fi
	until "$ctl" --server "${urls[$other]}" --token "$token" device set-comments panda-0001 "failover trial $t" >/dev/null 2>&1; do
		:
	done
	ms=$(( $(now_ms) - start ))
	results+=("$ms")
	if [ "$mode" = stop ]; then
		echo "trial $t: stopped node $l, first write through node $((other + 1)) after ${ms} ms"
		kill -CONT "$stopped"
		stopped=
	else
		echo "trial $t: killed node $l, first write through node $((other + 1)) after ${ms} ms"
		"$dc" start "$l" >/dev/null
	fi
done

sorted=$(printf '%s\n' "${results[@]}" | sort -n)
n=${#results[@]}
echo "failover ($mode) over $n trials: min $(echo "$sorted" | head -1) ms, median $(echo "$sorted" | sed -n "$(( (n + 1) / 2 ))p") ms, max $(echo "$sorted" | tail -1) ms"
