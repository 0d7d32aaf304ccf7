package fakenode

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"sync"

	"github.com/nsint/nsint/internal/netnstest"
)

// Addresses of the fake node. Everything lives in 198.18.0.0/15 and fd00::/8.
var (
	BridgeIP   = netip.MustParseAddr("198.18.0.1")
	BridgeIP6  = netip.MustParseAddr("fd00:0:0:1::1")
	UplinkIP   = netip.MustParseAddr("198.19.1.1")
	ExtNet1IP  = netip.MustParseAddr("198.19.1.2") // the external host on the secondary network
	ExtNet1IP6 = netip.MustParseAddr("fd00:0:0:2::2")
	ExtFarIP   = netip.MustParseAddr("198.18.200.2") // the external host, reached through the node (transit)
	ExtFarIP6  = netip.MustParseAddr("fd00:0:0:200::2")
)

// Node is a fake node: a node namespace, an external host and pods.
type Node struct {
	Dir    string
	Prefix string
	NodeNS *netnstest.NS
	Ext    *netnstest.NS

	mu   sync.Mutex
	pods map[string]*Pod
	next int
}

// Pod is one fake pod with eth0 on the bridge and net1 on the uplink.
type Pod struct {
	Name       string // pod name (the namespace file is Prefix-Name)
	NS         *netnstest.NS
	Index      int
	EthIP      netip.Addr
	EthIP6     netip.Addr
	Net1IP     netip.Addr
	Net1IP6    netip.Addr
	hostVeth   string
	removeOnce sync.Once
}

// Build creates the node and external host namespaces under dir; names start
// with prefix (short: interface names derive from it).
func Build(dir, prefix string) (n *Node, err error) {
	n = &Node{Dir: dir, Prefix: prefix, pods: map[string]*Pod{}}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if n.NodeNS, err = netnstest.Create(dir, prefix+"-node"); err != nil {
		return nil, err
	}
	if n.Ext, err = netnstest.Create(dir, prefix+"-ext"); err != nil {
		return nil, err
	}
	node := n.NodeNS.Path
	steps := [][]string{
		{node, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{node, "ip", "link", "add", "br0", "type", "bridge"},
		{node, "ip", "addr", "add", "198.18.0.1/24", "dev", "br0"},
		{node, "ip", "addr", "add", "fd00:0:0:1::1/64", "dev", "br0", "nodad"},
		{node, "ip", "link", "set", "br0", "up"},
		{node, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", n.Ext.Path},
		{node, "ip", "addr", "add", "198.19.1.1/24", "dev", "uplink"},
		{node, "ip", "addr", "add", "fd00:0:0:2::1/64", "dev", "uplink", "nodad"},
		{node, "ip", "link", "set", "uplink", "up"},
		{node, "ip", "route", "add", "198.18.200.0/24", "via", "198.19.1.2"},
		{n.Ext.Path, "ip", "addr", "add", "198.19.1.2/24", "dev", "eth0"},
		{n.Ext.Path, "ip", "addr", "add", "fd00:0:0:2::2/64", "dev", "eth0", "nodad"},
		{n.Ext.Path, "ip", "addr", "add", "198.18.200.2/32", "dev", "lo"},
		{n.Ext.Path, "ip", "link", "set", "eth0", "up"},
		{n.Ext.Path, "ip", "route", "add", "198.18.0.0/24", "via", "198.19.1.1"},
		{node, "ip", "route", "add", "fd00:0:0:200::/64", "via", "fd00:0:0:2::2"},
		{n.Ext.Path, "ip", "addr", "add", "fd00:0:0:200::2/128", "dev", "lo", "nodad"},
		{n.Ext.Path, "ip", "route", "add", "fd00:0:0:1::/64", "via", "fd00:0:0:2::1"},
	}
	if err := run(steps); err != nil {
		return nil, err
	}
	return n, nil
}

// AddPod creates a pod namespace with eth0 and net1, addressed and routed.
func (n *Node) AddPod(name string) (*Pod, error) {
	n.mu.Lock()
	if _, ok := n.pods[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("pod %s exists", name)
	}
	n.next++
	i := n.next
	n.mu.Unlock()
	if i > 200 {
		return nil, fmt.Errorf("pod %s: at most 200 pods per node", name)
	}
	ns, err := netnstest.Create(n.Dir, n.Prefix+"-"+name)
	if err != nil {
		return nil, err
	}
	p := &Pod{
		Name: name, NS: ns, Index: i,
		EthIP:    netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}),
		EthIP6:   netip.MustParseAddr(fmt.Sprintf("fd00:0:0:1::%x", 16+i)),
		Net1IP:   netip.AddrFrom4([4]byte{198, 19, 1, byte(10 + i)}),
		Net1IP6:  netip.MustParseAddr(fmt.Sprintf("fd00:0:0:2::%x", 16+i)),
		hostVeth: fmt.Sprintf("veth%d", i),
	}
	node, pod := n.NodeNS.Path, ns.Path
	steps := [][]string{
		{node, "ip", "link", "add", p.hostVeth, "type", "veth", "peer", "name", "eth0", "netns", pod},
		{node, "ip", "link", "set", p.hostVeth, "master", "br0", "up"},
		{node, "ip", "link", "add", "mv" + p.hostVeth, "link", "uplink", "type", "macvlan", "mode", "bridge"},
		{node, "ip", "link", "set", "mv" + p.hostVeth, "netns", pod},
		{pod, "ip", "link", "set", "mv" + p.hostVeth, "name", "net1"},
		{pod, "ip", "addr", "add", p.EthIP.String() + "/24", "dev", "eth0"},
		{pod, "ip", "addr", "add", p.EthIP6.String() + "/64", "dev", "eth0", "nodad"},
		{pod, "ip", "addr", "add", p.Net1IP.String() + "/24", "dev", "net1"},
		{pod, "ip", "addr", "add", p.Net1IP6.String() + "/64", "dev", "net1", "nodad"},
		{pod, "ip", "link", "set", "eth0", "up"},
		{pod, "ip", "link", "set", "net1", "up"},
		{pod, "ip", "route", "add", "default", "via", "198.18.0.1"},
		{pod, "ip", "-6", "route", "add", "default", "via", "fd00:0:0:1::1"},
	}
	if err := run(steps); err != nil {
		ns.Remove()
		return nil, fmt.Errorf("pod %s: %w", name, err)
	}
	n.mu.Lock()
	n.pods[name] = p
	n.mu.Unlock()
	return p, nil
}

