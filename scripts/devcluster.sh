#!/usr/bin/env bash
# devcluster.sh — a local Mozpool cluster on loopback for development, demos
# and benchmarks.
#
#   scripts/devcluster.sh up [N]    start N nodes (default 3) and the simulated lab
#                                   (mozpool-sim), load the lab's inventory, wait
#                                   for a leader, write .devcluster/nodes
#   scripts/devcluster.sh run [N]   up, print the URLs, stay in the foreground;
#                                   Ctrl-C stops everything
#   scripts/devcluster.sh down      stop every node (SIGTERM, then SIGKILL)
#   scripts/devcluster.sh status    the cluster as one node sees it
#   scripts/devcluster.sh kill I    SIGKILL node I (a crash)
#   scripts/devcluster.sh start I   restart node I from its data dir
#
# Nodes first start on port 0; the ports they get are saved in
# .devcluster/nodeI/ports and reused on restart, so URLs stay valid. Each node
# serves PXE files over TFTP, receives its boards' syslog over UDP and pings
# boards in TCP mode; the simulator's boards (one loopback address each)
# fetch their PXE files from it and log to it.
# Environment: MOZPOOL_INVENTORY (default lab/lab.json), MOZPOOL_TIME_SCALE
# (default 1; `make run` uses 0.1) for nodes and simulator, MOZPOOL_SIM_ARGS
# (extra mozpool-sim flags), MOZPOOL_NODE_ARGS (extra mozpoold flags, e.g.
# -raft-timeout 500ms), MOZPOOL_PING_PORT and MOZPOOL_SUT_PORT (the
# boards' ping and SUT agent ports, for nodes and simulator alike; default
# the programs' own, 20700 and 20701), MOZPOOL_DEVCLUSTER_DIR (default
# .devcluster), GO (default go), MOZPOOL_PLAIN_HTTP=1 (run without TLS),
# MOZPOOL_SIM_SHARDS (default 1: simulator processes, see start_sim).
#
# TLS is on: `up` makes a CA (mozpoolctl tls ca) and a certificate per node
# (mozpoolctl tls cert) in .devcluster/tls/, nodes serve HTTPS and run Raft
# over mutual TLS, and the simulator and mozpoolctl trust the CA
# (.devcluster/tls/ca.pem: give it to clients as MOZPOOL_CA_CERT, or as
# REQUESTS_CA_BUNDLE to python-requests).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MOZPOOL_DEVCLUSTER_DIR:-$root/.devcluster}
inventory=${MOZPOOL_INVENTORY:-$root/lab/lab.json}
bin=$root/bin
GO=${GO:-go}
# The time scale given to `up` is kept for `start`, so restarting a node
# does not reset the cluster's scale.
scale=${MOZPOOL_TIME_SCALE:-$(cat "$dir/scale" 2>/dev/null || echo 1)}
# Likewise the boards' ports (empty: the programs' defaults).
ping_port=${MOZPOOL_PING_PORT:-$(cat "$dir/ping-port" 2>/dev/null || true)}
sut_port=${MOZPOOL_SUT_PORT:-$(cat "$dir/sut-port" 2>/dev/null || true)}
# board_ports: the flags that tell mozpoold and mozpool-sim alike.
board_ports=()
if [ -n "$ping_port" ]; then board_ports+=(-ping-port "$ping_port"); fi
if [ -n "$sut_port" ]; then board_ports+=(-sut-port "$sut_port"); fi

die() { echo "devcluster: $*" >&2; exit 1; }

build() {
	mkdir -p "$bin"
	(cd "$root" && "$GO" build -o "$bin/" ./cmd/mozpoold ./cmd/mozpoolctl ./cmd/mozpool-sim)
}

token() { cat "$dir/token"; }

# TLS is kept as `up` chose it, for `start`.
plain=${MOZPOOL_PLAIN_HTTP:-$(cat "$dir/plain-http" 2>/dev/null || echo 0)}
tls_dir=$dir/tls
if [ "$plain" != 1 ]; then
	export MOZPOOL_CA_CERT=$tls_dir/ca.pem
fi

# tls_args I: the TLS flags of node I (its certificate is made on first use).
tls_args() {
	if [ "$plain" = 1 ]; then
		echo -plain-http
		return
	fi
	local name
	name=$(node_name "$1")
	if [ ! -f "$tls_dir/$name.pem" ]; then
		"$bin/mozpoolctl" tls cert --node "$name" --ca "$tls_dir/ca.pem" --ca-key "$tls_dir/ca-key.pem" \
			--dir "$tls_dir" >/dev/null
	fi
	echo -tls-ca "$tls_dir/ca.pem" -tls-cert "$tls_dir/$name.pem" -tls-key "$tls_dir/$name-key.pem"
}
ctl() { "$bin/mozpoolctl" --token "$(token)" "$@"; }

node_name() { printf 'mobile-imaging-%03d' "$1"; }

# node_url I: the HTTP URL node I advertises (from its node.json).
node_url() {
	local f=$dir/node$1/data/node.json
	[ -f "$f" ] || return 1
	sed -n 's/.*"http_addr": *"\([^"]*\)".*/\1/p' "$f"
}

