package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// skbCtx is the head of the UAPI struct __sk_buff up to gso_segs: the part
// BPF_PROG_TEST_RUN lets a caller set (ingress_ifindex, ifindex, gso_segs).
type skbCtx struct {
	Len, PktType, Mark, QueueMapping, Protocol, VlanPresent, VlanTCI, VlanProto uint32
	Priority, IngressIfindex, Ifindex, TCIndex                                  uint32
	CB                                                                          [5]uint32
	Hash, TCClassid, Data, DataEnd, NapiID, Family, RemoteIP4, LocalIP4         uint32
	RemoteIP6, LocalIP6                                                         [4]uint32
	RemotePort, LocalPort, DataMeta                                             uint32
	FlowKeys, Tstamp                                                            uint64
	WireLen, GsoSegs                                                            uint32
}

const tcActUnspec = ^uint32(0) // -1 as the kernel returns it

// harness runs dispatcher→main through BPF_PROG_TEST_RUN inside a test
// namespace (so FIB lookups see that namespace) and reads events back.
type harness struct {
	root  testing.TB // owns cleanups; tb may be a subtest
	tb    testing.TB
	d     *Datapath
	r     *Reader
	ns    *netnstest.NS
	disp  map[dispKey]*ebpf.Program
	local uint16
}

type dispKey struct {
	port uint16
	dir  netif.Direction
}

// The ports every harness configures; ifindexes are arbitrary.
const (
	hLocalPort = 1
	hPortA     = 10
	hPortB     = 11
)

func newHarness(tb testing.TB, cfg Config) *harness {
	tb.Helper()
	d := loadDatapath(tb, cfg)
	r, err := d.NewReader()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	ns := netnstest.New(tb, netnstest.Dir(tb), netnstest.Prefix(tb))
	h := &harness{root: tb, tb: tb, d: d, r: r, ns: ns, disp: map[dispKey]*ebpf.Program{}, local: hLocalPort}
	h.setPort(hLocalPort, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode)}, LocalStack: true})
	h.setPort(hPortA, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 100}, LocalPort: hLocalPort})
	h.setPort(hPortB, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 101}, LocalPort: hLocalPort})
	return h
}

func (h *harness) setPort(id uint16, p PortInfo) {
	h.tb.Helper()
	if err := h.d.SetPort(id, p); err != nil {
		h.tb.Fatal(err)
	}
}

func (h *harness) dispatcher(port uint16, dir netif.Direction) *ebpf.Program {
	h.tb.Helper()
	k := dispKey{port, dir}
	if p := h.disp[k]; p != nil {
		return p
	}
	p, err := h.d.Dispatcher(port, dir)
	if err != nil {
		h.tb.Fatal(err)
	}
	h.root.Cleanup(func() { p.Close() })
	h.disp[k] = p
	return p
}

// run runs the frame through port's dispatcher in dir; ctx may be nil.
func (h *harness) run(port uint16, dir netif.Direction, frame []byte, ctx *skbCtx) {
	h.tb.Helper()
	h.runN(port, dir, frame, ctx, 1)
}

func (h *harness) runN(port uint16, dir netif.Direction, frame []byte, ctx *skbCtx, repeat uint32) {
	h.tb.Helper()
	if err := h.tryRun(port, dir, frame, ctx, repeat); err != nil {
		h.tb.Fatal(err)
	}
}

// tryRun is runN returning the test-run error; a verdict other than
// TC_ACT_UNSPEC still fails the test.
func (h *harness) tryRun(port uint16, dir netif.Direction, frame []byte, ctx *skbCtx, repeat uint32) error {
	h.tb.Helper()
	prog := h.dispatcher(port, dir)
	opts := &ebpf.RunOptions{Data: frame, Repeat: repeat}
	if ctx != nil {
		if ctx.IngressIfindex != 0 {
			requireTestRunIngressIfindex(h.tb)
		}
		opts.Context = *ctx
	}
	var ret uint32
	// Per-CPU state is per CPU: run every packet on CPU 0 so a test sees
	// one flow state and one last-flow slot, as one NIC queue would give it.
	err := onCPU(h.ns, 0, func() error {
		var err error
		ret, err = prog.Run(opts)
		return err
	})
	if err != nil {
		return fmt.Errorf("test run port %d %s (%d bytes): %w", port, dir, len(frame), err)
	}
	if ret != tcActUnspec {
		h.tb.Fatalf("port %d %s: verdict %d, want TC_ACT_UNSPEC (-1)", port, dir, int32(ret))
	}
	return nil
}

// dirCounters reads port's counters in dir.
func (h *harness) dirCounters(port uint16, dir netif.Direction) DirCounters {
	h.tb.Helper()
	c, err := h.d.PortCounters(port)
	if err != nil {
		h.tb.Fatal(err)
	}
	if dir == netif.Ingress {
		return c.Ingress
	}
	return c.Egress
}

