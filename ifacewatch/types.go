package ifacewatch

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/nsint/nsint/pkg/netif"
)

// Namespace describes a watched network namespace.
type Namespace struct {
	// ID is the namespace's nsfs inode. The kernel reuses these numbers once
	// a namespace is destroyed: NetnsRemoved ends one, and a later NetnsAdded
	// with the same number is a new namespace (the tests see this happen).
	ID netif.Netns
	// Path is the first file through which the namespace was found
	// (/proc/self/ns/net for the host namespace).
	Path string
	// Name is the base name of Path; empty for the host namespace.
	Name string
	// Host is true for the namespace the watcher itself runs in.
	Host bool
}

// Interface kinds that do not come from the kernel's IFLA_INFO_KIND.
const (
	KindPhysical = "physical" // a device without rtnl link kind, not a VF
	KindVF       = "vf"       // an SR-IOV virtual function: its PCI device has a physfn
	KindLoopback = "loopback"
)

// Interface is the state of one interface as last reported.
type Interface struct {
	// ID is the interface's identity; the other fields are attributes that
	// may change under it.
	ID   netif.ID
	Name string
	MAC  net.HardwareAddr
	// Kind is the rtnetlink link kind (veth, macvlan, bridge, vxlan, ipvlan,
	// vlan, …) or one of KindPhysical, KindVF, KindLoopback.
	Kind string
	// Driver and PCIAddress come from ethtool ETHTOOL_GDRVINFO issued through a
	// socket in the interface's namespace; PCIAddress is set only when the bus
	// is PCI.
	Driver     string
	PCIAddress string
	// VF is true when the PCI device is an SR-IOV virtual function; PhysFn is
	// then the PCI address of its physical function.
	VF     bool
	PhysFn string
	// LinkIndex is IFLA_LINK: the peer of a veth, the lower device of a
	// macvlan, ipvlan or vlan; 0 when the device has none. LinkNetns is the
	// namespace LinkIndex lives in, 0 when it is not a watched namespace.
	LinkIndex netif.Ifindex
	LinkNetns netif.Netns
	// MasterIndex is the ifindex of the bridge or bond the device is enslaved
	// to, in the same namespace; 0 when none.
	MasterIndex netif.Ifindex
	// OperState is the RFC 2863 operational state as the kernel names it:
	// up, down, unknown, dormant, lowerlayerdown, notpresent, testing.
	OperState string
	// AdminUp is the IFF_UP flag.
	AdminUp bool
	MTU     int
	// Addrs holds the IPv4 and IPv6 addresses with their prefix length,
	// sorted; link-local IPv6 addresses included.
	Addrs []netip.Prefix
}

// Clone returns a deep copy.
func (i *Interface) Clone() *Interface {
	c := *i
	c.MAC = slices.Clone(i.MAC)
	c.Addrs = slices.Clone(i.Addrs)
	return &c
}

// equal reports whether two interface states are the same.
func (i *Interface) equal(o *Interface) bool {
	return i.ID == o.ID && i.Name == o.Name && slices.Equal(i.MAC, o.MAC) && i.Kind == o.Kind &&
		i.Driver == o.Driver && i.PCIAddress == o.PCIAddress && i.VF == o.VF && i.PhysFn == o.PhysFn &&
		i.LinkIndex == o.LinkIndex && i.LinkNetns == o.LinkNetns && i.MasterIndex == o.MasterIndex &&
		i.OperState == o.OperState && i.AdminUp == o.AdminUp && i.MTU == o.MTU && slices.Equal(i.Addrs, o.Addrs)
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds. Per namespace, NetnsAdded comes first and NetnsRemoved last.
const (
	NetnsAdded EventKind = iota + 1
	NetnsRemoved
	IfaceAdded
	IfaceChanged
	IfaceRemoved
)

func (k EventKind) String() string {
	switch k {
	case NetnsAdded:
		return "NetnsAdded"
	case NetnsRemoved:
		return "NetnsRemoved"
	case IfaceAdded:
		return "IfaceAdded"
	case IfaceChanged:
		return "IfaceChanged"
	case IfaceRemoved:
		return "IfaceRemoved"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one change. Iface is nil for namespace events; for IfaceRemoved it
// is the last reported state. Events own their data: the receiver may keep them.
type Event struct {
	Kind  EventKind
	Netns Namespace
	Iface *Interface
}

func (e Event) String() string {
	if e.Iface == nil {
		return fmt.Sprintf("%s %d %s", e.Kind, e.Netns.ID, e.Netns.Path)
	}
	return fmt.Sprintf("%s %s %s kind=%s up=%v oper=%s link=%d@%d addrs=%v", e.Kind, e.Iface.ID, e.Iface.Name, e.Iface.Kind, e.Iface.AdminUp, e.Iface.OperState, e.Iface.LinkIndex, e.Iface.LinkNetns, e.Iface.Addrs)
}

// NamespaceState is one namespace in a Snapshot, with its selected interfaces
// ordered by ifindex.
type NamespaceState struct {
	Namespace
	Interfaces []Interface
}

// Stats are the watcher's counters since New.
type Stats struct {
	Namespaces int    // namespaces currently watched
	Interfaces int    // selected interfaces currently reported
	Events     uint64 // events delivered to the consumer
	Pending    int    // events queued, not yet delivered
	// Recoveries counts netlink subscriptions re-opened and re-listed after an
	// error (ENOBUFS, a closed socket), plus directory re-scans after an
	// fsnotify queue overflow.
	Recoveries    uint64
	NetlinkErrors uint64 // errors that caused a recovery
	MountTimeouts uint64 // namespace files that never became an nsfs mount within MountWait
	IgnoredFiles  uint64 // files in a watched directory that are not network namespaces
	OpenErrors    uint64 // namespaces that could not be opened or subscribed to
	NsidLookups   uint64 // RTM_GETNSID queries made to resolve LinkNetns
}
