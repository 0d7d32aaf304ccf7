package tc

import (
	"errors"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/countprog"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// counter is a SchedCLS program that counts the packets it sees in a
// one-slot array map and returns a fixed verdict (internal/countprog):
// newCounter's hand every packet on (TC_ACT_UNSPEC / TCX_NEXT), as ours must.
type counter struct {
	prog *ebpf.Program
	c    *countprog.Counter
	id   ebpf.ProgramID
}

func newCounter(tb testing.TB, name string) *counter {
	tb.Helper()
	return newCounterVerdict(tb, name, actUnspec)
}

// Verdicts of SchedCLS programs (TC_ACT_* and TCX_*).
const (
	actUnspec = countprog.Next // TC_ACT_UNSPEC, TCX_NEXT: the next filter or program decides
	actOK     = countprog.OK   // TC_ACT_OK, TCX_PASS: the packet goes on, and the chain ends here
)

// newCounterVerdict is newCounter for a program that returns verdict.
func newCounterVerdict(tb testing.TB, name string, verdict int32) *counter {
	tb.Helper()
	c, err := countprog.Load(name, verdict)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	info, err := c.Prog.Info()
	if err != nil {
		tb.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		tb.Fatal("program has no id")
	}
	return &counter{prog: c.Prog, c: c, id: id}
}

func (c *counter) count(tb testing.TB) uint64 {
	tb.Helper()
	n, err := c.c.Count()
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// requireTCX fails the test when the kernel lacks TCX, unless the run says
// it targets a kernel without it (NSINT_NO_TCX=1, for older-kernel VMs).
func requireTCX(tb testing.TB) {
	tb.Helper()
	netnstest.RequireRoot(tb)
	err := HaveTCX()
	if err == nil {
		return
	}
	if os.Getenv("NSINT_NO_TCX") == "1" && errors.Is(err, ebpf.ErrNotSupported) {
		tb.Skipf("skipping: kernel without TCX (%v)", err)
	}
	tb.Fatalf("TCX expected on this kernel: %v", err)
}

// privateBPFFS mounts a bpffs in a temporary directory, unmounted at cleanup
// (which also drops every pin left in it).
func privateBPFFS(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	mounted, err := MountBPFFS(dir)
	if err != nil {
		tb.Fatal(err)
	}
	if !mounted {
		tb.Fatalf("%s already on bpffs", dir)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func modes(t *testing.T, fn func(t *testing.T, mode Mode)) {
	t.Run("tcx", func(t *testing.T) {
		requireTCX(t)
		fn(t, ModeTCX)
	})
	t.Run("tc", func(t *testing.T) {
		netnstest.RequireRoot(t)
		fn(t, ModeLegacy)
	})
}

func newAttacher(tb testing.TB, cfg Config) *Attacher {
	tb.Helper()
	a, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { a.Close() })
	return a
}

// pair is two test namespaces joined by a veth, eth0 on both sides, with
// 198.18.0.1 in A and 198.18.0.2 in B.
type pair struct {
	dir  string
	a, b *netnstest.NS
	ifA  Target // eth0 in A
}

func newPair(t *testing.T) *pair {
	t.Helper()
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	a := netnstest.New(t, dir, p+"-a")
	b := netnstest.New(t, dir, p+"-b")
	netnstest.Veth(t, a, "eth0", b, "eth0")
	netnstest.AddAddr(t, a, "eth0", "198.18.0.1/30")
	netnstest.AddAddr(t, b, "eth0", "198.18.0.2/30")
	return &pair{dir: dir, a: a, b: b, ifA: target(t, a, "eth0")}
}

func target(tb testing.TB, ns *netnstest.NS, name string) Target {
	tb.Helper()
	l, err := ns.NetlinkHandle(tb).LinkByName(name)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", name, ns.Name, err)
	}
	return Target{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: netif.Ifindex(l.Attrs().Index)}, NetnsPath: ns.Path, Name: name}
}

// ping sends three echo requests from A to B and fails unless all return:
// our programs must never lose traffic.
func (p *pair) ping(t *testing.T) {
	t.Helper()
	out := p.a.Run(t, "ping", "-c3", "-i0.2", "-W2", "198.18.0.2")
	if !strings.Contains(out, "3 received") {
		t.Fatalf("ping: %s", out)
	}
}

// foreign holds another tool's attachments on eth0 in A: a TCX program on
// ingress and a cls_bpf filter on egress, plus a decoy cls_bpf filter that
// carries our name with another handle. Each counts what it sees and hands
// the packet on.
type foreign struct {
	tcx, cls, decoy *counter
	tcxLink         link.Link
}

const (
	foreignPrio = 1
	decoyPrio   = 2
)

func addForeign(t *testing.T, p *pair) *foreign {
	t.Helper()
	f := &foreign{tcx: newCounter(t, "foreign_tcx"), cls: newCounter(t, "foreign_cls"), decoy: newCounter(t, "foreign_decoy")}
	if HaveTCX() == nil {
		err := p.a.Do(func() error {
			var err error
			f.tcxLink, err = link.AttachTCX(link.TCXOptions{Interface: int(p.ifA.Ifindex), Program: f.tcx.prog, Attach: ebpf.AttachTCXIngress})
			return err
		})
		if err != nil {
			t.Fatalf("foreign tcx: %v", err)
		}
		t.Cleanup(func() { f.tcxLink.Close() })
	}
	h := p.a.NetlinkHandle(t)
	if err := h.QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: int(p.ifA.Ifindex), Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT,
	}}); err != nil {
		t.Fatalf("foreign clsact: %v", err)
	}
	for _, fl := range []*netlink.BpfFilter{
		{FilterAttrs: netlink.FilterAttrs{LinkIndex: int(p.ifA.Ifindex), Parent: netlink.HANDLE_MIN_EGRESS, Handle: 1, Priority: foreignPrio, Protocol: unix.ETH_P_ALL},
			Fd: f.cls.prog.FD(), Name: "foreign", DirectAction: true},
		{FilterAttrs: netlink.FilterAttrs{LinkIndex: int(p.ifA.Ifindex), Parent: netlink.HANDLE_MIN_EGRESS, Handle: DefaultHandle + 1, Priority: decoyPrio, Protocol: unix.ETH_P_ALL},
			Fd: f.decoy.prog.FD(), Name: filterName(netif.Egress), DirectAction: true},
	} {
		if err := h.FilterAdd(fl); err != nil {
			t.Fatalf("foreign filter %s: %v", fl.Name, err)
		}
	}
	return f
}

