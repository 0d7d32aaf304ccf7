package bench

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/countprog"
	"github.com/nsint/nsint/internal/netnstest"
)

// foreignFilterName is the cls_bpf filter another tool owns in the soak.
const foreignFilterName = "foreign-tool"

// foreignCounter is a program of "another tool" (internal/countprog): it
// counts the packets it sees and hands each on unchanged (TC_ACT_UNSPEC /
// TCX_NEXT).
type foreignCounter struct {
	c   *countprog.Counter
	tcx link.Link // set for the TCX one
}

func newForeignCounter(name string) (*foreignCounter, error) {
	c, err := countprog.Load(name, countprog.Next)
	if err != nil {
		return nil, fmt.Errorf("foreign program: %w", err)
	}
	return &foreignCounter{c: c}, nil
}

// count returns the packets seen; a failed read counts none, so the
// coexistence check it feeds fails rather than passes.
func (f *foreignCounter) count() uint64 {
	n, _ := f.c.Count()
	return n
}

func (f *foreignCounter) Close() {
	if f.tcx != nil {
		f.tcx.Close()
	}
	f.c.Close()
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
		Fd: f.c.Prog.FD(), Name: foreignFilterName, DirectAction: true}
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
		lk, err := link.AttachTCX(link.TCXOptions{Interface: l.Attrs().Index, Program: f.c.Prog, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return fmt.Errorf("attach foreign TCX program on %s: %w", dev, err)
		}
		f.tcx = lk
		return nil
	})
}
