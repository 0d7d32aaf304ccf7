package datapath

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// ErrPortNotConfigured is returned by Dispatcher for a port without SetPort.
var ErrPortNotConfigured = errors.New("port not configured")

// Where a dispatcher writes in its CPU's element of cpu_state: the identity,
// laid out as the generated struct says, in 32-bit stores.
const (
	identityOffset    = unsafe.Offsetof(bpf.NsintCpuState{}.Id)
	identitySize      = unsafe.Sizeof(bpf.NsintIdentity{})
	identityDirOffset = identityOffset + unsafe.Offsetof(bpf.NsintIdentity{}.Dir)
)

// The stores cover the identity exactly only if its size is a multiple of
// 4 (this fails to compile otherwise).
var _ [0]struct{} = [identitySize % 4]struct{}{}

// identityWords is the identity {port, dir (C value), netns} as 32-bit words in host
// order, the values of the dispatcher's stores.
func identityWords(port uint16, dir bpf.NsintNsintDirection, netns uint32) [identitySize / 4]uint32 {
	var w [identitySize / 4]uint32
	*(*bpf.NsintIdentity)(unsafe.Pointer(&w)) = bpf.NsintIdentity{Port: port, Dir: uint8(dir), Netns: netns}
	return w
}

// dispatcherSpec is the per-attachment entry program: it writes
// {port, dir, netns} into the identity of this CPU's element of cpu_state
// (map cpuStateFD) and tail-calls the main program for dir (map progsFD).
// TC runs with migration disabled, so the element still holds this identity
// when the main program reads it. If the tail call fails the packet goes on
// untouched (TC_ACT_UNSPEC).
//
// How it tail-calls is a trade (docs/performance.md, --tail-call). With
// the index an immediate (direct, the default) the verifier turns the call
// into a direct jump, which the JIT patches into each dispatcher as it loads
// it: text_poke with an IPI to every CPU, and the program array tracks every
// dispatcher on a list it walks on each load — about twice the load cost.
// With the index read back from the element (indirect) the value is unknown to
// the verifier and the JIT emits an indirect tail call: cheaper to load,
// some ns more per packet where the CPU needs a retpoline for it.
func dispatcherSpec(cpuStateFD, progsFD int, port uint16, dir netif.Direction, netns uint32, directTailCall bool) *ebpf.ProgramSpec {
	cdir, _ := cDirection(dir)
	index := asm.Mov.Imm(asm.R3, int32(cdir))
	if !directTailCall {
		index = asm.LoadMem(asm.R3, asm.R0, int16(identityDirOffset), asm.Byte) // opaque to the verifier
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.FnGetSmpProcessorId.Call(), // the key: this CPU
		asm.StoreMem(asm.RFP, -4, asm.R0, asm.Word),
		asm.LoadMapPtr(asm.R1, cpuStateFD),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
	}
	for i, w := range identityWords(port, cdir, netns) {
		insns = append(insns, asm.StoreImm(asm.R0, int16(identityOffset)+int16(4*i), int64(int32(w)), asm.Word))
	}
	insns = append(insns,
		index,
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.LoadMapPtr(asm.R2, progsFD),
		asm.FnTailCall.Call(),
		asm.Mov.Imm(asm.R0, -1).WithSymbol("out"), // TC_ACT_UNSPEC
		asm.Return(),
	)
	return &ebpf.ProgramSpec{
		Name:         fmt.Sprintf("nsint_d%d_%c", port, dir.String()[0]),
		Type:         ebpf.SchedCLS,
		License:      "Dual BSD/GPL",
		Instructions: insns,
	}
}

// Dispatcher builds the program to attach for port id in direction dir. It
// verifies in microseconds; the caller attaches it (TCX or cls_bpf) and
// closes it after detaching. SetPort(id, …) must have been called.
func (d *Datapath) Dispatcher(id uint16, dir netif.Direction) (*ebpf.Program, error) {
	return d.dispatcher(id, dir, !d.cfg.IndirectTailCall)
}

// dispatcher is Dispatcher with the kind of tail call given, for benchmarks.
func (d *Datapath) dispatcher(id uint16, dir netif.Direction, directTailCall bool) (*ebpf.Program, error) {
	if !dir.Valid() {
		return nil, fmt.Errorf("dispatcher for port %d: invalid %s", id, dir)
	}
	if err := d.checkID(id); err != nil {
		return nil, err
	}
	var pc bpf.NsintPortConfig
	if err := d.objs.PortConfigs.Lookup(uint32(id), &pc); err != nil {
		return nil, fmt.Errorf("dispatcher for port %d: read port config: %w", id, err)
	}
	if pc.Netns == 0 {
		return nil, fmt.Errorf("dispatcher for port %d: %w", id, ErrPortNotConfigured)
	}
	prog, err := ebpf.NewProgram(dispatcherSpec(d.objs.CpuState.FD(), d.objs.TcProgs.FD(), id, dir, uint32(pc.Netns), directTailCall))
	if err != nil {
		return nil, fmt.Errorf("load dispatcher for port %d %s: %w", id, dir, err)
	}
	return prog, nil
}
