package deepinsight

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/netif"

	"github.com/nsint/nsint/pkg/collector/topology"
)

// Topology is the DeepInsight topology file.
type Topology struct {
	Switches []Switch `json:"switches"`
	Subnets  []Subnet `json:"subnets"`
	Hosts    []Host   `json:"hosts"`
	Links    []Link   `json:"links"`
}

// Switch is one nsint node.
type Switch struct {
	SwitchID   uint32 `json:"switchId"`
	Name       string `json:"name"`
	DeviceType string `json:"deviceType"` // always "legacy"
	IP         string `json:"ip,omitempty"`
	Hostname   string `json:"hostname,omitempty"`
}

// Subnet is one IP prefix of a pod network.
type Subnet struct {
	IPSubnet string `json:"ip_subnet"`
	Name     string `json:"name"`
	SubnetID int    `json:"subnet_id"`
}

// Host is an end host; nsint writes none (pods are reached through subnets).
type Host struct {
	IP   string `json:"ip"`
	Name string `json:"name"`
}

// Link connects a switch port to a subnet (Port2 "-1": a subnet has no port).
type Link struct {
	Node1 string `json:"node1"`
	Port1 string `json:"port1"`
	Node2 string `json:"node2"`
	Port2 string `json:"port2"`
}

// SwitchName is the DeepInsight name of a node.
func SwitchName(node string) string { return "device:" + node }

// Options tune Build.
type Options struct {
	// Bits4 and Bits6 are the prefix lengths given to addresses the agent
	// lists without one (0: /24 and /64).
	Bits4, Bits6 int
	// NodeIPs maps a node name to the address its switch gets ("ip").
	NodeIPs map[string]string
}

// Build converts documents into a DeepInsight topology. A port's addresses
// without a prefix length get Options.Bits4/Bits6. A local-stack port (no
// addresses) links to the subnets of the other ports of its namespace. The
// output is sorted so the same input always gives the same file.
func Build(docs []topology.Document, opt Options) Topology {
	if opt.Bits4 == 0 {
		opt.Bits4 = 24
	}
	if opt.Bits6 == 0 {
		opt.Bits6 = 64
	}
	t := Topology{Switches: []Switch{}, Subnets: []Subnet{}, Hosts: []Host{}, Links: []Link{}}
	subnetName := map[netip.Prefix]string{}
	type nsKey struct {
		sw    uint32
		inode netif.Netns
	}
	nsPrefixes := map[nsKey][]netip.Prefix{}
	prefixesOf := func(p *api.Port) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range p.IPs {
			pfx, ok := parsePrefix(s, opt.Bits4, opt.Bits6)
			if ok && !slices.Contains(out, pfx) {
				out = append(out, pfx)
			}
		}
		return out
	}
	for _, d := range docs {
		for i := range d.Ports {
			p := &d.Ports[i]
			k := nsKey{d.SwitchID, p.Netns.Inode}
			for _, pfx := range prefixesOf(p) {
				if _, ok := subnetName[pfx]; !ok {
					subnetName[pfx] = subnetLabel(p.Network, pfx)
				}
				if !slices.Contains(nsPrefixes[k], pfx) {
					nsPrefixes[k] = append(nsPrefixes[k], pfx)
				}
			}
		}
	}
	for _, d := range docs {
		name := SwitchName(d.Node)
		t.Switches = append(t.Switches, Switch{SwitchID: d.SwitchID, Name: name, DeviceType: "legacy",
			IP: opt.NodeIPs[d.Node], Hostname: d.Node})
		for i := range d.Ports {
			p := &d.Ports[i]
			pfxs := prefixesOf(p)
			if p.LocalStack {
				pfxs = nsPrefixes[nsKey{d.SwitchID, p.Netns.Inode}]
			}
			for _, pfx := range pfxs {
				t.Links = append(t.Links, Link{Node1: name, Port1: strconv.Itoa(int(p.ID)),
					Node2: subnetName[pfx], Port2: "-1"})
			}
		}
	}
	prefixes := make([]netip.Prefix, 0, len(subnetName))
	for pfx := range subnetName {
		prefixes = append(prefixes, pfx)
	}
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	for i, pfx := range prefixes {
		t.Subnets = append(t.Subnets, Subnet{IPSubnet: pfx.String(), Name: subnetName[pfx], SubnetID: i + 1})
	}
	slices.SortFunc(t.Switches, func(a, b Switch) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortStableFunc(t.Links, func(a, b Link) int {
		return cmp.Or(cmp.Compare(a.Node1, b.Node1), cmpNum(a.Port1, b.Port1), cmp.Compare(a.Node2, b.Node2))
	})
	t.Links = slices.Compact(t.Links)
	return t
}

// subnetLabel names a subnet after its network: "default/macvlan-net 198.18.1.0/24".
func subnetLabel(network string, pfx netip.Prefix) string {
	if network == "" {
		return pfx.String()
	}
	return fmt.Sprintf("%s %s", network, pfx)
}

func parsePrefix(s string, bits4, bits6 int) (netip.Prefix, bool) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, false
		}
		return p.Masked(), true
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.IsLinkLocalUnicast() {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	bits := bits6
	if a.Is4() {
		bits = bits4
	}
	p, err := a.Prefix(bits)
	return p, err == nil
}

func cmpNum(a, b string) int {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return cmp.Compare(x, y)
}
