#!/usr/bin/env bash
# python-client-test.sh — run tests/python/test_client.py (the API driven the
# way the Python mozpoolclient drives it) against a real local cluster.
#
# Steps: find a python3 that can import requests (installing Debian's
# python3-requests with apt-get when none can), generate a small lab on
# loopback addresses of its own, start a 3-node dev cluster and the simulated
# lab in a temporary directory, wait until a board is ready, run the test,
# and always stop the cluster. Exits non-zero when any step or test fails.
#
# Environment: PYTHON (default python3), MOZPOOL_TIME_SCALE (default 0.05),
# MOZPOOL_READY_TIMEOUT (seconds to wait for a ready board, and for the
# test's request; default 300), KEEP_TMP=1 keeps the temporary directory
# (logs) afterwards, GO (default go).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
GO=${GO:-go}
ready_timeout=${MOZPOOL_READY_TIMEOUT:-300}

say() { echo "python-client-test: $*" >&2; }
die() { say "$*"; exit 1; }

# 1. A python3 that can import requests: $PYTHON (default python3), else the
# system's /usr/bin/python3 (where Debian's python3-requests goes, which a
# python3 earlier on the PATH, e.g. pyenv's, does not see), else install
# python3-requests with apt-get and look again.
find_python() {
	local p
	for p in "${PYTHON:-python3}" /usr/bin/python3; do
		# From /, so that the repository's requests/ (a Go package) is not
		# taken for the library.
		if command -v "$p" >/dev/null && (cd / && "$p" -c 'import requests; requests.get') 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}
if ! python=$(find_python); then
	say "no python3 can import requests; installing python3-requests"
	sudo=()
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || die "not root and no sudo: install python3-requests"
		sudo=(sudo -n)
	fi
	command -v apt-get >/dev/null || die "no apt-get: install the python requests library"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3 python3-requests >/dev/null
	python=$(find_python) || die "python3 still cannot import requests"
fi
say "using $python (requests $(cd / && "$python" -c 'import requests; print(requests.__version__)'))"

# 2. A private directory for the cluster, torn down whatever happens.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mozpool-pytest.XXXXXX")
export MOZPOOL_DEVCLUSTER_DIR=$tmp/cluster
export MOZPOOL_TIME_SCALE=${MOZPOOL_TIME_SCALE:-0.05}
export GO
cleanup() {
	local rc=$?
	"$root/scripts/devcluster.sh" down >/dev/null 2>&1 || true
	if [ "$rc" != 0 ]; then
		say "failed (exit $rc); node and simulator logs:"
		for f in "$MOZPOOL_DEVCLUSTER_DIR"/node*/log "$MOZPOOL_DEVCLUSTER_DIR"/sim.log; do
			[ -f "$f" ] || continue
			echo "==> $f (last 30 lines)" >&2
			tail -n 30 "$f" >&2
		done
	fi
	if [ "${KEEP_TMP:-}" = 1 ]; then
		say "kept $tmp"
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 3. A lab of 3 racks × 2 boards with addresses and ports of its own, so
# that it does not clash with another simulated lab on this machine (a
# `make run`, whose lab is on 127.1 and 127.2 with ports 20700, 20701 and
# 2101; another run of this script; go test): loopback networks 127.N drawn
# at random from 10..249, ping and SUT ports that the kernel calls free
# (both asked for at once, so they differ), relay ports picked by the
# simulator. Nodes and boards are told the ports through devcluster.sh; the
# simulator refuses to start if a board's address and port are taken.
# No injected failures: the test is about the API, not about recovery.
net=$((10 + RANDOM % 240))
relay_net=$((10 + (net - 10 + 1 + RANDOM % 239) % 240))
read -r ping_port sut_port < <("$python" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s:
    x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))
')
[ -n "${sut_port:-}" ] || die "could not pick free ports"
export MOZPOOL_PING_PORT=$ping_port MOZPOOL_SUT_PORT=$sut_port
say "boards on 127.$net.0.0/16 (relays 127.$relay_net), ping port $ping_port, SUT port $sut_port"
(cd "$root" && "$GO" build -o "$tmp/bin/" ./cmd/mozpool-sim)
"$tmp/bin/mozpool-sim" generate -boards 2 -board-net "$net" -relay-net "$relay_net" -relay-port 0 >"$tmp/lab.json"
export MOZPOOL_INVENTORY=$tmp/lab.json
export MOZPOOL_SIM_ARGS="-broken 0 -fail-booting 0 -fail-mobile-init 0 -fail-downloading 0 -fail-extracting 0
	-fail-rebooting 0 -fail-running 0 -self-test-ok 1 -relay-recovery 10ms"

# 4. The cluster, with TLS (devcluster.sh's default) under the open
# policy: the client sends no credentials and trusts the cluster's CA
# through REQUESTS_CA_BUNDLE, as a lab would configure it.
"$root/scripts/devcluster.sh" up 3
server=$(head -1 "$MOZPOOL_DEVCLUSTER_DIR/nodes")
if [ -f "$MOZPOOL_DEVCLUSTER_DIR/tls/ca.pem" ]; then
	export REQUESTS_CA_BUNDLE=$MOZPOOL_DEVCLUSTER_DIR/tls/ca.pem SSL_CERT_FILE=$MOZPOOL_DEVCLUSTER_DIR/tls/ca.pem
fi
say "cluster up; API at $server${REQUESTS_CA_BUNDLE:+ (CA $REQUESTS_CA_BUNDLE)}"

# 5. Wait until a board is ready.
"$python" - "$server" "$ready_timeout" <<'EOF' || die "no board became ready"
import json, sys, time, urllib.request
server, timeout = sys.argv[1], float(sys.argv[2])
deadline = time.time() + timeout
states = {}
while time.time() < deadline:
    try:
        with urllib.request.urlopen(server + "/api/device/list/?details=1", timeout=10) as r:
            devices = json.load(r)["devices"]
        states = {d["name"]: d["state"] for d in devices}
        if "ready" in states.values():
            print("python-client-test: ready boards: %s" % sorted(n for n, s in states.items() if s == "ready"),
                  file=sys.stderr)
            sys.exit(0)
    except OSError as e:
        print("python-client-test: %s" % e, file=sys.stderr)
    time.sleep(1)
print("python-client-test: no ready board after %.0f s: %s" % (timeout, states), file=sys.stderr)
sys.exit(1)
EOF

# 6. The test. unittest exits non-zero when a test fails or errs.
cd "$root/tests/python"
MOZPOOL_SERVER=$server MOZPOOL_READY_TIMEOUT=$ready_timeout "$python" -m unittest -v test_client
