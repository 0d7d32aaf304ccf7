package ifacewatch

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/internal/netnstest"
)

// pciNetdev finds a PCI network function of this machine (a VF when there is
// one) and what sysfs says of it: address, driver, PF address ("" for none).
// It only reads sysfs.
func pciNetdev(t *testing.T) (addr, driver, physfn string) {
	t.Helper()
	entries, _ := os.ReadDir(pciDevicesDir)
	for _, e := range entries {
		dir := filepath.Join(pciDevicesDir, e.Name())
		if nets, err := os.ReadDir(filepath.Join(dir, "net")); err != nil || len(nets) == 0 {
			continue
		}
		drv, err := os.Readlink(filepath.Join(dir, "driver"))
		if err != nil {
			continue
		}
		pf, err := os.Readlink(filepath.Join(dir, "physfn"))
		if err != nil {
			pf = ""
		} else {
			pf = filepath.Base(pf)
		}
		if addr == "" || pf != "" {
			addr, driver, physfn = e.Name(), filepath.Base(drv), pf
		}
	}
	if addr == "" {
		t.Skip("skipping: kernel without a PCI network device (make test-sriov's VM has an igb)")
	}
	return addr, driver, physfn
}

// A PCI device renamed between its announcement and the ethtool query by
// name (ENODEV), as the SR-IOV CNI renames a VF right after moving it into a
// pod, is still described from the message's PCI address and the global PCI
// sysfs; a device without a PCI parent waits for its next message.
func TestDevInfoRenamedPCIDevice(t *testing.T) {
	netnstest.RequireRoot(t)
	addr, driver, physfn := pciNetdev(t)
	self, err := netns.Open("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	sock, err := openRTNL(self, 0, "self")
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	gone := netnstest.Prefix(t) + "gone" // no interface has this name: ethtool says ENODEV

	st := &linkState{msg: linkMsg{name: gone, parentDev: addr, parentDevBus: "pci"}}
	(&nsWorker{}).fetchInfo(sock, st)
	if !st.infoDone || st.driver != driver || st.pci != addr || st.vf != (physfn != "") || st.physfn != physfn {
		t.Errorf("renamed %s: done=%v driver=%q pci=%q vf=%v pf=%q; want done, %q, %q, vf=%v, %q",
			addr, st.infoDone, st.driver, st.pci, st.vf, st.physfn, driver, addr, physfn != "", physfn)
	}

	st = &linkState{msg: linkMsg{name: gone}}
	(&nsWorker{}).fetchInfo(sock, st)
	if st.infoDone {
		t.Errorf("a device without a PCI parent gone by name was described: %+v", st)
	}
}

// The drivers driverOfKind gives without asking are what ethtool says of
// each kind.
func TestDriverOfKind(t *testing.T) {
	netnstest.RequireRoot(t)
	dir, pfx := netnstest.Dir(t), netnstest.Prefix(t)
	ns := netnstest.New(t, dir, pfx+"-k")
	peer := netnstest.New(t, dir, pfx+"-p")
	netnstest.Veth(t, ns, "v0", peer, "v1")
	h := ns.NetlinkHandle(t)
	v0, err := h.LinkByName("v0")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []netlink.Link{
		&netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "m0", ParentIndex: v0.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE},
		&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "b0"}},
		&netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "x0"}, VxlanId: 42, Port: 4789},
	} {
		if err := h.LinkAdd(l); err != nil {
			t.Fatalf("add %s %s: %v", l.Type(), l.Attrs().Name, err)
		}
	}
	f, err := netns.Open(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sock, err := openRTNL(f, 0, ns.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	names := map[string]string{"veth": "v0", "macvlan": "m0", "bridge": "b0", "vxlan": "x0"}
	for kind, want := range driverOfKind {
		name, ok := names[kind]
		if !ok {
			t.Errorf("kind %s: no device of it in this test", kind)
			continue
		}
		info, err := sock.ethtoolDrvinfo(name)
		if err != nil {
			t.Fatalf("ethtool %s: %v", name, err)
		}
		if got := cstring(info.Driver[:]); got != want {
			t.Errorf("kind %s: ethtool says driver %q, driverOfKind %q", kind, got, want)
		}
	}
}
