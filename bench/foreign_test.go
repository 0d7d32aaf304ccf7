package bench

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
)

// foreignFilterName is the cls_bpf filter another tool owns in the soak.
const foreignFilterName = "foreign-tool"

// foreignCounter is a program of "another tool": it counts the packets it
// sees in a one-entry array and hands each on unchanged (TC_ACT_UNSPEC /
// TCX_NEXT).
type foreignCounter struct {
	m    *ebpf.Map
	prog *ebpf.Program
	tcx  link.Link // set for the TCX one
}

func newForeignCounter(name string, attach ebpf.AttachType) (*foreignCounter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("foreign counter map: %w", err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: name, Type: ebpf.SchedCLS, AttachType: attach, License: "MIT",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, -1).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("foreign program %s: %w", name, err)
	}
	return &foreignCounter{m: m, prog: prog}, nil
}

func (f *foreignCounter) count() uint64 {
	var v uint64
	f.m.Lookup(uint32(0), &v)
	return v
}

func (f *foreignCounter) Close() {
	if f.tcx != nil {
		f.tcx.Close()
	}
	f.prog.Close()
	f.m.Close()
}

// attachForeignCls adds, as another tool would, a clsact qdisc and a cls_bpf
// filter at priority 7 on dev's ingress in ns.
func attachForeignCls(ns *netnstest.NS, dev string, f *foreignCounter) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	qdisc := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
	if err := h.QdiscAdd(qdisc); err != nil {
		return fmt.Errorf("add clsact on %s: %w", dev, err)
	}
	filter := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index,
		Parent: netlink.HANDLE_MIN_INGRESS, Priority: 7, Handle: 1, Protocol: unix.ETH_P_ALL},
		Fd: f.prog.FD(), Name: foreignFilterName, DirectAction: true}
	if err := h.FilterAdd(filter); err != nil {
		return fmt.Errorf("add foreign filter on %s: %w", dev, err)
	}
	return nil
}

// attachForeignTCX attaches f's program to dev's TCX ingress in ns; the link
// lives as long as f (not pinned).
func attachForeignTCX(ns *netnstest.NS, dev string, f *foreignCounter) error {
	h, err := ns.Handle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return err
	}
	return ns.Do(func() error {
		lk, err := link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: f.prog, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return fmt.Errorf("attach foreign TCX program on %s: %w", dev, err)
		}
		f.tcx = lk
		return nil
	})
}
