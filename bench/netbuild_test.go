package bench

import (
	"fmt"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
)

// The builders here use netlink handles opened in the namespaces, not `ip`
// commands: churn and scale create thousands of interfaces.

// addVeth creates a veth pair with nameA in a (handle ha) and nameB in b, and
// returns nameA's ifindex.
func addVeth(ha *netlink.Handle, nameA string, b *netnstest.NS, nameB string) (int, error) {
	f, err := os.Open(b.Path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB, PeerNamespace: netlink.NsFd(int(f.Fd()))}
	if err := ha.LinkAdd(v); err != nil {
		return 0, fmt.Errorf("add veth %s/%s in %s: %w", nameA, nameB, b.Name, err)
	}
	l, err := ha.LinkByName(nameA)
	if err != nil {
		return 0, err
	}
	return l.Attrs().Index, nil
}

// addVethLocal creates a veth pair with both ends in the handle's namespace.
func addVethLocal(h *netlink.Handle, nameA, nameB string) error {
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: nameA}, PeerName: nameB}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", nameA, nameB, err)
	}
	return nil
}

// upWithAddr sets an address (a prefix, e.g. 198.18.0.1/30) on name and
// brings it up.
func upWithAddr(h *netlink.Handle, name string, prefix netip.Prefix) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("link %s: %w", name, err)
	}
	if prefix.IsValid() {
		a, err := netlink.ParseAddr(prefix.String())
		if err != nil {
			return err
		}
		if err := h.AddrAdd(l, a); err != nil {
			return fmt.Errorf("address %s on %s: %w", prefix, name, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// addrAt is base + off in 198.18.0.0/15 (IPv4 only).
func addrAt(base netip.Addr, off int) netip.Addr {
	b := base.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v += uint32(off)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
