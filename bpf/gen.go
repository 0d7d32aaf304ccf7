package bpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -output-stem nsint -type event -type identity -type flow_cache -type nsint_direction -type nsint_event_type -type nsint_reason -type nsint_event_flags -type nsint_port_flags -type nsint_stat -type nsint_drop_class -type nsint_sweep_kind -type nsint_sweep_flags -type nsint_sweep_result Nsint nsint.c -- -I./headers
