#!/usr/bin/env bash
# bench-vs-etcd.sh [DURATION] [CLIENTS] — the claim-and-release workload
# against this project and against a 3-member etcd, on this machine, in one
# run, with one load generator (scripts/loadgen).
#
# Mozpool: a 3-node dev cluster (scripts/devcluster.sh) with 1,002
# simulated boards at time scale 0.05; one operation creates a request for
# any board and returns it, round robin over the nodes (plain HTTP, as etcd
# here). etcd: Debian's
# etcd-server 3.4 (installed with apt-get when etcd is missing), 3 members on
# loopback with fsync on (its default), free ports; one operation is a
# transaction that puts a device key if absent, then a delete of it, through
# etcd's JSON gateway. Prints both and their ratio per client count, stops
# everything it started, and then prints the floor under this project's
# figures: hashicorp/raft alone, as a node configures it, with a state
# machine that does nothing (cluster.BenchmarkRaftFloor).
#   DURATION  measured time per client count (default 10s)
#   CLIENTS   comma-separated client counts (default 1,16,64)
# BENCH_PROFILE_DIR, if set, receives CPU profiles of the Mozpool leader
# and followers over the last client count's run (leader.prof, followerN.prof).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
duration=${1:-10s}
clients=${2:-1,16,64}
GO=${GO:-go}

if ! command -v etcd >/dev/null; then
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server etcd-client
fi

