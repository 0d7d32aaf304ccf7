package k8s

import (
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nsint/nsint/pkg/netif"
)

// sriovStatus is a network-status annotation as Multus writes it for a pod
// whose net1 is an SR-IOV VF (the SR-IOV CNI's device-info).
func sriovStatus(mac, ip, pci string) string {
	return `[{"name":"cbr0","interface":"eth0","ips":["10.0.0.1"],"default":true},
 {"name":"ns1/sriov-net","interface":"net1","ips":["` + ip + `"],"mac":"` + mac + `","dns":{},
  "device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"` + pci + `"}}}]`
}

// Two pods whose net1 VFs had their MACs swapped from the PF side after
// Multus wrote the annotations: the PCI address (and the IP) still name each
// pod's net1, where MAC alone would swap them.
func TestMatchPodsSRIOVAfterMACSwap(t *testing.T) {
	pods := []*corev1.Pod{
		testPod("a", sriovStatus("02:00:00:00:00:0a", "198.18.0.1", "0000:01:10.0")),
		testPod("b", sriovStatus("02:00:00:00:00:0b", "198.18.0.2", "0000:01:10.2")),
	}
	ifaces := []Iface{
		{ID: netif.ID{Netns: 10}, Name: "lo", IPs: addrs("127.0.0.1")},
		{ID: netif.ID{Netns: 10}, Name: "net1", MAC: mustMAC(t, "02:00:00:00:00:0b"), IPs: addrs("198.18.0.1"), PCIAddress: "0000:01:10.0"},
		{ID: netif.ID{Netns: 11}, Name: "net1", MAC: mustMAC(t, "02:00:00:00:00:0a"), IPs: addrs("198.18.0.2"), PCIAddress: "0000:01:10.2"},
		{ID: netif.ID{Netns: 12}, Name: "net1", MAC: mustMAC(t, "02:00:00:00:00:0c"), PCIAddress: "0000:01:10.4"},
	}
	got, err := MatchPods(pods, ifaces, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{1: "ns1/a", 2: "ns1/b"}
	if len(got) != len(want) {
		t.Errorf("matched %d interfaces, want %d: %+v", len(got), len(want), got)
	}
	for i, pod := range want {
		m, ok := got[i]
		if !ok || m.Pod.String() != pod || m.Interface != "net1" || m.Network != "ns1/sriov-net" || m.Role != RoleSecondary {
			t.Errorf("interface %d: %+v, want %s net1 ns1/sriov-net secondary", i, m, pod)
		}
	}
	// The agent's own namespace is never attributed.
	got, _ = MatchPods(pods, ifaces, 10)
	if _, ok := got[1]; ok {
		t.Errorf("interface of the skipped namespace attributed: %+v", got[1])
	}
}

// By PCI address alone (an annotation without MAC and IPs) the VF is found too.
func TestMatchPodsPCIOnly(t *testing.T) {
	status := `[{"name":"ns1/sriov-net","interface":"net1",
  "device-info":{"type":"pci","version":"1.1.0","pci":{"pci-address":"0000:01:10.2"}}}]`
	ifaces := []Iface{{ID: netif.ID{Netns: 11}, Name: "net1", MAC: mustMAC(t, "02:00:00:00:00:0a"), PCIAddress: "0000:01:10.2"}}
	got, err := MatchPods([]*corev1.Pod{testPod("b", status)}, ifaces, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := got[0]; !ok || m.Pod.String() != "ns1/b" {
		t.Errorf("got %+v, want ns1/b", got)
	}
}

func TestMatchPodsMalformed(t *testing.T) {
	_, err := MatchPods([]*corev1.Pod{testPod("a", "{not json", "198.18.0.1")}, nil, 0)
	if !errors.Is(err, ErrMalformedNetworkStatus) {
		t.Errorf("error %v, want one wrapping ErrMalformedNetworkStatus", err)
	}
}
