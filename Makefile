# nsint — make help lists every target.
SHELL := /bin/bash
GO ?= go
BIN := bin
export CGO_ENABLED ?= 0
GOFLAGS_BUILD := -trimpath -ldflags "-s -w"

# Fuzz budget per target. By default a number of executions sized to about 10 s
# each here: a duration races Go 1.26's fuzz coordinator at its deadline
# (go.dev/issue/75804, fixed in Go 1.27: a bare "context deadline exceeded" failure
# with no failing input), a count cannot. FUZZTIME overrides all three, e.g. the
# full form FUZZTIME=20000000x make fuzz (a duration such as 10m works but can hit
# that race at its end).
FUZZTIME ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: generate
generate: ## regenerate the eBPF objects and Go bindings (bpf2go; needs clang, llvm, libbpf-dev)
	$(GO) generate ./bpf/...

.PHONY: check-generated
check-generated: generate ## fail when regenerating changes a committed file
	@if [ -n "$$(git status --porcelain -- bpf)" ]; then \
		echo "generated files differ from the committed ones; run 'make generate' and commit:"; \
		git status --porcelain -- bpf; git --no-pager diff --stat -- bpf; exit 1; fi

.PHONY: build
build: ## build the static binaries into bin/
	@mkdir -p $(BIN)
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/...

.PHONY: demo
demo: ## node of namespaces + agent + collector + traffic, prints the view of net1 (root; DEMO_DURATION=s, default until Ctrl-C)
	@command -v $(GO) >/dev/null || { echo "demo: Go not found: install Go 1.26 and put it on PATH (hack/install-deps.sh checks)"; exit 2; }
	@hack/install-deps.sh demo
	@$(MAKE) --no-print-directory build
	$(GO) build -o $(BIN)/nsint-demo ./hack/demo
	$(BIN)/nsint-demo --bin $(BIN)

# What make test needs besides Go, each a no-op in well under a second once
# installed: the Debian packages, the Kubernetes components the API-server
# tests and the local node run, and the OpenTelemetry Collector the OTLP
# export test sends to (both built from the Go module proxy, cached).
.PHONY: deps
deps: ## install what building and testing need: Debian packages (apt, only when missing; root), the Kubernetes components and the OpenTelemetry Collector (cached)
	@hack/install-deps.sh
	@hack/kube-bins/build.sh --node >/dev/null
	@hack/otelcol/build.sh >/dev/null

.PHONY: test
test: deps build ## the whole suite (root): go tests (privileged, API server), every benchmark once, fuzz, short soak, kernel 5.10 and 6.1 VMs, SR-IOV VM, local Kubernetes node
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory bench-once
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory soak SOAK=short
	$(MAKE) --no-print-directory test-kernels
	$(MAKE) --no-print-directory test-sriov
	$(MAKE) --no-print-directory e2e-cluster

# go test runs no benchmark, and make bench is not run by CI: this runs each
# one once, so that a benchmark the code has broken fails here and not in the
# next make bench. No figure is judged.
.PHONY: bench-once
bench-once: ## run every Go benchmark once (root for the eBPF ones; about 2 minutes), figures not judged
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./...

.PHONY: fuzz
fuzz: ## run each fuzz target (about 10 s each; the full form: FUZZTIME=20000000x make fuzz)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(or $(FUZZTIME),400000x) -fuzzminimizetime 0 ./pkg/intreport/
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(or $(FUZZTIME),400000x) -fuzzminimizetime 0 ./pkg/intreport/
	$(GO) test -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(or $(FUZZTIME),50000x) -fuzzminimizetime 0 ./pkg/collector/

# staticcheck is pinned by the tool directive in go.mod (go get -tool), so it
# needs nothing but the Go module proxy; exceptions are //lint:ignore lines
# with their reason, next to the code.
.PHONY: lint
lint: ## gofmt, go vet, staticcheck and the C format check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	clang-format-14 --dry-run -Werror bpf/*.c bpf/headers/*.h

.PHONY: bench-bpf
bench-bpf: ## eBPF datapath ns/packet (both flow-table designs, against BENCH_BEFORE), real packets, the sweep, verification (root)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./pkg/datapath/

# The commit the benchmarks compare with (main before the sweep): its programs
# are in pkg/datapath/testdata, its agent is built from git for the veth ratios.
BENCH_BEFORE := 06bce00

.PHONY: bench-before
bench-before: ## build the agent of BENCH_BEFORE (the commit benchmarks compare with) into bin/before/
	rm -rf $(BIN)/before-src && mkdir -p $(BIN)/before-src $(BIN)/before
	git archive $(BENCH_BEFORE) | tar -x -C $(BIN)/before-src
	cd $(BIN)/before-src && $(GO) build $(GOFLAGS_BUILD) -o ../before/ ./cmd/nsint-agent
	rm -rf $(BIN)/before-src

# One run of every benchmark: benchresults start stamps a new run file (commit,
# "-dirty" when the tree is, kernel, CPU), each step adds its figures to it (a
# key twice or a run of another commit fails), finish turns it into
# bench/out/results.json, bench-doc rewrites the summary table of
# docs/performance.md, and verdict prints figure, goal and PASS/FAIL for each
# goal of bench/goals.json and fails when one fails.
BENCH_RUN := bench/out/run.json
BENCH_ENV := NSINT_BENCH=1 NSINT_BENCH_BIN_DIR=../$(BIN) NSINT_RESULTS=$(CURDIR)/$(BENCH_RUN)

