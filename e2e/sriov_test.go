package e2e

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/netif"
)

// TestSRIOV runs the agent on real SR-IOV virtual functions: those of QEMU's
// emulated igb (Intel 82576) inside make test-sriov's VM. Two pods get a VF
// each as net1 the way the SR-IOV CNI hands them over; discovery, the
// topology, the Kubernetes matcher, reports of VF↔VF traffic in both formats
// and a drop are checked; then one pod is deleted (its VF returns to the host)
// and the same VF is handed to a new pod. It skips on machines without an igb
// PF, and never touches a PF that make test-sriov did not make (NSINT_SRIOV).
func TestSRIOV(t *testing.T) {
	netnstest.RequireRoot(t)
	pf := requireSRIOVPF(t)
	vfs := createVFs(t, pf, 2)
	dir := netnstest.Dir(t)
	a := &vfPod{name: "a", vf: vfs[0], mac: mustParseMAC(t, "02:5e:00:00:00:0a"),
		ip4: netip.MustParseAddr("198.18.0.1"), ip6: netip.MustParseAddr("fd00:5e::1")}
	b := &vfPod{name: "b", vf: vfs[1], mac: mustParseMAC(t, "02:5e:00:00:00:0b"),
		ip4: netip.MustParseAddr("198.18.0.2"), ip6: netip.MustParseAddr("fd00:5e::2")}
	for _, p := range []*vfPod{a, b} {
		cniAdd(t, pf, dir, p)
	}

	// Discovery: each net1 is a VF of the PF, driven by igbvf.
	wt := startWatch(t, dir)
	checkDiscovery(t, wt, pf, a, b)

	// The agent, in each report format; both share the state directory so
	// port IDs stay the same.
	rcv := newReceiver(t)
	env := newAgentEnv(t, dir, rcv.addr(), "--report-format", "v2.0", "--attach-mode", "auto")
	wantMode := expectedAttachMode(t, "auto")
	ag := env.start(t)
	checkVFPorts(t, ag.topology(t), wantMode, a, b)
	checkVFTraffic(t, rcv, ag, intreport.V20, a, b)
	checkVFTotals(t, rcv, ag, env, a, b)
	if err := ag.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}

	rcv05 := newReceiver(t)
	env05 := *env
	env05.collector = rcv05.addr()
	env05.extra = []string{"--report-format", "v0.5", "--attach-mode", "tc"}
	ag = env05.start(t)
	checkVFPorts(t, ag.topology(t), "tc", a, b)
	checkVFTraffic(t, rcv05, ag, intreport.V05, a, b)

	// The Kubernetes matcher names each pod's net1 from a network-status
	// annotation written as the SR-IOV CNI (through Multus) writes it, also
	// after a PF-side MAC swap that fools a match by MAC.
	checkMatcher(t, pf, ag, a, b)

	// Pod a is deleted: its VF returns to the host and leaves the topology,
	// and nothing is attached to it there (--host-netns=false).
	oldPort := portOf(t, ag.topology(t), a.ns, "net1")
	cniDel(t, pf, a)
	waitFor(t, "pod a's ports gone from the topology", 15*time.Second, func() bool {
		for _, p := range ag.topology(t).Ports {
			if p.Netns.Inode == netif.Netns(a.ns.Inode) || p.Name == a.vf.hostDev {
				return false
			}
		}
		return true
	})
	if got := ourAttachments(t, hostNS()); len(got) != 0 {
		t.Errorf("attachments of ours in the host namespace with --host-netns=false:\n%s", strings.Join(got, "\n"))
	}

	// The same VF handed to a new pod, on a network with a VLAN: a new port
	// with the new namespace's identity.
	c := &vfPod{name: "c", vf: a.vf, mac: mustParseMAC(t, "02:5e:00:00:00:0c"), vlan: 100,
		ip4: netip.MustParseAddr("198.18.0.3"), ip6: netip.MustParseAddr("fd00:5e::3")}
	cniAdd(t, pf, dir, c)
	if info := pfVFInfo(t, pf, c.vf.index); info.Vlan != 100 || info.Mac.String() != c.mac.String() {
		t.Errorf("PF lists VF %d with MAC %s VLAN %d, want %s VLAN 100", c.vf.index, info.Mac, info.Vlan, c.mac)
	}
	checkDiscovery(t, wt, pf, c)
	checkVFFromFirstEvent(t, wt, c)
	var newPort api.Port
	waitFor(t, "pod c's net1 in the topology", 15*time.Second, func() bool {
		for _, p := range ag.topology(t).Ports {
			if p.Netns.Inode == netif.Netns(c.ns.Inode) && p.Name == "net1" && p.AttachMode != "" {
				newPort = p
				return true
			}
		}
		return false
	})
	t.Logf("VF %s: pod a's net1 was port %d (netns %d, ifindex %d), pod c's is port %d (netns %d, ifindex %d)",
		c.vf.pci, oldPort.ID, oldPort.Netns.Inode, oldPort.Ifindex, newPort.ID, newPort.Netns.Inode, newPort.Ifindex)
	if newPort.ID == oldPort.ID || newPort.Netns.Name != c.ns.Name || newPort.PCIAddress != c.vf.pci {
		t.Errorf("the VF handed to pod c is port %d in %s (pci %q); pod a's was port %d in %s: want a new port in %s, pci %s",
			newPort.ID, newPort.Netns.Name, newPort.PCIAddress, oldPort.ID, oldPort.Netns.Name, c.ns.Name, c.vf.pci)
	}

	// Stop, clean up: nothing of ours remains.
	if err := ag.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	env.cleanup(t)
	for _, ns := range []*netnstest.NS{b.ns, c.ns, hostNS()} {
		if got := ourAttachments(t, ns); len(got) != 0 {
			t.Errorf("%s after cleanup: %s", ns.Name, strings.Join(got, "\n"))
		}
	}
	checkNothingLeft(t, env)
}

func mustParseMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// watch runs ifacewatch over dir until the test ends and keeps its events.
type watch struct {
	w      *ifacewatch.Watcher
	mu     sync.Mutex
	events []ifacewatch.Event
}

func startWatch(t *testing.T, dir string) *watch {
	t.Helper()
	w, err := ifacewatch.New(ifacewatch.Config{Dirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	wt := &watch{w: w}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan ifacewatch.Event, 1024)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, events) }()
	go func() {
		for ev := range events { // Run closes it
			wt.mu.Lock()
			wt.events = append(wt.events, ev)
			wt.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("ifacewatch: %v", err)
		}
	})
	return wt
}

// eventsIn returns the interface events so far of the namespace at path
// (not by inode: the kernel reuses those of destroyed namespaces).
func (wt *watch) eventsIn(path string) []ifacewatch.Event {
	wt.mu.Lock()
	defer wt.mu.Unlock()
	var out []ifacewatch.Event
	for _, ev := range wt.events {
		if ev.Netns.Path == path && ev.Iface != nil {
			out = append(out, ev)
		}
	}
	return out
}

// checkDiscovery checks that ifacewatch reports each pod's net1 as a VF of pf
// with igbvf and the VF's PCI address, and logs each VF for
// hack/vm/summarize -list-vfs.
func checkDiscovery(t *testing.T, wt *watch, pf *sriovPF, pods ...*vfPod) {
	t.Helper()
	for _, p := range pods {
		var got ifacewatch.Interface
		found := func() bool {
			for _, ns := range wt.w.Snapshot() {
				if uint64(ns.ID) != p.ns.Inode {
					continue
				}
				for _, i := range ns.Interfaces {
					if i.Name == "net1" {
						got = i
						return i.Driver != ""
					}
				}
			}
			return false
		}
		deadline := time.Now().Add(scaled(10 * time.Second))
		for !found() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !got.VF || got.Kind != ifacewatch.KindVF || got.Driver != "igbvf" || got.PCIAddress != p.vf.pci ||
			got.PhysFn != pf.pci {
			t.Errorf("discovery of %s net1: vf=%v kind=%q driver=%q pci=%q pf=%q; want a vf, igbvf, %s, PF %s",
				p.ns.Name, got.VF, got.Kind, got.Driver, got.PCIAddress, got.PhysFn, p.vf.pci, pf.pci)
			continue
		}
		t.Logf("SR-IOV VF pod-%s:%s/net1 driver=%s pci=%s pf=%s", p.name, p.ns.Name, got.Driver, got.PCIAddress,
			got.PhysFn)
	}
}

