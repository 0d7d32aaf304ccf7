package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
)

// What the SR-IOV test needs of the machine: an SR-IOV capable igb physical
// function (QEMU's emulated 82576, hack/vm/test-sriov.sh), and what it does to
// it: what the SR-IOV CNI does to VFs as pods come and go.

// sriovEnv is the environment variable that allows the test to create VFs on
// the machine's igb PF. Only hack/vm/test-sriov.sh sets it (inside its VM): on
// any other machine the PF is real hardware the test must not touch.
const sriovEnv = "NSINT_SRIOV"

// pciDevices is where PCI devices appear in sysfs.
const pciDevices = "/sys/bus/pci/devices"

// sriovPF is an SR-IOV capable igb physical function.
type sriovPF struct {
	pci   string // PCI address, 0000:01:00.0
	dev   string // its network interface in the host namespace
	total int    // sriov_totalvfs
}

// sriovVF is one virtual function of the PF.
type sriovVF struct {
	index   int    // VF number on the PF
	pci     string // its PCI address
	hostDev string // its interface name in the host namespace
}

// findIgbPF returns the first igb PCI function with SR-IOV capability, or
// nil when the machine has none.
func findIgbPF() (*sriovPF, error) {
	entries, err := os.ReadDir(pciDevices)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	for _, e := range entries {
		dir := filepath.Join(pciDevices, e.Name())
		drv, err := os.Readlink(filepath.Join(dir, "driver"))
		if err != nil || filepath.Base(drv) != "igb" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, "sriov_totalvfs"))
		if err != nil {
			continue
		}
		total, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || total == 0 {
			continue
		}
		nets, err := os.ReadDir(filepath.Join(dir, "net"))
		if err != nil || len(nets) == 0 {
			return nil, fmt.Errorf("igb PF %s has no network interface", e.Name())
		}
		return &sriovPF{pci: e.Name(), dev: nets[0].Name(), total: total}, nil
	}
	return nil, nil
}

// requireSRIOVPF returns the machine's igb PF, skipping the test when there is
// none (every machine but the SR-IOV VM) and refusing to touch one that
// hack/vm/test-sriov.sh did not make (NSINT_SRIOV=1).
func requireSRIOVPF(t *testing.T) *sriovPF {
	t.Helper()
	pf, err := findIgbPF()
	if err != nil {
		t.Fatalf("look for an igb PF: %v", err)
	}
	allowed := os.Getenv(sriovEnv) == "1"
	switch {
	case pf == nil && allowed:
		t.Fatalf("%s=1 but no SR-IOV capable igb PF under %s (igb module loaded? -device igb?)", sriovEnv, pciDevices)
	case pf == nil:
		t.Skip("skipping: kernel without an SR-IOV capable igb PF (no igb device with sriov_totalvfs); " +
			"make test-sriov boots a VM with QEMU's emulated 82576 and runs this test there")
	case !allowed:
		t.Skipf("skipping: igb PF %s (%s) found, but %s=1 is not set: this test creates VFs on it, "+
			"which only make test-sriov's VM may do", pf.pci, pf.dev, sriovEnv)
	}
	return pf
}

