package agent

import (
	"context"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/netif"
)

// An interface gets a port and both hooks when it appears, keeps its port
// when renamed, is a new identity (a new port) when moved to another
// namespace, and loses its port when deleted or when its namespace goes;
// a namespace has a local-stack port as long as it exists. Removed ports
// stay named among the gone ports.
func TestInterfaceLifecycle(t *testing.T) {
	dir := netnstest.Dir(t)
	prefix := netnstest.Prefix(t)
	a := netnstest.New(t, dir, prefix+"a")
	b := netnstest.New(t, dir, prefix+"b")
	ta := startAgent(t, dir, seams{})
	ta.waitReady(t)

	topo := ta.waitTopology(t, "both namespaces have a local-stack port", func(topo api.Topology) bool {
		return portNamed(topo.Ports, a.Inode, api.LocalStackName) != nil &&
			portNamed(topo.Ports, b.Inode, api.LocalStackName) != nil
	})
	localB := portNamed(topo.Ports, b.Inode, api.LocalStackName).ID

	// Added.
	netnstest.Veth(t, a, "eth0", b, "eth0")
	topo = ta.waitTopology(t, "both ends of the veth are attached", func(topo api.Topology) bool {
		return attached(topo, a.Inode, "eth0") && attached(topo, b.Inode, "eth0")
	})
	ethA, ethB := *portNamed(topo.Ports, a.Inode, "eth0"), *portNamed(topo.Ports, b.Inode, "eth0")
	if ethA.ID == ethB.ID || ethA.Ifindex == 0 || ethA.LocalStack || ethA.Kind != "veth" {
		t.Fatalf("ports of the veth ends: %+v and %+v", ethA, ethB)
	}
	if ethA.AttachMode != "tcx" && ethA.AttachMode != "tc" {
		t.Errorf("attach mode %q", ethA.AttachMode)
	}

	// Renamed: same identity, same port, new name.
	ha := a.NetlinkHandle(t)
	rename(t, ha, "eth0", "net1")
	topo = ta.waitTopology(t, "the renamed interface has its new name", func(topo api.Topology) bool {
		return portNamed(topo.Ports, a.Inode, "net1") != nil && portNamed(topo.Ports, a.Inode, "eth0") == nil
	})
	if p := portNamed(topo.Ports, a.Inode, "net1"); p.ID != ethA.ID || p.Ifindex != ethA.Ifindex || p.AttachMode == "" {
		t.Errorf("renamed interface: port %+v, want port %d kept, attached", *p, ethA.ID)
	}

	// Moved from b to a: another identity, so its port goes and a new one
	// comes.
	hb := b.NetlinkHandle(t)
	link, err := hb.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	moveTo(t, hb, link, a)
	topo = ta.waitTopology(t, "the moved interface is attached in its new namespace only", func(topo api.Topology) bool {
		return attached(topo, a.Inode, "eth0") && portNamed(topo.Ports, b.Inode, "eth0") == nil
	})
	moved := portNamed(topo.Ports, a.Inode, "eth0")
	if moved.ID == ethB.ID {
		t.Errorf("the moved interface kept port %d of its old identity", moved.ID)
	}
	if g := portByID(topo.GonePorts, ethB.ID); g == nil || g.Netns.Inode != netif.Netns(b.Inode) || g.Name != "eth0" {
		t.Errorf("gone ports %+v lack port %d (eth0 of %s)", topo.GonePorts, ethB.ID, b.Name)
	}

	// Deleted: deleting one end of a veth deletes both.
	if link, err = ha.LinkByName("net1"); err != nil {
		t.Fatal(err)
	}
	if err := ha.LinkDel(link); err != nil {
		t.Fatal(err)
	}
	topo = ta.waitTopology(t, "the deleted interfaces have no port", func(topo api.Topology) bool {
		return portNamed(topo.Ports, a.Inode, "net1") == nil && portNamed(topo.Ports, a.Inode, "eth0") == nil
	})
	for _, id := range []uint16{ethA.ID, moved.ID} {
		if portByID(topo.GonePorts, id) == nil {
			t.Errorf("deleted port %d is not among the gone ports %+v", id, topo.GonePorts)
		}
	}
	if portNamed(topo.Ports, a.Inode, api.LocalStackName) == nil {
		t.Errorf("namespace %s lost its local-stack port with its interfaces", a.Name)
	}

	// The namespace goes, with an interface still in it.
	netnstest.Veth(t, a, "eth1", b, "eth1")
	topo = ta.waitTopology(t, "the new veth is attached", func(topo api.Topology) bool {
		return attached(topo, a.Inode, "eth1") && attached(topo, b.Inode, "eth1")
	})
	eth1B := portNamed(topo.Ports, b.Inode, "eth1").ID
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	topo = ta.waitTopology(t, "the removed namespace has no port left", func(topo api.Topology) bool {
		for _, p := range topo.Ports {
			if p.Netns.Inode == netif.Netns(b.Inode) {
				return false
			}
		}
		return true
	})
	for _, id := range []uint16{localB, eth1B} {
		if g := portByID(topo.GonePorts, id); g == nil || g.Netns.Inode != netif.Netns(b.Inode) {
			t.Errorf("port %d of the removed namespace is not among the gone ports %+v", id, topo.GonePorts)
		}
	}
	for _, ns := range ta.Namespaces() {
		if ns.Inode == netif.Netns(b.Inode) {
			t.Errorf("the removed namespace is still listed: %+v", ns)
		}
	}
	if portNamed(topo.Ports, a.Inode, api.LocalStackName) == nil {
		t.Errorf("namespace %s lost its local-stack port", a.Name)
	}
}

