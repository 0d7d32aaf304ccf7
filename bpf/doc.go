// Package bpf holds nsint's eBPF C sources and the Go bindings bpf2go
// generates from them (nsint_bpfel.go, nsint_bpfel.o), both committed so a
// plain `go build` needs no clang.
//
// Go takes the structs and enums it shares with the programs from the
// generated types (the -type flags in gen.go), never from copies of its own;
// pkg/datapath's tests hold what it uses to the object's BTF.
//
// It owns the programs and the C/Go shared types only: loading, load-time
// constants, dispatchers, attachment and reading events are pkg/datapath's
// and pkg/tc's. Regenerate with `go generate ./bpf/` (clang, llvm-strip and
// libbpf headers needed); the output is byte-for-byte reproducible.
package bpf