// createVFs writes n to the PF's sriov_numvfs, waits for each VF's interface
// and removes the VFs at cleanup. The PF is brought up: VFs pass traffic
// through its internal switch only while it is up.
func createVFs(t *testing.T, pf *sriovPF, n int) []sriovVF {
	t.Helper()
	numvfs := filepath.Join(pciDevices, pf.pci, "sriov_numvfs")
	if b, err := os.ReadFile(numvfs); err != nil {
		t.Fatal(err)
	} else if s := strings.TrimSpace(string(b)); s != "0" {
		t.Fatalf("PF %s already has %s VFs: not ours", pf.pci, s)
	}
	if err := os.WriteFile(numvfs, []byte(strconv.Itoa(n)), 0); err != nil {
		t.Fatalf("create %d VFs on %s: %v", n, pf.pci, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(numvfs, []byte("0"), 0); err != nil {
			t.Errorf("remove the VFs of %s: %v", pf.pci, err)
		}
	})
	l, err := netlink.LinkByName(pf.dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		t.Fatalf("set PF %s up: %v", pf.dev, err)
	}
	vfs := make([]sriovVF, n)
	for i := range vfs {
		link := filepath.Join(pciDevices, pf.pci, fmt.Sprintf("virtfn%d", i))
		waitFor(t, fmt.Sprintf("VF %d of %s and its interface", i, pf.pci), 30*time.Second, func() bool {
			target, err := os.Readlink(link)
			if err != nil {
				return false
			}
			nets, err := os.ReadDir(filepath.Join(link, "net"))
			if err != nil || len(nets) == 0 {
				return false
			}
			vfs[i] = sriovVF{index: i, pci: filepath.Base(target), hostDev: nets[0].Name()}
			return true
		})
	}
	return vfs
}