// rename renames interface from to to through h (down, renamed, up).
func rename(t *testing.T, h *netlink.Handle, from, to string) {
	t.Helper()
	link, err := h.LinkByName(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(link); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetName(link, to); err != nil {
		t.Fatalf("rename %s to %s: %v", from, to, err)
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatal(err)
	}
}

// moveTo moves link, seen through h, into namespace to.
func moveTo(t *testing.T, h *netlink.Handle, link netlink.Link, to *netnstest.NS) {
	t.Helper()
	fd, err := unix.Open(to.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := h.LinkSetNsFd(link, fd); err != nil {
		t.Fatalf("move %s into %s: %v", link.Attrs().Name, to.Name, err)
	}
	hto := to.NetlinkHandle(t)
	moved, err := hto.LinkByName(link.Attrs().Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := hto.LinkSetUp(moved); err != nil {
		t.Fatal(err)
	}
}

// fakeKubernetes stands in for the API server behind the enricher: it
// names the interfaces it was told about, by namespace inode and name.
type fakeKubernetes struct {
	changes chan struct{}
	mu      sync.Mutex
	names   map[ifaceKey]k8s.Meta
}

type ifaceKey struct {
	inode uint64
	name  string
}

func newFakeKubernetes() *fakeKubernetes {
	return &fakeKubernetes{changes: make(chan struct{}, 1), names: map[ifaceKey]k8s.Meta{}}
}

func (f *fakeKubernetes) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

func (f *fakeKubernetes) Changes() <-chan struct{} { return f.changes }

func (f *fakeKubernetes) Match(ifaces []k8s.Iface) map[int]k8s.Meta {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[int]k8s.Meta{}
	for i, in := range ifaces {
		if m, ok := f.names[ifaceKey{uint64(in.Netns), in.Name}]; ok {
			out[i] = m
		}
	}
	return out
}

func (f *fakeKubernetes) Stats() k8s.Stats { return k8s.Stats{} }

// set makes the interface name in the namespace of inode m's (a zero m
// forgets it); signal says whether Kubernetes announces the change.
func (f *fakeKubernetes) set(inode uint64, name string, m k8s.Meta, signal bool) {
	f.mu.Lock()
	if m.Pod.Name == "" {
		delete(f.names, ifaceKey{inode, name})
	} else {
		f.names[ifaceKey{inode, name}] = m
	}
	f.mu.Unlock()
	if signal {
		select {
		case f.changes <- struct{}{}:
		default:
		}
	}
}

// Kubernetes names that arrive after the interfaces are attached name their
// ports, the namespace's local-stack port and the namespace; an interface
// that changes is matched again without Kubernetes saying anything; a
// pod's ports keep its name among the gone ports after Kubernetes forgot
// the pod and its namespace went.
func TestKubernetesNamesArriveLate(t *testing.T) {
	dir := netnstest.Dir(t)
	prefix := netnstest.Prefix(t)
	pod := netnstest.New(t, dir, prefix+"p")
	peer := netnstest.New(t, dir, prefix+"q")
	kube := newFakeKubernetes()
	ta := startAgent(t, dir, seams{names: func() (namer, error) { return kube, nil }})
	netnstest.Veth(t, pod, "eth0", peer, "eth0")
	ta.waitReady(t)
	topo := ta.waitTopology(t, "both ends are attached", func(topo api.Topology) bool {
		return attached(topo, pod.Inode, "eth0") && attached(topo, peer.Inode, "eth0")
	})
	for _, p := range topo.Ports {
		if p.Pod != nil {
			t.Fatalf("port %d named before Kubernetes said anything: %+v", p.ID, p)
		}
	}
	eth0 := portNamed(topo.Ports, pod.Inode, "eth0").ID
	local := portNamed(topo.Ports, pod.Inode, api.LocalStackName).ID

	web := k8s.PodRef{Namespace: "shop", Name: "web-0", UID: "uid-web-0"}
	kube.set(pod.Inode, "eth0", k8s.Meta{Pod: web, Network: "shop/default", Role: k8s.RolePrimary}, true)
	want := api.Pod{Namespace: "shop", Name: "web-0", UID: "uid-web-0"}
	topo = ta.waitTopology(t, "eth0 is named after its pod", func(topo api.Topology) bool {
		p := portByID(topo.Ports, eth0)
		return p != nil && p.Pod != nil
	})
	if p := portByID(topo.Ports, eth0); *p.Pod != want || p.Network != "shop/default" || p.Role != k8s.RolePrimary {
		t.Errorf("eth0: pod %+v network %q role %q", *p.Pod, p.Network, p.Role)
	}
	if p := portByID(topo.Ports, local); p.Pod == nil || *p.Pod != want {
		t.Errorf("the pod's local-stack port is not named after it: %+v", p)
	}
	if p := portNamed(topo.Ports, peer.Inode, "eth0"); p.Pod != nil {
		t.Errorf("the peer's eth0 got a pod: %+v", p.Pod)
	}
	named := false
	for _, ns := range ta.Namespaces() {
		if ns.Inode == netif.Netns(pod.Inode) {
			named = ns.Pod != nil && *ns.Pod == want
		}
	}
	if !named {
		t.Errorf("namespace %s is not named after its pod: %+v", pod.Name, ta.Namespaces())
	}

	// A rename is matched again with no word from Kubernetes.
	kube.set(pod.Inode, "net1", k8s.Meta{Pod: web, Network: "shop/sriov-a", Role: k8s.RoleSecondary, NetworkType: "sriov"}, false)
	rename(t, pod.NetlinkHandle(t), "eth0", "net1")
	topo = ta.waitTopology(t, "the renamed interface has the names of net1", func(topo api.Topology) bool {
		p := portByID(topo.Ports, eth0)
		return p != nil && p.Name == "net1" && p.Network == "shop/sriov-a"
	})
	if p := portByID(topo.Ports, eth0); p.Role != k8s.RoleSecondary || p.NetworkType != "sriov" || p.Pod == nil {
		t.Errorf("net1: %+v", *p)
	}

	// Kubernetes forgets the pod before its namespace goes.
	kube.set(pod.Inode, "eth0", k8s.Meta{}, false)
	kube.set(pod.Inode, "net1", k8s.Meta{}, true)
	ta.waitTopology(t, "the forgotten pod's names are gone", func(topo api.Topology) bool {
		p := portByID(topo.Ports, eth0)
		return p != nil && p.Pod == nil
	})
	if err := pod.Remove(); err != nil {
		t.Fatal(err)
	}
	topo = ta.waitTopology(t, "the pod's ports are gone", func(topo api.Topology) bool {
		return portByID(topo.GonePorts, eth0) != nil && portByID(topo.GonePorts, local) != nil
	})
	for _, id := range []uint16{eth0, local} {
		if g := portByID(topo.GonePorts, id); g.Pod == nil || *g.Pod != want {
			t.Errorf("gone port %d does not name the pod: %+v", id, *g)
		}
	}
}
