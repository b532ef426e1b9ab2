# Mozpool on Raft. `make help` lists the targets.
GO ?= go
PKGS ?= ./...

.PHONY: help build run test test-ui test-python test-faults test-short fuzz bench bench-lab bench-outcome bench-vs-etcd bench-ui bench-catchup bench-queue bench-scale lint check-monitoring fmt tidy cover clean

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build mozpoold and mozpoolctl into bin/
	$(GO) build -o bin/ ./cmd/...

run: ## run a local 3-node cluster with the simulated sample lab in the foreground (Ctrl-C stops it)
	MOZPOOL_TIME_SCALE=$${MOZPOOL_TIME_SCALE:-0.1} scripts/devcluster.sh run 3

# The browser tests run apart, without the race detector: they drive real
# servers through Chromium, which the detector slows several times over.
RACE_PKGS = $(shell $(GO) list $(PKGS) | grep -v '/e2e/ui$$')

test: ## run every test (race detector on), then the browser tests and the Python client test
	MOZPOOL_TEST_QUIET=1 $(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	$(MAKE) --no-print-directory test-ui
	$(MAKE) --no-print-directory test-python

test-ui: ## the web UI in headless Chromium against 3-node clusters; screenshots in screenshots/
	@echo "$(GO) test -count=1 -v ./e2e/ui/ (full output in ui-test.out)"
	@MOZPOOL_TEST_QUIET=1 $(GO) test -count=1 -timeout 15m -v ./e2e/ui/ > ui-test.out 2>&1; status=$$?; \
		grep -E '^(--- |    --- |ok |FAIL|PASS$$)|screenshot|no Chromium' ui-test.out; \
		[ $$status -eq 0 ] || { grep -E -B2 -A15 'Error Trace|panic:' ui-test.out | head -300; exit $$status; }

test-python: ## drive a local 3-node cluster with the Python requests library, as mozpoolclient does
	GO=$(GO) scripts/python-client-test.sh

# The fault suite needs root (network namespaces), ip(8) and iptables(8);
# it installs Debian's iproute2 and iptables when they are missing. Without
# MOZPOOL_FAULTS=1 (make test) its test skips itself.
test-faults: ## the fault suite: 3 nodes in network namespaces partitioned, slowed, paused and killed; prints a table per scenario (root)
	@[ "$$(id -u)" = 0 ] || { echo "test-faults: needs root (network namespaces, iptables)"; exit 1; }
	@if ! command -v ip >/dev/null || ! command -v iptables >/dev/null; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y iproute2 iptables; fi
	MOZPOOL_FAULTS=1 MOZPOOL_TEST_QUIET=1 $(GO) test -count=1 -v -timeout 20m -run '^TestFaults$$' ./e2e/faults/

test-short: ## skip the multi-node cluster tests
	$(GO) test -short -count=1 $(PKGS)

# Each fuzz target runs for FUZZTIME; go test alone runs only their seeds
# (testdata/fuzz and the f.Add corpora). FUZZFLAGS passes more flags, e.g.
# FUZZFLAGS=-parallel=1 for one fuzzing worker. New inputs the fuzzer finds
# go to the Go cache's fuzz directory; a failing one is written to the
# package's testdata/fuzz/<target>/, where it stays as a regression seed.
FUZZTIME ?= 10s
FUZZFLAGS ?=
FUZZ_DIRS = $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)

fuzz: ## run every fuzz target for FUZZTIME each (default 10s), then print the corpus sizes
	@set -e; cache="$$($(GO) env GOCACHE)/fuzz"; mod="$$($(GO) list -m)"; summary=""; \
	for dir in $(FUZZ_DIRS); do \
		for t in $$($(GO) test -list 'Fuzz.*' $$dir/ | grep '^Fuzz'); do \
			echo "== $$dir $$t"; \
			MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$dir/; \
			seeds=$$(find $$dir/testdata/fuzz/$$t -type f 2>/dev/null | wc -l); \
			found=$$(find "$$cache/$$mod/$${dir#./}/$$t" -type f 2>/dev/null | wc -l); \
			summary="$$summary$$(printf '%-14s %-24s %8s %8s' "$$dir" "$$t" "$$seeds" "$$found")\n"; \
		done; \
	done; \
	printf '\ncorpus sizes in files (cache: %s)\n%-14s %-24s %8s %8s\n%b' "$$cache" package target testdata cache "$$summary"