// checkVFFromFirstEvent checks that a VF handed to pod p (moved in under its
// host name, then renamed net1) was a VF in every event about it: a kind
// that changes makes consumers drop the interface and add it anew.
func checkVFFromFirstEvent(t *testing.T, wt *watch, p *vfPod) {
	t.Helper()
	var seen []string
	bad := false
	for _, ev := range wt.eventsIn(p.ns.Path) {
		if ev.Iface.PCIAddress != p.vf.pci && ev.Iface.Kind != ifacewatch.KindPhysical {
			continue // another interface (lo)
		}
		seen = append(seen, fmt.Sprintf("%s %s kind=%s driver=%q pci=%q", ev.Kind, ev.Iface.Name, ev.Iface.Kind,
			ev.Iface.Driver, ev.Iface.PCIAddress))
		if ev.Kind == ifacewatch.IfaceRemoved || ev.Iface.Kind != ifacewatch.KindVF {
			bad = true
		}
	}
	if bad || len(seen) == 0 {
		t.Errorf("VF %s handed to %s: want VF events only, never removed; got:\n%s", p.vf.pci, p.ns.Name,
			strings.Join(seen, "\n"))
	}
}

// portOf returns the port of interface name in ns, failing when there is none.
func portOf(t *testing.T, topo api.Topology, ns *netnstest.NS, name string) api.Port {
	t.Helper()
	for _, p := range topo.Ports {
		if p.Netns.Inode == netif.Netns(ns.Inode) && p.Name == name {
			return p
		}
	}
	t.Fatalf("topology has no port for %s in %s", name, ns.Name)
	return api.Port{}
}

// checkVFPorts checks each pod's net1 port: a VF, igbvf, its PCI address (what
// Multus device-info matching needs), attached in wantMode, and its own ID.
func checkVFPorts(t *testing.T, topo api.Topology, wantMode string, pods ...*vfPod) {
	t.Helper()
	ids := map[uint16]string{}
	for _, p := range pods {
		port := portOf(t, topo, p.ns, "net1")
		if port.Kind != ifacewatch.KindVF || port.Driver != "igbvf" || port.PCIAddress != p.vf.pci ||
			port.AttachMode != wantMode || port.MAC != p.mac.String() {
			t.Errorf("port of %s net1: %+v; want kind vf, driver igbvf, pciAddress %s, attachMode %s, mac %s",
				p.ns.Name, port, p.vf.pci, wantMode, p.mac)
		}
		if other, dup := ids[port.ID]; dup {
			t.Errorf("net1 of %s and %s share port %d", p.ns.Name, other, port.ID)
		}
		ids[port.ID] = p.ns.Name
	}
	if _, ok := ids[0]; ok {
		t.Error("a net1 has port ID 0")
	}
}

// checkVFTraffic sends ICMP (v4 and v6), UDP and TCP from pod a's net1 to pod
// b's, and UDP to a closed port of b, and waits for the reports naming each
// pod's net1 port, in format.
func checkVFTraffic(t *testing.T, rcv *receiver, ag *agentProc, format intreport.Format, a, b *vfPod) {
	t.Helper()
	run(t, a.ns, "ping", "-c2", "-i0.2", "-W2", b.ip4.String())
	run(t, a.ns, "ping", "-c2", "-i0.2", "-W2", b.ip6.String())
	udpExchange(t, a.ns, b.ns, b.ip4, 4000)
	tcpExchange(t, a.ns, b.ns, b.ip4, 5201)
	sendUDP(t, a.ns, netip.AddrPortFrom(b.ip4, 9), "nobody listens")

	aNet1, bNet1 := a.ns.Name+":net1", b.ns.Name+":net1"
	aStack, bStack := a.ns.Name+":"+api.LocalStackName, b.ns.Name+":"+api.LocalStackName
	expects := []reportExpect{
		{"icmp a→b leaves a's VF", a.ip4, b.ip4, 1, aStack, aNet1, false, ""},
		{"icmp a→b enters b's VF", a.ip4, b.ip4, 1, bNet1, bStack, false, ""},
		{"icmp b→a (reply) leaves b's VF", b.ip4, a.ip4, 1, bStack, bNet1, false, ""},
		{"icmpv6 a→b enters b's VF", a.ip6, b.ip6, 58, bNet1, bStack, false, ""},
		{"udp a→b leaves a's VF", a.ip4, b.ip4, 17, aStack, aNet1, false, ""},
		{"udp a→b enters b's VF", a.ip4, b.ip4, 17, bNet1, bStack, false, ""},
		{"tcp a→b leaves a's VF", a.ip4, b.ip4, 6, aStack, aNet1, false, ""},
		{"tcp a→b enters b's VF", a.ip4, b.ip4, 6, bNet1, bStack, false, ""},
		{"udp to a closed port dropped behind b's VF", a.ip4, b.ip4, 17, bNet1, "", true, "SKB_DROP_REASON_NO_SOCKET"},
	}
	topo := ag.topology(t)
	waitReports(t, format.String(), rcv, topo, expects)
	reps, bad := rcv.snapshot()
	if len(bad) > 0 {
		t.Errorf("%d reports failed to decode, first: %v", len(bad), bad[0])
	}
	for _, r := range reps {
		if r.format != format {
			t.Fatalf("report in %s, want %s", r.format, format)
		}
		for _, id := range []uint16{r.rep.IngressPort, r.rep.EgressPort} {
			if id != 0 && strings.HasPrefix(portName(topo, id), "unknown") {
				t.Errorf("report names port %d, which the topology does not list", id)
			}
		}
	}
}

