package datapath

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// tcxFallback reports whether a test that attaches with TCX should fall back
// to legacy tc after err: only when the kernel lacks TCX and the run says it
// targets such a kernel (NSINT_NO_TCX=1, hack/vm), so that a missing TCX
// still fails the test where the kernel should have it.
func tcxFallback(err error) bool {
	return errors.Is(err, ebpf.ErrNotSupported) && os.Getenv("NSINT_NO_TCX") == "1"
}

// attachLegacy attaches prog to ifindex inside ns as a direct-action cls_bpf
// filter under clsact (created when missing), removed at cleanup.
func attachLegacy(t testing.TB, ns *netnstest.NS, ifindex int, dir netif.Direction, prog *ebpf.Program) {
	t.Helper()
	h := ns.NetlinkHandle(t)
	qdisc := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("add clsact to ifindex %d in %s: %v", ifindex, ns.Name, err)
	}
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if dir == netif.Egress {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: ifindex, Parent: parent, Priority: 1,
		Handle: 1, Protocol: unix.ETH_P_ALL}, Fd: prog.FD(), Name: "nsint-test", DirectAction: true}
	if err := h.FilterAdd(f); err != nil {
		t.Fatalf("attach tc %s to ifindex %d in %s: %v", dir, ifindex, ns.Name, err)
	}
	t.Cleanup(func() { h.FilterDel(f) })
}
