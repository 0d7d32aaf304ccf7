package netnstest

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VethIndex creates a veth pair whose end nameA in a has ifindex indexA and
// whose other end nameB is in b, both up. It lets tests give interfaces in
// different namespaces the same ifindex. a and b must be test namespaces;
// removing them removes the pair.
func VethIndex(tb testing.TB, a *NS, nameA string, indexA int, b *NS, nameB string) {
	tb.Helper()
	fd, err := unix.Open(b.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("open %s: %v", b.Path, err)
	}
	defer unix.Close(fd)
	ha := a.NetlinkHandle(tb)
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA, Index: indexA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(fd),
	}
	if err := ha.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth %s (ifindex %d) in %s with peer %s in %s: %v", nameA, indexA, a.Name, nameB, b.Name, err)
	}
	la, err := ha.LinkByName(nameA)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", nameA, a.Name, err)
	}
	if err := ha.LinkSetUp(la); err != nil {
		tb.Fatalf("set %s up in %s: %v", nameA, a.Name, err)
	}
	hb := b.NetlinkHandle(tb)
	lb, err := hb.LinkByName(nameB)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", nameB, b.Name, err)
	}
	if err := hb.LinkSetUp(lb); err != nil {
		tb.Fatalf("set %s up in %s: %v", nameB, b.Name, err)
	}
}
