// Package datapath loads nsint's eBPF objects (package bpf), configures them
// and reads what they report.
//
// It owns: the load-time constants, the one verification of the main TC
// programs and the drop hook, per-attachment dispatcher programs (a dozen
// instructions that stamp the port ID and direction into a per-CPU slot and
// tail-call the shared program), the port configuration maps, the
// watchlist, per-port counters, and the single reader of the report ring that decodes
// reports into Event values without allocating; and the kernel facts Load
// decides with (probe.go, kernel.go): each feature probe runs once per
// process and returns nil, an error wrapping ebpf.ErrNotSupported that names
// the missing feature, or the error that kept it from telling (EPERM), which
// Load returns instead of taking the feature for absent.
//
// It must not: attach TC programs (pkg/tc takes the *ebpf.Program that
// Dispatcher returns), discover namespaces or interfaces, allocate port IDs,
// encode INT reports, or log. Errors are returned wrapped; counters are
// exposed (Stats, PortCounters, Reader.Malformed).
//
// Lifetime: a Datapath owns its maps and programs; Close releases them, but
// programs already attached keep running with their maps until detached —
// and, once Pin has pinned its state, keep counting into it until a later
// Datapath recovers that generation (generation.go). Sweep takes the counts
// no packet will report; it and the TC programs coordinate through
// cpu_state (bpf/headers/nsint_sweep.h).
// Dispatchers are owned by the caller. SetPort must precede Dispatcher for
// the same port, since the dispatcher carries the port's namespace. There is
// one Reader at a time; Event.Data points into the reader's buffer and is
// valid only until the next Read.
package datapath