# is_running I: node I's process exists and is not a zombie (a killed node
# whose parent has gone may linger unreaped).
is_running() {
	local pidf=$dir/node$1/pid pid
	[ -f "$pidf" ] || return 1
	pid=$(cat "$pidf")
	kill -0 "$pid" 2>/dev/null || return 1
	[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# wait_for CMD...: poll until CMD succeeds (30 s at most).
wait_for() {
	local i
	for i in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	return 1
}

start_node() {
	local i=$1 ndir=$dir/node$1
	mkdir -p "$ndir/data"
	local http=127.0.0.1:0 raft=127.0.0.1:0 gossip=127.0.0.1:0 tftp=127.0.0.1:0 syslog=127.0.0.1:0 args=()
	if [ -f "$ndir/ports" ]; then
		# shellcheck disable=SC1091
		. "$ndir/ports"
	fi
	if [ "$i" = 1 ]; then
		args+=(-bootstrap)
	else
		args+=(-join "$(node_url 1)")
	fi
	rm -f "$ndir/data/node.json"
	local tls
	read -ra tls < <(tls_args "$i")
	"$bin/mozpoold" "${tls[@]}" -data "$ndir/data" -name "$(node_name "$i")" -rack "rack$i" \
		-http "$http" -raft "$raft" -gossip "$gossip" -tftp "$tftp" -syslog "$syslog" \
		-ping-mode tcp ${board_ports[@]+"${board_ports[@]}"} \
		-time-scale "$scale" -token "$(token)" "${args[@]}" ${MOZPOOL_NODE_ARGS:-} \
		>>"$ndir/log" 2>&1 &
	echo $! >"$ndir/pid"
	wait_for test -s "$ndir/data/node.json" || die "node $i did not start; see $ndir/log"
	if [ ! -f "$ndir/ports" ]; then
		local f=$ndir/data/node.json
		{
			echo "http=$(sed -n 's|.*"http_addr": *"https\{0,1\}://\([^"]*\)".*|\1|p' "$f")"
			echo "raft=$(sed -n 's/.*"raft_addr": *"\([^"]*\)".*/\1/p' "$f")"
			echo "gossip=$(sed -n 's/.*"gossip_addr": *"\([^"]*\)".*/\1/p' "$f")"
			echo "tftp=$(sed -n 's/.*"tftp_addr": *"\([^"]*\)".*/\1/p' "$f")"
			echo "syslog=$(sed -n 's/.*"syslog_addr": *"\([^"]*\)".*/\1/p' "$f")"
		} >"$ndir/ports"
	fi
}

write_nodes() {
	local i out=$dir/nodes.tmp
	: >"$out"
	for i in $(seq 1 "$(cat "$dir/size")"); do node_url "$i" >>"$out"; done
	mv "$out" "$dir/nodes"
}

cmd_up() {
	local n=${1:-3}
	[[ $n =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number"
	if [ -f "$dir/size" ]; then
		for i in $(seq 1 "$(cat "$dir/size")"); do
			is_running "$i" && die "a dev cluster is already running (scripts/devcluster.sh down)"
		done
		rm -rf "$dir"
	fi
	mkdir -p "$dir"
	echo "$n" >"$dir/size"
	echo "$scale" >"$dir/scale"
	echo "$ping_port" >"$dir/ping-port"
	echo "$sut_port" >"$dir/sut-port"
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token"
	plain=${MOZPOOL_PLAIN_HTTP:-0}
	echo "$plain" >"$dir/plain-http"
	build
	if [ "$plain" = 1 ]; then
		echo "devcluster: WARNING: MOZPOOL_PLAIN_HTTP=1: TLS is off, tokens travel in clear text" >&2
	else
		mkdir -p "$tls_dir"
		"$bin/mozpoolctl" tls ca --dir "$tls_dir" >/dev/null
	fi
	start_node 1
	wait_for "$bin/mozpoolctl" --server "$(node_url 1)" health || die "node 1 found no leader"
	for i in $(seq 2 "$n"); do start_node "$i"; done
	write_nodes
	for u in $(cat "$dir/nodes"); do
		wait_for "$bin/mozpoolctl" --server "$u" health || die "$u is not healthy"
	done
	start_sim
	ctl --server "$(node_url 1)" inventory sync --ship-it "$dir/inventory.json" >"$dir/inventory-sync.log" ||
		die "inventory sync failed; see $dir/inventory-sync.log"
	echo "dev cluster up: $n nodes and a simulated lab; API URLs in $dir/nodes, ground truth at $(cat "$dir/sim-url")"
}

# start_sim starts the simulated lab from the inventory and waits until it
# has written the inventory with its bound addresses. With
# MOZPOOL_SIM_SHARDS=K (K > 1) it starts K simulator processes, each
# running a K-th of the boards (mozpool-sim -shard), for labs larger than
# one process's open file limit allows; the inventory's relay boards then
# need fixed ports (mozpool-sim generate writes them) and it is synced as
# it is.
start_sim() {
	rm -f "$dir"/inventory*.json "$dir/sim.pid"
	# The relay boards' pause after each connection shrinks with the time
	# scale, as the nodes' relay client expects (at least 20 ms).
	local recovery k shards=${MOZPOOL_SIM_SHARDS:-1}
	[[ $shards =~ ^[1-9][0-9]*$ ]] || die "MOZPOOL_SIM_SHARDS must be a positive number"
	recovery=$(awk -v s="$scale" 'BEGIN { ms = 1000 * s; if (ms < 20) ms = 20; printf "%dms", ms }')
	# Each shard reads the cluster status to find the imaging servers:
	# together no more often than one simulator does (every 3 s).
	local discovery=()
	if [ "$shards" -gt 1 ]; then discovery=(-discovery "$((3 * shards))s"); fi
	for k in $(seq 0 $((shards - 1))); do
		# shellcheck disable=SC2086
		"$bin/mozpool-sim" -inventory "$inventory" -api "$(paste -sd, "$dir/nodes")" -shard "$k/$shards" \
			-write-inventory "$dir/inventory.$k.json" -time-scale "$scale" -relay-recovery "$recovery" \
			${discovery[@]+"${discovery[@]}"} ${board_ports[@]+"${board_ports[@]}"} ${MOZPOOL_SIM_ARGS:-} \
			>"$dir/sim.$k.out" 2>"$dir/sim.$k.log" &
		echo $! >>"$dir/sim.pid"
	done
	for k in $(seq 0 $((shards - 1))); do
		wait_for test -s "$dir/inventory.$k.json" || die "the simulator did not start; see $dir/sim.$k.log"
		wait_for grep -q '^ground truth: ' "$dir/sim.$k.out" || die "the simulator did not start; see $dir/sim.$k.log"
	done
	if [ "$shards" = 1 ]; then
		mv "$dir/inventory.0.json" "$dir/inventory.json"
	else
		cp "$inventory" "$dir/inventory.json"
	fi
	ln -sf sim.0.log "$dir/sim.log"
	sed -n 's/^ground truth: //p' "$dir/sim.0.out" | head -1 >"$dir/sim-url"
}

cmd_down() {
	[ -f "$dir/size" ] || return 0
	local i
	local pid
	for pid in $(cat "$dir/sim.pid" 2>/dev/null); do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for i in $(seq 1 "$(cat "$dir/size")"); do
		if is_running "$i"; then
			kill -TERM "$(cat "$dir/node$i/pid")" 2>/dev/null || true
		fi
	done
	for i in $(seq 1 "$(cat "$dir/size")"); do
		for _ in $(seq 1 200); do is_running "$i" || break; sleep 0.1; done
		is_running "$i" && kill -KILL "$(cat "$dir/node$i/pid")" 2>/dev/null || true
	done
	echo "dev cluster down"
}

first_live_url() {
	local i
	for i in $(seq 1 "$(cat "$dir/size")"); do
		if is_running "$i"; then node_url "$i"; return 0; fi
	done
	return 1
}

cmd_status() {
	[ -f "$dir/size" ] || die "no dev cluster (scripts/devcluster.sh up)"
	local u
	u=$(first_live_url) || die "no node is running"
	ctl --server "$u" status
}

cmd_kill() {
	local i=${1:?usage: devcluster.sh kill I}
	is_running "$i" || die "node $i is not running"
	kill -KILL "$(cat "$dir/node$i/pid")"
	for _ in $(seq 1 100); do is_running "$i" || break; sleep 0.05; done
	echo "killed node $i"
}

cmd_start() {
	local i=${1:?usage: devcluster.sh start I}
	[ -d "$dir/node$i/data" ] || die "node $i has no data dir"
	is_running "$i" && die "node $i is already running"
	[ -x "$bin/mozpoold" ] || build
	start_node "$i"
	echo "started node $i at $(node_url "$i")"
}

cmd_run() {
	trap 'cmd_down; exit 0' INT TERM
	cmd_up "${1:-3}"
	echo
	echo "Mozpool dev cluster is running. Web UI (any node):"
	sed 's|$|/ui/|; s/^/  /' "$dir/nodes"
	echo "API on the same URLs without /ui/ (admin token in $dir/token)."
	if [ "$plain" != 1 ]; then
		echo "TLS: the nodes' CA is $tls_dir/ca.pem (MOZPOOL_CA_CERT for mozpoolctl, REQUESTS_CA_BUNDLE for python)."
	fi
	echo "Simulated lab (ground truth): $(cat "$dir/sim-url")/boards"
	echo "Cluster status:  MOZPOOL_CA_CERT=${MOZPOOL_CA_CERT:-} $bin/mozpoolctl --server $(node_url 1) status"
	echo "Press Ctrl-C to stop."
	while true; do sleep 1; done
}

case "${1:-}" in
up) shift; cmd_up "$@" ;;
run) shift; cmd_run "$@" ;;
down) cmd_down ;;
status) cmd_status ;;
kill) shift; cmd_kill "$@" ;;
start) shift; cmd_start "$@" ;;
*) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
