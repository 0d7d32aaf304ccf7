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

.PHONY: test
test: build ## run the whole test suite (as root: privileged tests included), fuzz targets briefly
	$(GO) test -count=1 -timeout 30m ./...
	$(MAKE) fuzz

.PHONY: fuzz
fuzz: ## run each fuzz target for FUZZTIME (default 10s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./pkg/intreport/

.PHONY: lint
lint: ## gofmt, go vet and the C format check
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v clang-format >/dev/null; then \
		clang-format --dry-run --Werror bpf/*.c bpf/headers/nsint*.h; \
	else echo "clang-format not installed: C format check skipped"; fi

.PHONY: bench-bpf
bench-bpf: ## eBPF datapath ns/packet through BPF_PROG_TEST_RUN (root)
	$(GO) test -run '^$$' -bench . -count 1 ./pkg/datapath/

.PHONY: bench
bench: bench-bpf ## all benchmarks (root)

.PHONY: clean
clean: ## remove build outputs
	rm -rf $(BIN)
