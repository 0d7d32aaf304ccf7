package ifacewatch

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"

	"golang.org/x/sys/unix"
)

// Device facts that do not change for the life of a device are fetched once.
//
// sysfs is a trap here: /sys/class/net shows the namespace of whoever mounted
// sysfs (the host), not the interface's namespace, so it cannot be used for
// interfaces in pods. Instead:
//   - the driver and the bus address come from ethtool ETHTOOL_GDRVINFO, an
//     ioctl issued on the namespace's own netlink socket (device ioctls act in
//     the socket's namespace); when the device was renamed since the message
//     (ENODEV) and the message names a PCI parent, the driver comes from
//     /sys/bus/pci/devices/<addr>/driver instead (global, like physfn);
//   - the PCI address comes from IFLA_PARENT_DEV_NAME when the bus is PCI
//     (kernel 5.13+), else from the ethtool bus-info;
//   - whether the device is an SR-IOV VF comes from /sys/bus/pci/devices/<addr>/physfn,
//     which is global: PCI devices do not belong to a network namespace.

var pciAddr = regexp.MustCompile(`^[0-9a-fA-F]{4,}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$`)

// pciDevicesDir is where PCI devices appear in sysfs.
const pciDevicesDir = "/sys/bus/pci/devices"

// driverOfKind names the ethtool driver of the virtual device kinds whose
// driver is their kind. For them no ioctl is issued: ETHTOOL_GDRVINFO takes
// RTNL, and while namespaces are being created every RTNL section waits
// behind the others (each TCX attachment holds it for an RCU grace period),
// so it cost a pod's veth and macvlan tens of milliseconds before they
// could be attached. TestDriverOfKind checks the table against the ioctl.
var driverOfKind = map[string]string{
	"veth": "veth", "macvlan": "macvlan", "bridge": "bridge", "vxlan": "vxlan",
}

func (k *nsWorker) fetchInfo(sock *rtnlSocket, st *linkState) {
	if d, ok := driverOfKind[st.msg.kind]; ok {
		st.driver = d
		st.infoDone = true
		return
	}
	info, err := sock.ethtoolDrvinfo(st.msg.name)
	switch {
	case errors.Is(err, unix.ENODEV) && st.msg.parentDevBus == "pci" && st.msg.parentDev != "":
		// Renamed since this message, as the SR-IOV CNI renames a VF right
		// after moving it into a pod: the message's PCI address and the
		// global PCI sysfs still say what the device is. Without this, a VF
		// would first be reported as physical and then change kind.
		if target, err := os.Readlink(filepath.Join(pciDevicesDir, st.msg.parentDev, "driver")); err == nil {
			st.driver = filepath.Base(target)
		}
	case errors.Is(err, unix.ENODEV):
		// Renamed or moved since this message: try again with the next one.
		return
	case err == nil:
		st.driver = cstring(info.Driver[:])
		if bus := cstring(info.Bus_info[:]); pciAddr.MatchString(bus) {
			st.pci = bus
		}
	}
	// Other errors (EOPNOTSUPP: no driver info, as for lo) leave the fields empty.
	if st.msg.parentDevBus == "pci" && st.msg.parentDev != "" {
		st.pci = st.msg.parentDev
	}
	if st.pci != "" {
		if target, err := os.Readlink(filepath.Join(pciDevicesDir, st.pci, "physfn")); err == nil {
			st.vf = true
			st.physfn = filepath.Base(target)
		}
	}
	st.infoDone = true
}