.PHONY: bench
bench: build bench-before ## all benchmarks in one run (root) -> bench/out/results.json, then each goal's verdict (exit 1 when one fails)
	@mkdir -p bench/out
	$(GO) build -o $(BIN)/benchresults ./hack/benchresults
	$(BIN)/benchresults start $(BENCH_RUN)
	set -o pipefail; $(MAKE) --no-print-directory bench-bpf 2>&1 | tee bench/out/bench-bpf.txt
	$(GO) test -c -o $(BIN)/nsint-bench.test ./bench/
	cd bench && $(BENCH_ENV) NSINT_BENCH_BPF_OUTPUT=out/bench-bpf.txt \
		../$(BIN)/nsint-bench.test -test.run '^TestBenchFoldBPF$$' -test.v
	cd bench && $(BENCH_ENV) \
		taskset -c 1 ../$(BIN)/nsint-bench.test -test.run '^TestBenchPipeline$$' -test.v
	cd bench && $(BENCH_ENV) NSINT_BENCH_BEFORE_AGENT=$(CURDIR)/$(BIN)/before/nsint-agent \
		../$(BIN)/nsint-bench.test -test.run '^TestBench(Veth|Scale)$$' -test.v -test.timeout 60m
	cd bench && $(BENCH_ENV) ../$(BIN)/nsint-bench.test -test.run '^TestBenchCollectors$$' -test.v -test.timeout 30m
	$(BIN)/benchresults finish $(BENCH_RUN) bench/out/results.json
	$(BIN)/benchresults doc bench/out/results.json docs/performance.md
	$(BIN)/benchresults verdict bench/out/results.json

# The collector load test alone, in a run file of its own (results.json is
# written only by make bench): BENCH_COLLECTORS_ENV gives its short form, e.g.
# NSINT_BENCH_ROUNDS=3 NSINT_BENCH_COLLECTOR_SECONDS=5.
BENCH_COLLECTORS_RUN := bench/out/collectors-run.json
.PHONY: bench-collectors
bench-collectors: build ## collector load test: simulated nodes against one and two replicas (root) -> bench/out/collectors.json
	@mkdir -p bench/out
	$(GO) build -o $(BIN)/benchresults ./hack/benchresults
	$(BIN)/benchresults start $(BENCH_COLLECTORS_RUN)
	$(GO) test -c -o $(BIN)/nsint-bench.test ./bench/
	cd bench && NSINT_BENCH=1 NSINT_BENCH_BIN_DIR=../$(BIN) NSINT_RESULTS=$(CURDIR)/$(BENCH_COLLECTORS_RUN) $(BENCH_COLLECTORS_ENV) \
		../$(BIN)/nsint-bench.test -test.run '^TestBenchCollectors$$' -test.v -test.timeout 30m
	$(BIN)/benchresults finish $(BENCH_COLLECTORS_RUN) bench/out/collectors.json

.PHONY: bench-verdict
bench-verdict: ## each goal of bench/goals.json against bench/out/results.json: figure, goal, PASS/FAIL (exit 1 when one fails)
	$(GO) run ./hack/benchresults verdict bench/out/results.json

.PHONY: bench-doc
bench-doc: ## rewrite the summary table of docs/performance.md from bench/out/results.json and bench/goals.json
	$(GO) run ./hack/benchresults doc bench/out/results.json docs/performance.md

# Soak form: short (CI, under 5 minutes: 100 pods, 3 restarts, 10 s outage) or full (500 pods, 10 restarts, 30 s).
SOAK ?= full

.PHONY: soak
soak: build ## churn, kill -9 restarts, collector outage, coexistence under traffic (root; SOAK=short for CI, default full) -> bench/out/soak.json
	@mkdir -p bench/out
	rm -f bench/out/soak.json
	$(GO) test -c -o $(BIN)/nsint-bench.test ./bench/
	cd bench && NSINT_SOAK=$(SOAK) NSINT_BENCH_BIN_DIR=../$(BIN) \
		../$(BIN)/nsint-bench.test -test.run '^TestSoak$$' -test.v -test.timeout 30m

.PHONY: test-kernels
test-kernels: ## privileged suites in Debian's 5.10 and 6.1 kernels (no TCX) under qemu TCG (root; full form: KERNELS="bullseye:tc bookworm:tc bookworm-backports:tcx")
	hack/vm/test-kernels.sh

.PHONY: test-sriov
test-sriov: ## the agent on SR-IOV VFs of QEMU's emulated igb in Debian's 6.1 under qemu TCG (root; full form: KERNELS="bookworm:tc bookworm-backports:tcx")
	hack/vm/test-sriov.sh

.PHONY: cluster-up
cluster-up: build ## one-node Kubernetes cluster here, no Docker (kubelet, containerd, Multus, nsint; root) -> prints KUBECONFIG=, COLLECTOR=, COLLECTOR_TOKEN=, COLLECTOR_CA=
	hack/local-cluster/cluster.sh up

.PHONY: cluster-down
cluster-down: ## remove everything cluster-up created, checked against its snapshot (safe to run twice)
	hack/local-cluster/cluster.sh down

.PHONY: e2e-cluster
e2e-cluster: build ## cluster-up and a Prometheus scraping the agents, the e2e/cluster tests against them, both down on every exit path (root)
	hack/local-cluster/e2e.sh

.PHONY: e2e-kind
e2e-kind: ## kind + Multus thick e2e: 2 workers, macvlan net1 over eth1, the view of net1, pod deletion (needs Docker; hack/kind/versions.env)
	hack/kind/e2e.sh

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN)