// changeVFMAC changes the MAC of vf, whose interface dev is up in the
// namespace of h, from the PF side as an administrator does: the PF's
// administrative MAC, then a reset of the VF (down, up), at which igbvf takes
// it (igb refuses the VF's own MAC requests once the PF set one: "Reload the
// VF driver to make this change effective").
func changeVFMAC(t *testing.T, pf *sriovPF, vf sriovVF, h *netlink.Handle, dev string, mac net.HardwareAddr) {
	t.Helper()
	pfl, err := netlink.LinkByName(pf.dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfHardwareAddr(pfl, vf.index, mac); err != nil {
		t.Fatalf("set VF %d MAC %s through %s: %v", vf.index, mac, pf.dev, err)
	}
	resetVF(t, h, dev, true)
	waitFor(t, fmt.Sprintf("MAC %s on VF %d (%s)", mac, vf.index, dev), 10*time.Second, func() bool {
		l, err := h.LinkByName(dev)
		return err == nil && l.Attrs().HardwareAddr.String() == mac.String()
	})
}

// resetVF resets the VF interface dev (in the namespace of h) by taking it
// through down and up, as igbvf resets at ndo_stop; it ends up when up is set.
func resetVF(t *testing.T, h *netlink.Handle, dev string, up bool) {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	steps := []func(netlink.Link) error{h.LinkSetUp, h.LinkSetDown}
	if l.Attrs().Flags&net.FlagUp != 0 {
		steps = steps[1:]
	}
	if up {
		steps = append(steps, h.LinkSetUp)
	}
	for _, step := range steps {
		if err := step(l); err != nil {
			t.Fatalf("reset VF %s: %v", dev, err)
		}
	}
}

// vfPod is a "pod" that got a VF as net1, as the SR-IOV CNI hands it over.
type vfPod struct {
	name     string // pod name, for the Kubernetes annotation
	ns       *netnstest.NS
	vf       sriovVF
	mac      net.HardwareAddr
	vlan     int
	ip4, ip6 netip.Addr
}

// cniAdd does what the SR-IOV CNI's ADD does for a pod whose network gives the
// VF a MAC and a VLAN (0: none): MAC and VLAN through the PF, the VF moved
// into a new namespace under dir, renamed net1, addressed, up; then it waits
// for the VF's carrier (≈ 8 s after up under TCG).
func cniAdd(t *testing.T, pf *sriovPF, dir string, p *vfPod) {
	t.Helper()
	pfl, err := netlink.LinkByName(pf.dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfVlan(pfl, p.vf.index, p.vlan); err != nil {
		t.Fatalf("set VF %d VLAN %d through %s: %v", p.vf.index, p.vlan, pf.dev, err)
	}
	if err := netlink.LinkSetVfHardwareAddr(pfl, p.vf.index, p.mac); err != nil {
		t.Fatalf("set VF %d MAC %s through %s: %v", p.vf.index, p.mac, pf.dev, err)
	}
	// The CNI then sets the same MAC on the VF's interface. igbvf asks the PF,
	// which refuses once it set an administrative MAC, unless the VF was never
	// opened; a reset (up, down) makes igbvf take the PF's MAC.
	if l, err := netlink.LinkByName(p.vf.hostDev); err != nil {
		t.Fatal(err)
	} else if netlink.LinkSetHardwareAddr(l, p.mac) != nil {
		resetVF(t, &netlink.Handle{}, p.vf.hostDev, false)
	}
	waitFor(t, fmt.Sprintf("MAC %s on VF %d (%s)", p.mac, p.vf.index, p.vf.hostDev), 10*time.Second, func() bool {
		l, err := netlink.LinkByName(p.vf.hostDev)
		return err == nil && l.Attrs().HardwareAddr.String() == p.mac.String()
	})

	p.ns = netnstest.New(t, dir, netnstest.Prefix(t)+p.name)
	l, err := netlink.LinkByName(p.vf.hostDev)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p.ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := netlink.LinkSetNsFd(l, fd); err != nil {
		t.Fatalf("move VF %s into %s: %v", p.vf.hostDev, p.ns.Name, err)
	}
	h := p.ns.NetlinkHandle(t)
	if l, err = h.LinkByName(p.vf.hostDev); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetName(l, "net1"); err != nil {
		t.Fatalf("rename %s to net1 in %s: %v", p.vf.hostDev, p.ns.Name, err)
	}
	netnstest.AddAddr(t, p.ns, "net1", p.ip4.String()+"/24")
	netnstest.AddAddr(t, p.ns, "net1", p.ip6.String()+"/64")
	if err := h.LinkSetUp(l); err != nil {
		t.Fatalf("set net1 up in %s: %v", p.ns.Name, err)
	}
	waitFor(t, "carrier (LOWER_UP) on net1 of "+p.ns.Name, 20*time.Second, func() bool {
		l, err := h.LinkByName("net1")
		return err == nil && l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
	})
}

// cniDel does what the SR-IOV CNI's DEL does, then what the kubelet does: net1
// down, renamed back to its host name, returned to the host namespace, its
// VLAN reset through the PF; then the pod's namespace is removed.
func cniDel(t *testing.T, pf *sriovPF, p *vfPod) {
	t.Helper()
	h := p.ns.NetlinkHandle(t)
	l, err := h.LinkByName("net1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetName(l, p.vf.hostDev); err != nil {
		t.Fatalf("rename net1 back to %s: %v", p.vf.hostDev, err)
	}
	host, err := unix.Open(hostNS().Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(host)
	if err := h.LinkSetNsFd(l, host); err != nil {
		t.Fatalf("return %s to the host namespace: %v", p.vf.hostDev, err)
	}
	pfl, err := netlink.LinkByName(pf.dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := netlink.LinkSetVfVlan(pfl, p.vf.index, 0); err != nil {
		t.Fatalf("reset VF %d VLAN: %v", p.vf.index, err)
	}
	if err := p.ns.Remove(); err != nil {
		t.Fatal(err)
	}
}

// pfVFInfo returns what the PF says about VF index over netlink (IFLA_VFINFO_LIST).
func pfVFInfo(t *testing.T, pf *sriovPF, index int) netlink.VfInfo {
	t.Helper()
	l, err := netlink.LinkByName(pf.dev)
	if err != nil {
		t.Fatal(err)
	}
	for _, vf := range l.Attrs().Vfs {
		if vf.ID == index {
			return vf
		}
	}
	t.Fatalf("PF %s does not list VF %d; it lists %+v", pf.dev, index, l.Attrs().Vfs)
	return netlink.VfInfo{}
}

// hostNS stands for the VM's root network namespace, PID 1's (hack/vm/init),
// which the test runs in. (Not /proc/self: that is the main thread's, which a
// goroutine locked to it may have switched.)
func hostNS() *netnstest.NS {
	return &netnstest.NS{Name: "host", Path: "/proc/1/ns/net"}
}
