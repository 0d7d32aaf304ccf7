package ifacewatch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/ifacewatch/selection"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// The SR-IOV VF stand-in: a macvlan on a host parent moved into a pod and
// named net1; then moved to another namespace (removed from the source, added
// in the target) and renamed there (a change of the same identity).
func TestMacvlanMovedAndRenamed(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	a := netnstest.New(t, dir, p+"-a")
	b := netnstest.New(t, dir, p+"-b")
	idA, idB := netif.Netns(a.Inode), netif.Netns(b.Inode)
	netnstest.Veth(t, nil, p+"h0", nil, p+"h1")
	parent, err := netlink.LinkByName(p + "h0")
	if err != nil {
		t.Fatal(err)
	}
	netnstest.Macvlan(t, p+"h0", a, "net1")
	idx := ifindex(t, a, "net1")
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}

	var net1 *Interface
	h.waitFor("net1 up in a", func([]Event) bool {
		if s := snapshotOf(h.w, idA); s != nil && len(s.Interfaces) == 2 && s.Interfaces[1].Name == "net1" && s.Interfaces[1].AdminUp {
			net1 = &s.Interfaces[1]
		}
		return net1 != nil
	})
	if net1.ID != (netif.ID{Netns: idA, Ifindex: idx}) || net1.Kind != "macvlan" || net1.Driver != "macvlan" {
		t.Errorf("net1 = %+v", net1)
	}
	if int(net1.LinkIndex) != parent.Attrs().Index || net1.LinkNetns != netif.Netns(self.Ino) {
		t.Errorf("net1 parent = %d in netns %d, want %d in host %d", net1.LinkIndex, net1.LinkNetns, parent.Attrs().Index, self.Ino)
	}
	if net1.VF || net1.PCIAddress != "" {
		t.Errorf("macvlan reported as a PCI device: %+v", net1)
	}

	// Move net1 from a to b.
	ha := a.NetlinkHandle(t)
	l, err := ha.LinkByName("net1")
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(b.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := ha.LinkSetNsFd(l, fd); err != nil {
		t.Fatal(err)
	}
	hb := b.NetlinkHandle(t)
	moved, err := hb.LinkByName("net1")
	if err != nil {
		t.Fatal(err)
	}
	inB := netif.ID{Netns: idB, Ifindex: netif.Ifindex(moved.Attrs().Index)}
	h.waitFor("net1 moved", func(evs []Event) bool {
		return has(evs, IfaceRemoved, idA, "net1") && has(evs, IfaceAdded, idB, "net1")
	})

	// Rename it in b: same identity, new name.
	if err := hb.LinkSetName(moved, "net2"); err != nil {
		t.Fatal(err)
	}
	h.waitFor("net2", func(evs []Event) bool { return has(evs, IfaceChanged, idB, "net2") })
	evs := h.all()
	if n := count(evs, IfaceAdded, inB); n != 1 {
		t.Errorf("net1/net2 in b added %d times, want 1", n)
	}
	if ev := find(evs, IfaceChanged, idB, "net2"); ev.Iface.ID != inB {
		t.Errorf("renamed interface has identity %v, want %v", ev.Iface.ID, inB)
	}
	if n := count(evs, IfaceRemoved, netif.ID{Netns: idA, Ifindex: idx}); n != 1 {
		t.Errorf("net1 removed from a %d times, want 1", n)
	}
	// The macvlan may be seen under its temporary name first, then renamed.
	var got []string
	for _, ev := range ofNetns(evs, idA) {
		if ev.Kind == IfaceChanged {
			continue
		}
		s := ev.Kind.String()
		if ev.Iface != nil {
			s += " " + ev.Iface.ID.String()
		}
		got = append(got, s)
	}
	lo, mv := netif.ID{Netns: idA, Ifindex: 1}.String(), netif.ID{Netns: idA, Ifindex: idx}.String()
	want := []string{"NetnsAdded", "IfaceAdded " + lo, "IfaceAdded " + mv, "IfaceRemoved " + mv}
	if !slices.Equal(got, want) {
		t.Errorf("a's events (changes left out) = %q, want %q", got, want)
	}
}

