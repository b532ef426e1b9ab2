#!/usr/bin/env bash
# devcluster.sh — a local Mozpool cluster on loopback for development, demos
# and benchmarks.
#
#   scripts/devcluster.sh up [N]    start N nodes (default 3), load lab/lab.json,
#                                   wait for a leader, write .devcluster/nodes
#   scripts/devcluster.sh run [N]   up, print the URLs, stay in the foreground;
#                                   Ctrl-C stops everything
#   scripts/devcluster.sh down      stop every node (SIGTERM, then SIGKILL)
#   scripts/devcluster.sh status    the cluster as one node sees it
#   scripts/devcluster.sh kill I    SIGKILL node I (a crash)
#   scripts/devcluster.sh start I   restart node I from its data dir
#
# Nodes first start on port 0; the ports they get are saved in
# .devcluster/nodeI/ports and reused on restart, so URLs stay valid.
# Environment: MOZPOOL_INVENTORY (default lab/lab.json), MOZPOOL_DEVCLUSTER_DIR
# (default .devcluster), GO (default go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir=${MOZPOOL_DEVCLUSTER_DIR:-$root/.devcluster}
inventory=${MOZPOOL_INVENTORY:-$root/lab/lab.json}
bin=$root/bin
GO=${GO:-go}

die() { echo "devcluster: $*" >&2; exit 1; }

build() {
	mkdir -p "$bin"
	(cd "$root" && "$GO" build -o "$bin/" ./cmd/mozpoold ./cmd/mozpoolctl)
}

token() { cat "$dir/token"; }
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
	local http=127.0.0.1:0 raft=127.0.0.1:0 gossip=127.0.0.1:0 args=()
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
	"$bin/mozpoold" -data "$ndir/data" -name "$(node_name "$i")" -rack "rack$i" \
		-http "$http" -raft "$raft" -gossip "$gossip" -token "$(token)" "${args[@]}" \
		>>"$ndir/log" 2>&1 &
	echo $! >"$ndir/pid"
	wait_for test -s "$ndir/data/node.json" || die "node $i did not start; see $ndir/log"
	if [ ! -f "$ndir/ports" ]; then
		local f=$ndir/data/node.json
		{
			echo "http=$(sed -n 's|.*"http_addr": *"http://\([^"]*\)".*|\1|p' "$f")"
			echo "raft=$(sed -n 's/.*"raft_addr": *"\([^"]*\)".*/\1/p' "$f")"
			echo "gossip=$(sed -n 's/.*"gossip_addr": *"\([^"]*\)".*/\1/p' "$f")"
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
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token"
	build
	start_node 1
	wait_for "$bin/mozpoolctl" --server "$(node_url 1)" health || die "node 1 found no leader"
	for i in $(seq 2 "$n"); do start_node "$i"; done
	write_nodes
	for u in $(cat "$dir/nodes"); do
		wait_for "$bin/mozpoolctl" --server "$u" health || die "$u is not healthy"
	done
	ctl --server "$(node_url 1)" inventory sync --ship-it "$inventory" >"$dir/inventory-sync.log" ||
		die "inventory sync failed; see $dir/inventory-sync.log"
	echo "dev cluster up: $n nodes; API URLs in $dir/nodes"
}

cmd_down() {
	[ -f "$dir/size" ] || return 0
	local i
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
	echo "Mozpool dev cluster is running. API / UI on:"
	sed 's/^/  /' "$dir/nodes"
	echo "Cluster status:  $bin/mozpoolctl --server $(node_url 1) status"
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
*) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