// checkVFTotals sends a burst of UDP from pod a's VF to pod b's, shorter
// than the report interval, and checks that the v2.0 reports of the flow add
// up to exactly what was sent, at a's VF egress and at b's VF ingress, once
// the interval and a second have passed.
func checkVFTotals(t *testing.T, rcv *receiver, ag *agentProc, env *agentEnv, a, b *vfPod) {
	t.Helper()
	const n, payload, dport = 40, 100, 4100
	src, dst := netip.AddrPortFrom(a.ip4, 44100), netip.AddrPortFrom(b.ip4, dport)
	sink := listenUDP(t, b.ns, dst)
	sendUDPBurst(t, a.ns, src, dst, n, payload, 2*time.Millisecond)
	waitFor(t, "every datagram received by b", 10*time.Second, func() bool { return sink.received() == n })
	interval, err := time.ParseDuration(env.interval)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(scaled(interval + time.Second))
	topo := ag.topology(t)
	const frame = 14 + 20 + 8 + payload
	reps, _ := rcv.snapshot()
	for _, at := range []struct {
		port api.Port
		dir  netif.Direction
	}{{portOf(t, topo, a.ns, "net1"), netif.Egress}, {portOf(t, topo, b.ns, "net1"), netif.Ingress}} {
		var packets, bytes uint64
		for _, r := range reps {
			tu := r.tuple
			if r.rep.Kind == intreport.Flow && r.rep.ObservationPort == at.port.ID && r.rep.Direction == at.dir &&
				tu.Src == src.Addr() && tu.Dst == dst.Addr() && tu.SrcPort == src.Port() && tu.DstPort == dst.Port() {
				packets += r.rep.Packets
				bytes += r.rep.Bytes
			}
		}
		if packets != n || bytes != n*frame {
			t.Errorf("VF to VF totals at %s:%s (port %d) direction %d: %d packets %d bytes, want %d and %d",
				at.port.Netns.Name, at.port.Name, at.port.ID, at.dir, packets, bytes, n, n*frame)
		} else {
			t.Logf("VF to VF totals at %s:%s direction %d: all %d packets, %d bytes", at.port.Netns.Name, at.port.Name, at.dir, n, bytes)
		}
	}
}

// sriovPod is a pod as the API server would show it once Multus wrote the
// network-status annotation for an SR-IOV net1 (device-info from the SR-IOV
// CNI), with the MAC and addresses the pod got at ADD.
func sriovPod(p *vfPod) *corev1.Pod {
	status := fmt.Sprintf(`[{"name":"ovn-kubernetes","interface":"eth0","ips":["10.128.0.%d"],"mac":"0a:58:0a:80:00:%02x","default":true,"dns":{}},
 {"name":"sriov-test/sriov-net","interface":"net1","ips":["%s","%s"],"mac":"%s","dns":{},
  "device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"%s"}}}]`,
		10+p.ip4.As4()[3], 10+p.ip4.As4()[3], p.ip4, p.ip6, p.mac, p.vf.pci)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sriov-test", Name: "pod-" + p.name, UID: types.UID("uid-" + p.name),
			Annotations: map[string]string{"k8s.v1.cni.cncf.io/network-status": status}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning,
			PodIPs: []corev1.PodIP{{IP: fmt.Sprintf("10.128.0.%d", 10+p.ip4.As4()[3])}}},
	}
}

