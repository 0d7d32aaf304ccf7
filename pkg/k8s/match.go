package k8s

import (
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/nsint/nsint/pkg/netif"
)

// Roles an interface can have in its pod.
const (
	RolePrimary   = "primary"   // the cluster's default network (eth0)
	RoleSecondary = "secondary" // an additional attachment (net1, net2, …)
)

// PodRef names a pod.
type PodRef struct {
	Namespace string
	Name      string
	UID       string
}

// String returns namespace/name.
func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// Iface is one interface the agent discovered, as the matcher needs it.
type Iface struct {
	netif.ID                    // the interface's identity
	NetnsPath  string           // the namespace's file, when known
	Name       string           // interface name inside its namespace
	MAC        net.HardwareAddr // nil when it has none
	IPs        []netip.Addr     // its addresses
	PCIAddress string           // the PCI address of an SR-IOV VF, else ""
}

// Meta is what Kubernetes says about one interface.
type Meta struct {
	Pod         PodRef
	Network     string // "<namespace>/<NetworkAttachmentDefinition>", or the default network's name; "" when unknown
	Role        string // RolePrimary or RoleSecondary
	NetworkType string // the CNI type of the network (sriov, macvlan, bridge, …); "" when unknown
	Interface   string // the interface name Multus (or the pod's status) gave
}

// podNetworks is what the matcher knows of one pod: one attachment per
// network-status entry, or a single primary one built from status.podIPs.
type podNetworks struct {
	ref         PodRef
	attachments []attachment
}

// attachment is one network-status entry, normalised.
type attachment struct {
	network string
	iface   string
	mac     string // lower-case canonical form, "" when absent
	pci     string // lower-case, "" when absent
	ips     []netip.Addr
	primary bool
}

// candidate is one pod attachment a strong key (MAC, PCI address, IP) points to.
type candidate struct {
	pod *podNetworks
	att int
}

// matcher indexes the pods of the node by their strong keys.
type matcher struct {
	byMAC map[string][]candidate
	byPCI map[string][]candidate
	byIP  map[netip.Addr][]candidate
	// networkType returns the CNI type of network as seen from a pod in podNamespace.
	networkType func(podNamespace, network string) string
}

func newMatcher(pods []*podNetworks, networkType func(podNamespace, network string) string) *matcher {
	m := &matcher{
		byMAC:       map[string][]candidate{},
		byPCI:       map[string][]candidate{},
		byIP:        map[netip.Addr][]candidate{},
		networkType: networkType,
	}
	for _, p := range pods {
		for i, a := range p.attachments {
			c := candidate{pod: p, att: i}
			if a.mac != "" {
				m.byMAC[a.mac] = append(m.byMAC[a.mac], c)
			}
			if a.pci != "" {
				m.byPCI[a.pci] = append(m.byPCI[a.pci], c)
			}
			for _, ip := range a.ips {
				m.byIP[ip] = append(m.byIP[ip], c)
			}
		}
	}
	return m
}

// match attributes interfaces to pod attachments. All interfaces of one
// network namespace belong to at most one pod, and a pod to at most one
// namespace: namespace and pod pair up by the weight of the keys that point
// from the namespace's interfaces to the pod's attachments (see keyWeight),
// heaviest pair first. Inside that namespace each attachment then takes one
// interface, by PCI address first, then MAC, then IP, then interface name.
// Interfaces in skipInode (the agent's own namespace, shared with every
// hostNetwork pod) are never matched.
func (m *matcher) match(ifaces []Iface, skipInode netif.Netns) map[int]Meta {
	out := map[int]Meta{}
	byNetns := map[netif.Netns][]int{}
	for i, f := range ifaces {
		if skipInode != 0 && f.Netns == skipInode {
			continue
		}
		byNetns[f.Netns] = append(byNetns[f.Netns], i)
	}
	type pairing struct {
		inode  netif.Netns
		pod    *podNetworks
		weight int
	}
	var pairs []pairing
	for inode, idx := range byNetns {
		for pod, w := range m.votes(ifaces, idx) {
			pairs = append(pairs, pairing{inode, pod, w})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		a, b := pairs[i], pairs[j]
		if a.weight != b.weight {
			return a.weight > b.weight
		}
		if ra, rb := a.pod.ref.String(), b.pod.ref.String(); ra != rb {
			return ra < rb
		}
		return a.inode < b.inode
	})
	podTaken := map[*podNetworks]bool{}
	netnsTaken := map[netif.Netns]bool{}
	for _, p := range pairs {
		if podTaken[p.pod] || netnsTaken[p.inode] {
			continue
		}
		podTaken[p.pod], netnsTaken[p.inode] = true, true
		m.assign(p.pod, ifaces, byNetns[p.inode], out)
	}
	return out
}

