package ifacewatch

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

func hasAddr(iface *Interface, cidr string) bool {
	return slices.Contains(iface.Addrs, netip.MustParsePrefix(cidr))
}

// A veth pair across two namespaces: identities, kinds, peers across
// namespaces, addresses; then deleting one namespace with its interfaces.
func TestVethAcrossNamespacesAndDeletion(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)

	a := netnstest.New(t, dir, p+"-a")
	b := netnstest.New(t, dir, p+"-b")
	netnstest.Veth(t, a, "eth0", b, "eth0")
	netnstest.AddAddr(t, a, "eth0", "198.18.7.1/24")
	netnstest.AddAddr(t, a, "eth0", "fd00:7::1/64")
	netnstest.AddAddr(t, b, "eth0", "198.18.7.2/24")
	ia, ib := ifindex(t, a, "eth0"), ifindex(t, b, "eth0")
	idA, idB := netif.Netns(a.Inode), netif.Netns(b.Inode)

	h.waitFor("both eth0 with addresses", func(evs []Event) bool {
		sa, sb := snapshotOf(h.w, idA), snapshotOf(h.w, idB)
		return sa != nil && sb != nil && len(sa.Interfaces) == 2 && len(sb.Interfaces) == 2 &&
			hasAddr(&sa.Interfaces[1], "198.18.7.1/24") && hasAddr(&sa.Interfaces[1], "fd00:7::1/64") &&
			hasAddr(&sb.Interfaces[1], "198.18.7.2/24")
	})
	evs := h.all()
	for _, id := range []netif.Netns{idA, idB} {
		got := ofNetns(evs, id)
		if got[0].Kind != NetnsAdded {
			t.Fatalf("netns %d: first event %v, want NetnsAdded", id, got[0])
		}
		if n := len(got) - len(ofNetns(got, id)); n != 0 {
			t.Fatal("filter broken")
		}
	}
	ns := snapshotOf(h.w, idA)
	if ns.Path != a.Path || ns.Name != a.Name || ns.Host {
		t.Errorf("namespace = %+v, want path %s name %s", ns.Namespace, a.Path, a.Name)
	}
	lo, eth := ns.Interfaces[0], ns.Interfaces[1]
	if lo.Name != "lo" || lo.Kind != KindLoopback || lo.OperState != "unknown" || !lo.AdminUp {
		t.Errorf("lo = %+v", lo)
	}
	if eth.ID != (netif.ID{Netns: idA, Ifindex: ia}) || eth.Kind != "veth" || eth.Driver != "veth" || eth.MTU != 1500 || len(eth.MAC) != 6 {
		t.Errorf("eth0 in a = %+v", eth)
	}
	if eth.LinkIndex != ib || eth.LinkNetns != idB {
		t.Errorf("eth0 in a: link %d in netns %d, want %d in %d", eth.LinkIndex, eth.LinkNetns, ib, idB)
	}
	for _, id := range []netif.ID{{Netns: idA, Ifindex: ia}, {Netns: idB, Ifindex: ib}} {
		if n := count(evs, IfaceAdded, id); n != 1 {
			t.Errorf("%v added %d times", id, n)
		}
	}

	// Deleting a: its interfaces, then a itself. (The test's own netlink
	// handles keep the namespace, and so b's eth0, alive until cleanup.)
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a removed", func(evs []Event) bool { return has(evs, NetnsRemoved, idA, "") })
	evs = h.all()
	gotA := kinds(ofNetns(evs, idA))
	tail := gotA[len(gotA)-3:]
	if want := []string{"IfaceRemoved lo", "IfaceRemoved eth0", "NetnsRemoved"}; !slices.Equal(tail, want) {
		t.Errorf("end of a's events = %q, want %q", tail, want)
	}
	if n := count(evs, IfaceRemoved, netif.ID{Netns: idA, Ifindex: ia}); n != 1 {
		t.Errorf("a's eth0 removed %d times", n)
	}
	if snapshotOf(h.w, idA) != nil {
		t.Error("a still in the snapshot")
	}
}

// Namespaces present before Run are reported; two files of one namespace are
// one namespace, which leaves our view only when its last file goes.
func TestExistingNamespacesAndSecondFile(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	a := netnstest.New(t, dir, p+"-a")
	alias := filepath.Join(dir, p+"-alias")
	if err := os.WriteFile(alias, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(a.Path, alias, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(alias, unix.MNT_DETACH); os.Remove(alias) })

	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	id := netif.Netns(a.Inode)
	h.waitFor("a's lo", func(evs []Event) bool { return has(evs, IfaceAdded, id, "lo") })

	// Remove the alias, then add a namespace as a marker that the removal was
	// processed (events of a namespace are ordered, across namespaces not, so
	// the marker is checked through the snapshot).
	unix.Unmount(alias, unix.MNT_DETACH)
	os.Remove(alias)
	m := netnstest.New(t, dir, p+"-m")
	h.waitFor("marker", func(evs []Event) bool { return has(evs, IfaceAdded, netif.Netns(m.Inode), "lo") })
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a removed", func(evs []Event) bool { return has(evs, NetnsRemoved, id, "") })
	want := []string{"NetnsAdded", "IfaceAdded lo", "IfaceRemoved lo", "NetnsRemoved"}
	if got := kinds(ofNetns(h.all(), id)); !slices.Equal(got, want) {
		t.Errorf("events of a = %q, want %q", got, want)
	}
}

// A directory that does not exist yet is watched for creation, at any depth.
func TestDirectoryCreatedLater(t *testing.T) {
	netnstest.RequireRoot(t)
	base := netnstest.Dir(t)
	dir := filepath.Join(base, "x", "y", "netns")
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	a := netnstest.New(t, dir, p+"-a") // creates the directories
	h.waitFor("a's lo", func(evs []Event) bool { return has(evs, IfaceAdded, netif.Netns(a.Inode), "lo") })

	// The directory goes away and comes back.
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(base, "x")); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a removed", func(evs []Event) bool { return has(evs, NetnsRemoved, netif.Netns(a.Inode), "") })
	b := netnstest.New(t, dir, p+"-b")
	h.waitFor("b's lo", func(evs []Event) bool { return has(evs, IfaceAdded, netif.Netns(b.Inode), "lo") })
}

// Synced closes only after every namespace present at start has had its
// interfaces listed, so a consumer can tell when it has seen the initial state.
func TestSyncedAfterInitialListing(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	var nss []*netnstest.NS
	for i := 0; i < 5; i++ {
		a := netnstest.New(t, dir, fmt.Sprintf("%s-%d-a", p, i))
		b := netnstest.New(t, dir, fmt.Sprintf("%s-%d-b", p, i))
		netnstest.Veth(t, a, "eth0", b, "net1")
		nss = append(nss, a, b)
	}
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	select {
	case <-h.w.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("Synced not closed within 10s")
	}
	// Everything of the initial state is in the snapshot at once, no waiting.
	for _, ns := range nss {
		s := snapshotOf(h.w, netif.Netns(ns.Inode))
		if s == nil || len(s.Interfaces) != 2 {
			t.Fatalf("netns %s at Synced: %+v, want lo and its veth end", ns.Name, s)
		}
	}
}