// checkAlive asserts that every foreign attachment is still there and still
// sees packets.
func (f *foreign) checkAlive(t *testing.T, p *pair) {
	t.Helper()
	before := [3]uint64{f.tcx.count(t), f.cls.count(t), f.decoy.count(t)}
	p.ping(t)
	after := [3]uint64{f.tcx.count(t), f.cls.count(t), f.decoy.count(t)}
	if f.tcxLink != nil && after[0] <= before[0] {
		t.Errorf("foreign tcx program saw no packets (%d -> %d)", before[0], after[0])
	}
	if after[1] <= before[1] {
		t.Errorf("foreign cls_bpf filter saw no packets (%d -> %d)", before[1], after[1])
	}
	if after[2] <= before[2] {
		t.Errorf("decoy filter with our name saw no packets (%d -> %d)", before[2], after[2])
	}
	if f.tcxLink != nil {
		if ids := tcxPrograms(t, p.a, p.ifA.Ifindex, netif.Ingress); !contains(ids, f.tcx.id) {
			t.Errorf("foreign tcx program %d not on ingress: %v", f.tcx.id, ids)
		}
	}
	if !hasClsact(t, p.a, p.ifA.Ifindex) {
		t.Error("clsact qdisc gone")
	}
}

// tcxPrograms lists the program IDs on a TCX hook, queried inside ns.
func tcxPrograms(tb testing.TB, ns *netnstest.NS, ifindex netif.Ifindex, dir netif.Direction) []ebpf.ProgramID {
	tb.Helper()
	var ids []ebpf.ProgramID
	err := ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(ifindex), Attach: tcxAttachType(dir)})
		if err != nil {
			return err
		}
		for _, p := range res.Programs {
			ids = append(ids, p.ID)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("query tcx %s in %s: %v", dir, ns.Name, err)
	}
	return ids
}

// ourFilters lists the filters with our kind, name and handle on a hook.
func ourFilters(tb testing.TB, ns *netnstest.NS, ifindex netif.Ifindex, dir netif.Direction) []*netlink.BpfFilter {
	tb.Helper()
	h, err := ns.Handle()
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(int(ifindex))
	if err != nil {
		tb.Fatal(err)
	}
	fs, err := h.FilterList(l, clsactParent(dir))
	if err != nil {
		tb.Fatalf("list filters: %v", err)
	}
	var ours []*netlink.BpfFilter
	for _, f := range fs {
		if isOurFilter(f, dir, DefaultHandle) {
			ours = append(ours, f.(*netlink.BpfFilter))
		}
	}
	return ours
}

func hasClsact(tb testing.TB, ns *netnstest.NS, ifindex netif.Ifindex) bool {
	tb.Helper()
	h, err := ns.Handle()
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	l, err := h.LinkByIndex(int(ifindex))
	if err != nil {
		tb.Fatal(err)
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		tb.Fatal(err)
	}
	for _, q := range qs {
		if q.Type() == "clsact" {
			return true
		}
	}
	return false
}

func contains(ids []ebpf.ProgramID, id ebpf.ProgramID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// assertOurs checks that the hook carries exactly one attachment of ours and
// that it runs want (0: that there is none of ours). progs are every program
// of ours that could be there.
func assertOurs(t *testing.T, mode Mode, ns *netnstest.NS, ifindex netif.Ifindex, dir netif.Direction, want *counter, progs ...*counter) {
	t.Helper()
	if mode == ModeTCX {
		ids := tcxPrograms(t, ns, ifindex, dir)
		n := 0
		for _, c := range progs {
			for _, id := range ids {
				if id == c.id {
					n++
				}
			}
		}
		switch {
		case want == nil && n != 0:
			t.Errorf("%s: %d programs of ours attached, want none (%v)", dir, n, ids)
		case want != nil && (n != 1 || !contains(ids, want.id)):
			t.Errorf("%s: %d programs of ours attached (%v), want exactly %d", dir, n, ids, want.id)
		}
		return
	}
	fs := ourFilters(t, ns, ifindex, dir)
	switch {
	case want == nil && len(fs) != 0:
		t.Errorf("%s: %d filters of ours, want none", dir, len(fs))
	case want != nil && (len(fs) != 1 || ebpf.ProgramID(fs[0].Id) != want.id):
		ids := []int{}
		for _, f := range fs {
			ids = append(ids, f.Id)
		}
		t.Errorf("%s: filters of ours run programs %v, want exactly [%d]", dir, ids, want.id)
	}
}

// dropWithoutDetach simulates `kill -9`: the Attacher and the program file
// descriptors of the old process are gone, nothing was detached.
func dropWithoutDetach(cs ...*counter) {
	for _, c := range cs {
		c.prog.Close()
	}
	runtime.GC()
}
