# nsint — make help lists every target.
SHELL := /bin/bash
GO ?= go
BIN := bin
export CGO_ENABLED ?= 0
GOFLAGS_BUILD := -trimpath -ldflags "-s -w"

# Fuzz time per target in CI (the full form: FUZZTIME=10m make fuzz).
FUZZTIME ?= 10s

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-16s %s\n", $$1, $$2}'

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
	@$(MAKE) --no-print-directory build
	$(GO) build -o $(BIN)/nsint-demo ./hack/demo
	$(BIN)/nsint-demo --bin $(BIN)

.PHONY: test
test: build ## run the whole test suite (as root: privileged tests included), fuzz targets briefly
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 10s; the full form: FUZZTIME=10m make fuzz)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./pkg/intreport/
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./pkg/intreport/
	$(GO) test -run '^$$' -fuzz '^FuzzIngest$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0 ./pkg/collector/

.PHONY: lint
lint: ## gofmt, go vet and the C format check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	clang-format-14 --dry-run -Werror bpf/*.c bpf/headers/*.h

.PHONY: bench-bpf
bench-bpf: ## eBPF datapath ns/packet through BPF_PROG_TEST_RUN, both flow-table designs, verification cost (root)
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./pkg/datapath/

.PHONY: bench
bench: bench-bpf ## all benchmarks (root)

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN)