// next returns the next pending event; the test fails when there is none.
// Test runs output synchronously, so a pending event is already queued.
func (h *harness) next() Event {
	h.tb.Helper()
	ev, ok := h.poll()
	if !ok {
		h.tb.Fatal("no event, want one")
	}
	return ev
}

// none fails the test if an event is pending.
func (h *harness) none(what string) {
	h.tb.Helper()
	if ev, ok := h.poll(); ok {
		h.tb.Fatalf("%s: unexpected event %+v", what, ev)
	}
}

func (h *harness) poll() (Event, bool) {
	h.tb.Helper()
	var ev Event
	h.r.SetDeadline(time.Now().Add(20 * time.Millisecond))
	err := h.r.Read(&ev)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return ev, false
	}
	if err != nil {
		h.tb.Fatal(err)
	}
	ev.Data = append([]byte(nil), ev.Data...)
	return ev, true
}

// kernelRefuses tells whether BPF_PROG_TEST_RUN rejects the frame itself:
// it needs an Ethernet header, and when the EtherType is IPv4 or IPv6 (no
// VLAN tag) the whole base IP header. Truncations inside those headers are
// covered by the VLAN-tagged cases, which the kernel does not inspect.
func kernelRefuses(frame []byte) bool {
	if len(frame) < 14 {
		return true
	}
	switch binary.BigEndian.Uint16(frame[12:]) {
	case etherIPv4:
		return len(frame) < 14+20
	case etherIPv6:
		return len(frame) < 14+40
	}
	return false
}

// requireTestRunIngressIfindex skips the test when BPF_PROG_TEST_RUN does not
// take ingress_ifindex from the __sk_buff context (5.10 refuses it with
// EINVAL): a packet forwarded from another device cannot be crafted there.
// The programs read skb->ingress_ifindex on such kernels all the same; the
// e2e suite's forwarded and bridged traffic covers them.
func requireTestRunIngressIfindex(tb testing.TB) {
	tb.Helper()
	err := haveTestRunIngressIfindex()
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		tb.Skipf("skipping: kernel without ingress_ifindex in BPF_PROG_TEST_RUN's __sk_buff context (%v)", err)
	case err != nil:
		tb.Fatal(err)
	}
}

// haveTestRunIngressIfindex runs a trivial TC program with an all-zero
// context, which every kernel takes, and with ingress_ifindex set: nil when
// the second run works too, an error wrapping ebpf.ErrNotSupported when only
// the first does.
var haveTestRunIngressIfindex = sync.OnceValue(func() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "nsint_probe", Type: ebpf.SchedCLS, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, -1), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("ingress_ifindex probe: load program: %w", err)
	}
	defer prog.Close()
	frame := udpFrame("198.18.0.1", "198.18.0.2", 1, 2, 0)
	if _, err := prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx{}}); err != nil {
		return fmt.Errorf("ingress_ifindex probe: run with a zero context: %w", err)
	}
	_, err = prog.Run(&ebpf.RunOptions{Data: frame, Context: skbCtx{IngressIfindex: 1}})
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("test run with ingress_ifindex: %w: %w", ebpf.ErrNotSupported, err)
	}
	return err
})

// requireFlowTable skips a case written for the shared flow table on a
// kernel that only runs the per-CPU one (no BPF_CMPXCHG before 5.12).
func requireFlowTable(tb testing.TB, shared bool) {
	tb.Helper()
	netnstest.RequireRoot(tb)
	if !shared {
		return
	}
	switch err := HaveCmpxchg(); {
	case errors.Is(err, ebpf.ErrNotSupported):
		tb.Skip("skipping: kernel without BPF_CMPXCHG (5.12+): it runs the per-CPU flow table, not the shared one")
	case err != nil:
		tb.Fatal(err)
	}
}

// onCPU runs fn inside ns on a thread pinned to cpu.
func onCPU(ns *netnstest.NS, cpu int, fn func() error) error {
	return ns.Do(func() error {
		var orig, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			return err
		}
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
		defer unix.SchedSetaffinity(0, &orig)
		return fn()
	})
}

// runOnCPU runs prog repeat times on frame inside ns, pinned to cpu.
func runOnCPU(ns *netnstest.NS, cpu int, prog *ebpf.Program, frame []byte, repeat uint32) error {
	return onCPU(ns, cpu, func() error {
		ret, err := prog.Run(&ebpf.RunOptions{Data: frame, Repeat: repeat})
		if err == nil && ret != tcActUnspec {
			err = fmt.Errorf("verdict %d, want TC_ACT_UNSPEC (-1)", int32(ret))
		}
		return err
	})
}
