package ifacewatch

import (
	"os"
	"path/filepath"
	"testing"

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