// RemovePod deletes a pod: its namespace file goes, and with it its interfaces
// (the veth's node end dies with its peer).
func (n *Node) RemovePod(name string) error {
	n.mu.Lock()
	p, ok := n.pods[name]
	delete(n.pods, name)
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("no pod %s", name)
	}
	return p.remove(n)
}

func (p *Pod) remove(n *Node) error {
	var err error
	p.removeOnce.Do(func() {
		// Delete the veth explicitly: the namespace may outlive its file
		// while a process (a test's nc) still holds it.
		delErr := exec.Command("nsenter", "--net="+n.NodeNS.Path, "ip", "link", "del", p.hostVeth).Run()
		_ = delErr // already gone with the namespace is fine
		err = p.NS.Remove()
	})
	return err
}

// Pods returns the current pods.
func (n *Node) Pods() []*Pod {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Pod, 0, len(n.pods))
	for _, p := range n.pods {
		out = append(out, p)
	}
	return out
}

// Close removes every pod, the external host and the node.
func (n *Node) Close() error {
	var errs []error
	for _, p := range n.Pods() {
		errs = append(errs, n.RemovePod(p.Name))
	}
	for _, ns := range []*netnstest.NS{n.Ext, n.NodeNS} {
		if ns != nil {
			errs = append(errs, ns.Remove())
		}
	}
	return errors.Join(errs...)
}

// Exec runs argv in the namespace at path and returns its combined output.
func Exec(path string, argv ...string) (string, error) {
	out, err := exec.Command("nsenter", append([]string{"--net=" + path, "--"}, argv...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", path, strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func run(steps [][]string) error {
	for _, s := range steps {
		if _, err := Exec(s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}