// checkMatcher runs pkg/k8s's matcher on the agent's live interfaces.
func checkMatcher(t *testing.T, pf *sriovPF, ag *agentProc, a, b *vfPod) {
	t.Helper()
	pods := []*corev1.Pod{sriovPod(a), sriovPod(b)}
	check := func(when string) {
		t.Helper()
		topo := ag.topology(t)
		var ifaces []k8s.Iface
		for _, p := range topo.Ports {
			if p.LocalStack {
				continue
			}
			in := k8s.Iface{ID: netif.ID{Netns: p.Netns.Inode}, NetnsPath: p.Netns.Path, Name: p.Name, PCIAddress: p.PCIAddress}
			if p.MAC != "" {
				in.MAC = mustParseMAC(t, p.MAC)
			}
			for _, ip := range p.IPs {
				in.IPs = append(in.IPs, netip.MustParseAddr(ip))
			}
			ifaces = append(ifaces, in)
		}
		got, err := k8s.MatchPods(pods, ifaces, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*vfPod{a, b} {
			named := false
			for i, f := range ifaces {
				if f.Netns != netif.Netns(p.ns.Inode) || f.Name != "net1" {
					continue
				}
				m, ok := got[i]
				if !ok || m.Pod.Name != "pod-"+p.name || m.Interface != "net1" || m.Network != "sriov-test/sriov-net" ||
					m.Role != k8s.RoleSecondary {
					t.Errorf("%s: %s net1 (mac %s, pci %s) matched %+v (ok=%v), want pod-%s net1 sriov-test/sriov-net",
						when, p.ns.Name, f.MAC, f.PCIAddress, m, ok, p.name)
				}
				named = true
			}
			if !named {
				t.Errorf("%s: no net1 of %s among the agent's interfaces", when, p.ns.Name)
			}
		}
	}
	check("as added")

	// Swap the two VFs' MACs from the PF side: each net1 then has the MAC
	// the other pod's annotation lists.
	changeVFMAC(t, pf, a.vf, a.ns.NetlinkHandle(t), "net1", b.mac)
	changeVFMAC(t, pf, b.vf, b.ns.NetlinkHandle(t), "net1", a.mac)
	waitFor(t, "the MAC swap in the topology", 15*time.Second, func() bool {
		topo := ag.topology(t)
		return portOf(t, topo, a.ns, "net1").MAC == b.mac.String() && portOf(t, topo, b.ns, "net1").MAC == a.mac.String()
	})
	check("after a PF-side MAC swap")
}

// checkNothingLeft checks that `nsint-agent cleanup` left no pin in the
// agent's bpffs and no program of ours loaded in the kernel (the VM runs
// nothing else of ours).
func checkNothingLeft(t *testing.T, env *agentEnv) {
	t.Helper()
	var left []string
	err := filepath.WalkDir(env.bpffs, func(path string, d fs.DirEntry, err error) error {
		if err == nil && path != env.bpffs {
			left = append(left, strings.TrimPrefix(path, env.bpffs+"/"))
		}
		return err
	})
	if err != nil || len(left) != 0 {
		t.Errorf("the agent's bpffs after cleanup: %v (%v)", left, err)
	}
	// A program is freed once its last reference goes, which may lag the
	// agent's exit a little.
	left = ourPrograms()
	for deadline := time.Now().Add(scaled(10 * time.Second)); len(left) != 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		left = ourPrograms()
	}
	if len(left) != 0 {
		t.Errorf("programs still loaded after cleanup: %v", left)
	}
}

// ourPrograms lists the loaded eBPF programs named nsint_*.
func ourPrograms() []string {
	var out []string
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		prog.Close()
		if err == nil && strings.HasPrefix(info.Name, "nsint_") {
			out = append(out, fmt.Sprintf("%d %s", id, info.Name))
		}
	}
}
