package datapath

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"golang.org/x/sys/unix"
)

// Kernel feature probes. Each runs once per process and returns nil when the
// kernel has the feature, an error wrapping ebpf.ErrNotSupported that names
// the missing feature when it does not, and any other error (EPERM: no
// CAP_BPF or CAP_SYS_ADMIN) when the probe could not tell. Load decides with
// them, never with a kernel version.

// HaveCmpxchg probes for the BPF_CMPXCHG instruction (5.12+, with
// BPF_XCHG): where it exists the flow table is shared
// (Datapath.SharedFlowTable).
func HaveCmpxchg() error { return haveCmpxchg() }

var haveCmpxchg = sync.OnceValue(func() error {
	// asm.CmpXchg.Mem leaves the immediate 0 (a plain atomic add on the
	// wire); the kernel reads the operation from it: BPF_CMPXCHG is
	// 0xf0 | BPF_FETCH, as clang emits it.
	cmpxchg := asm.CmpXchg.Mem(asm.RFP, asm.R1, asm.DWord, -8)
	cmpxchg.Constant = 0xf1
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "nsint_probe",
		Type:    ebpf.SocketFilter,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 0),
			asm.StoreMem(asm.RFP, -8, asm.R0, asm.DWord),
			asm.Mov.Imm(asm.R1, 1),
			cmpxchg,
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	switch {
	case err == nil:
		prog.Close()
		return nil
	case errors.Is(err, unix.EINVAL):
		// The verifier refuses the instruction ("uses reserved fields").
		return fmt.Errorf("kernel without BPF_CMPXCHG (5.12+): %w: %w", ebpf.ErrNotSupported, err)
	}
	return fmt.Errorf("BPF_CMPXCHG probe: %w", err)
})

// haveForEachMapElem probes for bpf_for_each_map_elem (5.13+) in the
// program type of the sweep.
var haveForEachMapElem = sync.OnceValue(func() error {
	return haveHelper("bpf_for_each_map_elem (5.13+)", ebpf.RawTracepoint, asm.FnForEachMapElem)
})

// haveCoarseClock probes for bpf_ktime_get_coarse_ns (5.11+).
var haveCoarseClock = sync.OnceValue(func() error {
	return haveHelper("bpf_ktime_get_coarse_ns (5.11+)", ebpf.SchedCLS, asm.FnKtimeGetCoarseNs)
})

// haveHelper asks cilium/ebpf's probe whether programs of type pt may call
// helper, naming the helper (and the kernel that brought it) in the error.
func haveHelper(name string, pt ebpf.ProgramType, helper asm.BuiltinFunc) error {
	err := features.HaveProgramHelper(pt, helper)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("kernel without %s for %s programs: %w", name, pt, err)
	}
	return fmt.Errorf("%s probe: %w", name, err)
}

// HaveDropReason probes whether the running kernel's skb:kfree_skb
// tracepoint passes a drop reason (enum skb_drop_reason: 5.17+, and
// distribution kernels that backported it), from kernel BTF as Load reads
// it. Where it does not, drops are still reported, with DropReasonKnown
// false (INT reason "unknown"). A kernel without BTF gives the error of
// loading it (which wraps ebpf.ErrNotSupported too); Load fails there.
func HaveDropReason() error {
	drops, err := kernelDrops()
	if err != nil {
		return err
	}
	if !drops.kfree.hasReason {
		return fmt.Errorf("kernel without a drop reason on skb:kfree_skb (5.17+): %w", ebpf.ErrNotSupported)
	}
	return nil
}

// has turns a probe's answer into whether the kernel has the feature: an
// error that does not say the feature is missing is returned, not taken for
// its absence.
func has(probe func() error) (bool, error) {
	err := probe()
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return false, nil
	}
	return false, err
}