work=$(mktemp -d)
export MOZPOOL_DEVCLUSTER_DIR=$work/devcluster
etcd_pids=()
cleanup() {
	for p in "${etcd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	"$root/scripts/devcluster.sh" down >/dev/null 2>&1 || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# free_ports N: N TCP ports free on 127.0.0.1 right now.
free_ports() {
	python3 -c '
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}

"$GO" build -o "$work/loadgen" "$root/scripts/loadgen"

echo "== etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members on loopback"
read -r -a ports <<<"$(free_ports 6)"
cluster=""
for i in 0 1 2; do cluster+="e$i=http://127.0.0.1:${ports[$((i * 2 + 1))]},"; done
cluster=${cluster%,}
eurls=""
for i in 0 1 2; do
	client=${ports[$((i * 2))]} peer=${ports[$((i * 2 + 1))]}
	etcd --name "e$i" --data-dir "$work/etcd$i" \
		--listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
		--listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
		--initial-cluster "$cluster" --initial-cluster-state new --log-level error >"$work/etcd$i.log" 2>&1 &
	etcd_pids+=($!)
	eurls+="http://127.0.0.1:$client,"
done
eurls=${eurls%,}
for _ in $(seq 1 100); do
	ETCDCTL_API=3 etcdctl --endpoints "$eurls" endpoint health >/dev/null 2>&1 && break
	sleep 0.2
done
"$work/loadgen" -target etcd -urls "$eurls" -clients "$clients" -duration "$duration" | tee "$work/etcd.out"
for p in "${etcd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
etcd_pids=()

echo "== mozpool: 3 nodes, 1,002 simulated boards"
"$GO" run "$root/cmd/mozpool-sim" generate -boards 334 >"$work/lab.json"
# Plain HTTP, as the etcd members run: the same transport for both.
MOZPOOL_PLAIN_HTTP=1 MOZPOOL_INVENTORY=$work/lab.json MOZPOOL_TIME_SCALE=0.05 MOZPOOL_NODE_ARGS="-pprof 127.0.0.1:0" \
	"$root/scripts/devcluster.sh" up 3 >/dev/null
murls=$(paste -sd, "$MOZPOOL_DEVCLUSTER_DIR/nodes")
# The boards self-test when the lab starts: measure once most are ready.
python3 - "${murls%%,*}" <<'PY'
import json, sys, time, urllib.request
for _ in range(240):
    try:
        ds = json.load(urllib.request.urlopen(sys.argv[1] + "/api/device/list/?details=1"))["devices"]
        if sum(d["state"] == "ready" for d in ds) >= 0.75 * len(ds):
            break
    except Exception:
        pass
    time.sleep(0.5)
# Then until the lab is quiet: after their self-test the boards image
# themselves in advance until proven (a few net boots each), a burst of
# several hundred Raft entries a second that would otherwise share the
# machine with the measurement. Quiet: under 100 entries/s over 5 s,
# twice in a row (health checks alone are some 35/s), or 4 minutes.
def index():
    return json.load(urllib.request.urlopen(sys.argv[1] + "/api/cluster/status/"))["applied_index"]
start, quiet, rate = time.time(), 0, None
last = index()
while time.time() - start < 240 and quiet < 2:
    time.sleep(5)
    cur = index()
    rate = (cur - last) / 5
    last = cur
    quiet = quiet + 1 if rate < 100 else 0
print("lab settled: %.0f entries/s after %.0f s" % (rate, time.time() - start), flush=True)
PY
# BENCH_PROFILE_DIR: CPU profiles of the leader and a follower over the
# last client count's measured time.
if [ -n "${BENCH_PROFILE_DIR:-}" ]; then
	mkdir -p "$BENCH_PROFILE_DIR"
	last=${clients##*,}
	: >"$work/mozpool.out"
	if [ "$last" != "$clients" ]; then
		"$work/loadgen" -target mozpool -urls "$murls" -clients "${clients%,*}" -duration "$duration" | tee "$work/mozpool.out"
	fi
	secs=${duration%s}
	for i in 1 2 3; do
		dbg=$(grep -h 'serving pprof' "$MOZPOOL_DEVCLUSTER_DIR/node$i/log" | tail -1 | sed 's/.*url=//')
		role=follower$i
		if curl -s "$(sed -n "${i}p" "$MOZPOOL_DEVCLUSTER_DIR/nodes")/api/cluster/status/" | grep -q '"state": *"Leader"'; then role=leader; fi
		(sleep 2; curl -s -o "$BENCH_PROFILE_DIR/$role.prof" "${dbg}profile?seconds=$secs") &
	done
	"$work/loadgen" -target mozpool -urls "$murls" -clients "$last" -duration "$duration" | tee -a "$work/mozpool.out"
	wait
	echo "profiles in $BENCH_PROFILE_DIR (go tool pprof -top $root/bin/mozpoold FILE)"
else
	"$work/loadgen" -target mozpool -urls "$murls" -clients "$clients" -duration "$duration" | tee "$work/mozpool.out"
fi

echo
printf '%-8s %14s %12s %7s   %16s %16s\n' clients "mozpool ops/s" "etcd ops/s" ratio "mozpool entries/s" "etcd entries/s"
# Fields: target clients= ops/s= p50= p99= errors= entries/s= entries/op=
paste -d' ' "$work/mozpool.out" "$work/etcd.out" | awk '{
	split($2, c, "="); split($3, m, "="); split($11, e, "="); split($7, me, "="); split($15, ee, "=");
	printf "%-8s %14s %12s %7.2f   %16s %16s\n", c[2], m[2], e[2], m[2] / e[2], me[2], ee[2] }'

# The floor: hashicorp/raft alone as a node configures it (WAL, log cache,
# transport), a no-op state machine, no HTTP; one operation above is two
# writes. Skipped with BENCH_RAFT_FLOOR=0.
if [ "${BENCH_RAFT_FLOOR:-1}" != 0 ]; then
	"$root/scripts/devcluster.sh" down >/dev/null 2>&1 || true
	echo
	echo "== hashicorp/raft alone (cluster.BenchmarkRaftFloor): 3 nodes on loopback, no-op FSM"
	(cd "$root" && "$GO" test -run '^$' -bench RaftFloor -benchtime 3s ./cluster/) |
		awk '/^BenchmarkRaftFloor/ { split($1, n, "="); sub(/-[0-9]+$/, "", n[2]);
			for (i = 1; i <= NF; i++) { if ($(i+1) == "writes/s") w = $i; if ($(i+1) == "p50_ms") p = $i }
			printf "clients=%-4s writes/s=%-7s (%d two-write ops/s) write_p50_ms=%s\n", n[2], w, w / 2, p }'
fi