// Selection: exact names never match a longer name, renames move an interface
// in and out of the selected set, and excluded namespaces report nothing.
func TestSelectionFollowsRenames(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	var rules []selection.Rule
	for _, s := range []string{"include name=net1", "include kind=loopback,netns=" + p + "-a", "exclude netns=" + p + "-x*"} {
		r, err := selection.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, r)
	}
	h := startWatcher(t, Config{Dirs: []string{dir}, Rules: rules}, nil)
	a := netnstest.New(t, dir, p+"-a")
	x := netnstest.New(t, dir, p+"-x")
	idA, idX := netif.Netns(a.Inode), netif.Netns(x.Inode)
	ha := a.NetlinkHandle(t)
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net10"}, PeerName: "eth9"}); err != nil {
		t.Fatal(err)
	}
	hx := x.NetlinkHandle(t)
	if err := hx.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "net1"}, PeerName: "eth9"}); err != nil {
		t.Fatal(err)
	}
	rename := func(from, to string) {
		t.Helper()
		l, err := ha.LinkByName(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := ha.LinkSetName(l, to); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("a's lo", func(evs []Event) bool { return has(evs, IfaceAdded, idA, "lo") })
	// x is checked last for what it must not report; its own listing runs
	// apart from a's and may come after a's events on a slow host.
	h.waitFor("x added", func(evs []Event) bool { return has(evs, NetnsAdded, idX, "") })
	rename("net10", "net1")
	h.waitFor("net1 added", func(evs []Event) bool { return has(evs, IfaceAdded, idA, "net1") })
	rename("net1", "net10")
	h.waitFor("net1 removed", func(evs []Event) bool { return has(evs, IfaceRemoved, idA, "net1") })
	rename("net10", "net1")
	h.waitFor("net1 added again", func(evs []Event) bool {
		return len(slices.DeleteFunc(ofNetns(evs, idA), func(e Event) bool { return e.Kind != IfaceAdded })) == 3
	})
	want := []string{"NetnsAdded", "IfaceAdded lo", "IfaceAdded net1", "IfaceRemoved net1", "IfaceAdded net1"}
	got := slices.DeleteFunc(kinds(ofNetns(h.all(), idA)), func(s string) bool { return s == "IfaceChanged lo" })
	if !slices.Equal(got, want) {
		t.Errorf("a's events = %q, want %q", got, want)
	}
	if got := kinds(ofNetns(h.all(), idX)); !slices.Equal(got, []string{"NetnsAdded"}) {
		t.Errorf("excluded namespace x reported %q", got)
	}
}

// No operstate gating: down and lowerlayerdown devices are reported with
// their state.
func TestDownDevicesReported(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	a := netnstest.New(t, dir, p+"-a")
	id := netif.Netns(a.Inode)
	ha := a.NetlinkHandle(t)
	if err := ha.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}); err != nil {
		t.Fatal(err)
	}
	l, err := ha.LinkByName("v0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	h.waitFor("v0 lowerlayerdown, v1 down", func([]Event) bool {
		s := snapshotOf(h.w, id)
		if s == nil || len(s.Interfaces) != 3 {
			return false
		}
		st := map[string]string{}
		for _, i := range s.Interfaces {
			st[i.Name] = i.OperState
		}
		return st["v0"] == "lowerlayerdown" && st["v1"] == "down"
	})
	// Each end names the other, also the end announced before its peer existed.
	byName := map[string]Interface{}
	for _, i := range snapshotOf(h.w, id).Interfaces {
		byName[i.Name] = i
	}
	v0, v1 := byName["v0"], byName["v1"]
	if v0.LinkIndex != v1.ID.Ifindex || v1.LinkIndex != v0.ID.Ifindex || v0.LinkNetns != id || v1.LinkNetns != id {
		t.Errorf("veth peers: v0 %d→%d@%d, v1 %d→%d@%d", v0.ID.Ifindex, v0.LinkIndex, v0.LinkNetns, v1.ID.Ifindex, v1.LinkIndex, v1.LinkNetns)
	}
}

// A namespace file may exist before its bind mount: the watcher waits for it,
// within MountWait, and counts files that never get one.
func TestWaitForBindMount(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	hidden := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}, MountWait: 2 * time.Second}, nil)

	never := filepath.Join(dir, p+"-never")
	late := filepath.Join(dir, p+"-late")
	for _, f := range []string{never, late} {
		if err := os.WriteFile(f, nil, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { unix.Unmount(late, unix.MNT_DETACH); os.Remove(late); os.Remove(never) })
	src := netnstest.New(t, hidden, p+"-src")
	time.Sleep(30 * time.Millisecond) // let the watcher see the plain files first
	if err := unix.Mount(src.Path, late, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	h.waitFor("late namespace", func(evs []Event) bool { return has(evs, IfaceAdded, netif.Netns(src.Inode), "lo") })
	if ev := find(h.all(), NetnsAdded, netif.Netns(src.Inode), ""); ev.Netns.Path != late {
		t.Errorf("namespace path %s, want %s", ev.Netns.Path, late)
	}

	// Unmounted but not removed: out of view; mounted again: back.
	if err := unix.Unmount(late, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	h.waitFor("unmounted namespace removed", func(evs []Event) bool { return has(evs, NetnsRemoved, netif.Netns(src.Inode), "") })
	if err := unix.Mount(src.Path, late, "none", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	h.waitFor("namespace mounted again", func(evs []Event) bool {
		return len(slices.DeleteFunc(ofNetns(evs, netif.Netns(src.Inode)), func(e Event) bool { return e.Kind != NetnsAdded })) == 2
	})
	want := []string{"NetnsAdded", "IfaceAdded lo", "IfaceRemoved lo", "NetnsRemoved", "NetnsAdded"}
	if got := kinds(ofNetns(h.all(), netif.Netns(src.Inode))); !slices.Equal(got[:5], want) {
		t.Errorf("events %q, want %q first", got, want)
	}
	waitUntil(t, "a mount timeout", func() bool { return h.w.Stats().MountTimeouts == 1 })
	for _, ev := range h.all() {
		if ev.Netns.Path == never {
			t.Errorf("event for a file that never became a namespace: %v", ev)
		}
	}
}