// keyWeight ranks what points an interface to a pod attachment: a PCI
// address names one device on the node; an IP is the pod's own; a MAC is the
// weakest, since the SR-IOV operator, a PF-side change or a CNI may set it
// to anything, another VF's included.
const (
	weightMAC = 1
	weightIP  = 2
	weightPCI = 4
)

// votes weighs, for each pod, the keys by which a namespace's interfaces
// (idx into ifaces) point to its attachments.
func (m *matcher) votes(ifaces []Iface, idx []int) map[*podNetworks]int {
	votes := map[*podNetworks]int{}
	vote := func(cs []candidate, weight int) {
		for _, c := range cs {
			votes[c.pod] += weight
		}
	}
	for _, i := range idx {
		f := ifaces[i]
		if mac := canonicalMAC(f.MAC); mac != "" {
			vote(m.byMAC[mac], weightMAC)
		}
		if pci := strings.ToLower(f.PCIAddress); pci != "" {
			vote(m.byPCI[pci], weightPCI)
		}
		for _, ip := range f.IPs {
			vote(m.byIP[ip.Unmap()], weightIP)
		}
	}
	return votes
}

// assign gives each attachment of pod at most one interface of the namespace
// (and each interface at most one attachment), strongest key first.
func (m *matcher) assign(pod *podNetworks, ifaces []Iface, idx []int, out map[int]Meta) {
	taken := map[int]bool{}   // interface index
	matched := map[int]bool{} // attachment index
	passes := []func(a attachment, f Iface) bool{
		func(a attachment, f Iface) bool { return a.pci != "" && a.pci == strings.ToLower(f.PCIAddress) },
		func(a attachment, f Iface) bool { return a.mac != "" && a.mac == canonicalMAC(f.MAC) },
		func(a attachment, f Iface) bool { return sharesIP(a.ips, f.IPs) },
		func(a attachment, f Iface) bool { return a.iface != "" && a.iface == f.Name },
	}
	for _, same := range passes {
		for ai, a := range pod.attachments {
			if matched[ai] {
				continue
			}
			for _, i := range idx {
				if taken[i] || !same(a, ifaces[i]) {
					continue
				}
				taken[i], matched[ai] = true, true
				out[i] = m.meta(pod, a)
				break
			}
		}
	}
}

func (m *matcher) meta(pod *podNetworks, a attachment) Meta {
	role := RoleSecondary
	if a.primary {
		role = RolePrimary
	}
	typ := ""
	if a.network != "" && m.networkType != nil {
		typ = m.networkType(pod.ref.Namespace, a.network)
	}
	return Meta{Pod: pod.ref, Network: a.network, Role: role, NetworkType: typ, Interface: a.iface}
}

func sharesIP(a, b []netip.Addr) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y.Unmap() {
				return true
			}
		}
	}
	return false
}

// canonicalMAC returns the lower-case colon form of mac, or "" for none.
func canonicalMAC(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return strings.ToLower(mac.String())
}

// sortedPods returns the pods ordered by namespace/name, for deterministic matching.
func sortedPods(m map[string]*podNetworks) []*podNetworks {
	out := make([]*podNetworks, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ref.String() < out[j].ref.String() })
	return out
}