# Every figure of the performance goals: the write path against etcd, the
# failover write gaps (crash, hung leader, graceful restart), reads at
# 10,000 devices, a whole lab power-cycled at once, and 50,000 boards
# (bench-scale, which needs half an hour of its own: BENCH_SCALE=0 skips it).
BENCH_SCALE ?= 1

bench: ## every performance figure: writes against etcd, failover gaps, reads at 10k, a whole lab at once, 50,000 boards (~1 h; BENCH_SCALE=0 skips the 50k run)
	scripts/bench-vs-etcd.sh
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench ReplicatedWrites -benchtime 3s ./daemon/daemontest/
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench FailoverWriteGap -benchtime 20x ./daemon/daemontest/
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench DeviceReads10k -benchtime 200x ./httpapi/
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench . -benchtime 300x ./e2e/bench/
	scripts/failover-bench.sh 20 kill
	scripts/failover-bench.sh 10 stop
	$(MAKE) --no-print-directory bench-lab
	if [ "$(BENCH_SCALE)" != 0 ]; then $(MAKE) --no-print-directory bench-scale; fi

bench-lab: ## every board of a 1,002-board lab power-cycled at once: time to 1,000 ready against the ideal, and the ratio
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench WholeLab -benchtime 1x -timeout 20m ./e2e/bench/lab/

bench-outcome: ## the outcome soak: 300 simulated boards (broken, flaky, a stuck relay board) under CI-like traffic, ~4 minutes
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench Outcome -benchtime 1x -timeout 15m ./e2e/bench/

bench-vs-etcd: ## the claim-and-release workload against this cluster and a 3-member etcd (installs etcd-server), with the ratio
	scripts/bench-vs-etcd.sh

bench-queue: ## one Apply assigning a board / creating a request with 10,000 boards and 10,000 waiting; the queue view (µs, ms)
	$(GO) test -run '^$$' -bench 'BenchmarkQueue_(Assign|Create)' -benchtime 2000x -benchmem ./fsm/
	$(GO) test -run '^$$' -bench 'BenchmarkQueue_View' -benchtime 20x ./fsm/

# BENCH_DEVICES sets the Devices page benchmark's lab size.
BENCH_DEVICES ?= 10002

bench-ui: ## the Devices page with BENCH_DEVICES (10,002) devices in headless Chromium: first paint, search, rebuild (ms)
	MOZPOOL_TEST_QUIET=1 MOZPOOL_BENCH_DEVICES=$(BENCH_DEVICES) $(GO) test -run '^$$' -bench 'DevicesPage$$' -benchtime 3x -timeout 30m ./e2e/ui/

bench-catchup: ## restart of one node of a 10,000-device cluster: seconds to serving, snapshot size, restore time, replay rate
	MOZPOOL_TEST_QUIET=1 $(GO) test -run '^$$' -bench CatchUp10k -benchtime 3x -timeout 30m ./daemon/daemontest/

# Most of its half hour is the boards settling and the wait for the first
# health checks: make bench runs it last (BENCH_SCALE=0 skips it).
# BENCH_BOARDS sets the lab size.
BENCH_BOARDS ?= 50000

bench-scale: ## 3 nodes, a BENCH_BOARDS (50,000) board simulated lab, health checks on: CPU, RSS, snapshot size, restart to serving, the Devices page; against targets (~30 min)
	MOZPOOL_BENCH_BOARDS=$(BENCH_BOARDS) scripts/bench-scale.sh all

lint: ## gofmt, go vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet $(PKGS)

# promtool comes with Debian's prometheus package, installed if missing.
check-monitoring: ## promtool check and unit-test the alerting rules under deploy/prometheus
	@command -v promtool >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus; }
	promtool check rules deploy/prometheus/mozpool.rules.yml
	cd deploy/prometheus && promtool test rules mozpool.rules.test.yml

fmt: ## format the code
	gofmt -w .

tidy: ## tidy go.mod
	$(GO) mod tidy

cover: ## test coverage report in cover.out
	$(GO) test -count=1 -coverprofile=cover.out $(PKGS)
	$(GO) tool cover -func=cover.out | tail -1

clean: ## remove build output, the dev cluster's data and the UI screenshots
	rm -rf bin .devcluster .bench-scale* cover.out ui-test.out screenshots
