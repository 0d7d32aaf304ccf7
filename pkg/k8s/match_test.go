package k8s

import (
	"errors"
	"net"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nsint/nsint/pkg/netif"
)

func mustMAC(t *testing.T, s string) net.HardwareAddr {
	t.Helper()
	m, err := net.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func testPod(name, status string, podIPs ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns1", Name: name, UID: "uid-" + types.UID(name)},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
	if status != "" {
		p.Annotations = map[string]string{"k8s.v1.cni.cncf.io/network-status": status}
	}
	for _, ip := range podIPs {
		p.Status.PodIPs = append(p.Status.PodIPs, corev1.PodIP{IP: ip})
	}
	return p
}

func mustPodNetworks(t *testing.T, pod *corev1.Pod) *podNetworks {
	t.Helper()
	p, err := podNetworksOf(pod)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var nadTypes = map[string]string{"ns1/macvlan-net": "macvlan", "ns1/sriov-net": "sriov"}

func lookupType(podNS, network string) string { return nadTypes[network] }

const statusA = `[
 {"name":"cbr0","interface":"eth0","ips":["198.18.0.10"],"mac":"0a:00:00:00:00:01","default":true},
 {"name":"ns1/macvlan-net","interface":"net1","ips":["198.18.1.10"],"mac":"0a:00:00:00:01:01"},
 {"name":"ns1/sriov-net","interface":"net2","device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:10.2"}}}
]`

func TestMatchMultusPod(t *testing.T) {
	pods := []*podNetworks{
		mustPodNetworks(t, testPod("a", statusA, "198.18.0.10")),
		mustPodNetworks(t, testPod("b", "", "198.18.0.11")),
	}
	ifaces := []Iface{
		// pod a's namespace (inode 10): MAC-matched eth0, net1 renamed to "lan"
		// (still MAC-matched), net2 an SR-IOV VF matched by PCI address only.
		{ID: netif.ID{Netns: 10}, Name: "eth0", MAC: mustMAC(t, "0a:00:00:00:00:01"), IPs: addrs("198.18.0.10")},
		{ID: netif.ID{Netns: 10}, Name: "lan", MAC: mustMAC(t, "0A:00:00:00:01:01")},
		{ID: netif.ID{Netns: 10}, Name: "net2", MAC: mustMAC(t, "0a:00:00:00:02:99"), PCIAddress: "0000:01:10.2"},
		{ID: netif.ID{Netns: 10}, Name: "lo", IPs: addrs("127.0.0.1")},
		// pod b has no Multus: eth0 by status.podIPs.
		{ID: netif.ID{Netns: 11}, Name: "eth0", MAC: mustMAC(t, "0a:00:00:00:00:02"), IPs: addrs("198.18.0.11")},
		// an unknown namespace with the same names.
		{ID: netif.ID{Netns: 12}, Name: "eth0", IPs: addrs("198.18.0.99")},
		{ID: netif.ID{Netns: 12}, Name: "net1"},
	}
	got := newMatcher(pods, lookupType).match(ifaces, 0)
	want := map[int]Meta{
		0: {Pod: pods[0].ref, Network: "cbr0", Role: RolePrimary, Interface: "eth0"},
		1: {Pod: pods[0].ref, Network: "ns1/macvlan-net", Role: RoleSecondary, NetworkType: "macvlan", Interface: "net1"},
		2: {Pod: pods[0].ref, Network: "ns1/sriov-net", Role: RoleSecondary, NetworkType: "sriov", Interface: "net2"},
		4: {Pod: pods[1].ref, Role: RolePrimary, Interface: "eth0"},
	}
	if len(got) != len(want) {
		t.Errorf("matched %d interfaces, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("iface %d (%s in %d): got %+v, want %+v", i, ifaces[i].Name, ifaces[i].Netns, got[i], w)
		}
	}
}

func TestMatchByNameOnceNamespaceIsOwned(t *testing.T) {
	// Entries without MAC: eth0 matches by IP, which gives the namespace to
	// the pod; net1 (no address yet) then matches by name.
	status := `[{"name":"cbr0","interface":"eth0","ips":["198.18.0.20"],"default":true},
	            {"name":"ns1/macvlan-net","interface":"net1"}]`
	pods := []*podNetworks{mustPodNetworks(t, testPod("c", status))}
	ifaces := []Iface{
		{ID: netif.ID{Netns: 20}, Name: "net1"},
		{ID: netif.ID{Netns: 20}, Name: "eth0", IPs: addrs("198.18.0.20")},
		{ID: netif.ID{Netns: 21}, Name: "net1"}, // same name, another namespace: not the pod's
	}
	got := newMatcher(pods, lookupType).match(ifaces, 0)
	if m, ok := got[0]; !ok || m.Network != "ns1/macvlan-net" || m.Role != RoleSecondary {
		t.Errorf("net1 by name: got %+v, %v", m, ok)
	}
	if m := got[1]; m.Role != RolePrimary || m.Pod.Name != "c" {
		t.Errorf("eth0 by IP: got %+v", m)
	}
	if m, ok := got[2]; ok {
		t.Errorf("net1 of an unowned namespace was attributed: %+v", m)
	}
}

func TestMatchSkipsOwnNamespace(t *testing.T) {
	pods := []*podNetworks{mustPodNetworks(t, testPod("d", "", "198.18.0.30"))}
	ifaces := []Iface{{ID: netif.ID{Netns: 1}, Name: "eth0", IPs: addrs("198.18.0.30")}}
	if got := newMatcher(pods, nil).match(ifaces, 1); len(got) != 0 {
		t.Errorf("interface of the agent's own namespace was attributed: %+v", got)
	}
}

func TestPodNetworksOf(t *testing.T) {
	host := testPod("h", "", "198.18.0.40")
	host.Spec.HostNetwork = true
	if p, err := podNetworksOf(host); p != nil || err != nil {
		t.Errorf("hostNetwork pod: got %+v, %v; want nothing", p, err)
	}
	p, err := podNetworksOf(testPod("m", `[{"name":`, "198.18.0.41"))
	if !errors.Is(err, ErrMalformedNetworkStatus) {
		t.Fatalf("malformed annotation: err %v", err)
	}
	if len(p.attachments) != 1 || p.attachments[0].iface != "eth0" || p.attachments[0].ips[0] != netip.MustParseAddr("198.18.0.41") {
		t.Errorf("malformed annotation: want the podIPs fallback, got %+v", p.attachments)
	}
	p, err = podNetworksOf(testPod("n", `[{"name":"x/y","interface":"net1","ips":["nope","198.18.2.1/24"],"mac":"zz"}]`))
	if !errors.Is(err, ErrMalformedNetworkStatus) || len(p.attachments) != 1 || len(p.attachments[0].ips) != 1 {
		t.Errorf("bad fields: got %+v, %v", p, err)
	}
}

// TestMatchVFsAfterPFSideMACSwap: two pods whose net1 are SR-IOV VFs, the
// annotation written before the PF swapped the VFs' MACs and without IPs.
// Each MAC now points to the other pod; the PCI addresses still say who is
// who, and must win — and no pod may own both namespaces.
func TestMatchVFsAfterPFSideMACSwap(t *testing.T) {
	status := func(mac, pci string) string {
		return `[{"name":"ns1/sriov-net","interface":"net1","mac":"` + mac +
			`","device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"` + pci + `"}}}]`
	}
	pods := []*podNetworks{
		mustPodNetworks(t, testPod("a", status("0a:00:00:00:0a:01", "0000:01:10.0"))),
		mustPodNetworks(t, testPod("b", status("0a:00:00:00:0b:01", "0000:01:10.2"))),
	}
	ifaces := []Iface{
		{ID: netif.ID{Netns: 20}, Name: "net1", MAC: mustMAC(t, "0a:00:00:00:0b:01"), PCIAddress: "0000:01:10.0"},
		{ID: netif.ID{Netns: 21}, Name: "net1", MAC: mustMAC(t, "0a:00:00:00:0a:01"), PCIAddress: "0000:01:10.2"},
	}
	got := newMatcher(pods, lookupType).match(ifaces, 0)
	for i, want := range []string{"ns1/a", "ns1/b"} {
		m, ok := got[i]
		if !ok || m.Pod.String() != want || m.Network != "ns1/sriov-net" {
			t.Errorf("netns %d net1: %+v (matched %v), want pod %s network ns1/sriov-net", ifaces[i].Netns, m, ok, want)
		}
	}
}
