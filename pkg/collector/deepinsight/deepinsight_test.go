package deepinsight

import (
	"github.com/nsint/nsint/pkg/api"
	"testing"

	"github.com/nsint/nsint/pkg/collector/topology"
)

func TestBuild(t *testing.T) {
	docs := []topology.Document{
		{SwitchID: 2, Node: "node-b", Ports: []api.Port{
			{ID: 3, Name: "net1", IPs: []string{"198.18.1.9/24"}, Network: "default/macvlan-net", Netns: topology.Netns{Inode: 5}},
		}},
		{SwitchID: 1, Node: "node-a", Ports: []api.Port{
			{ID: 5, Name: "net1", IPs: []string{"198.18.1.2", "fd00:1::2", "fe80::1"}, Network: "default/macvlan-net", Netns: topology.Netns{Inode: 9}},
			{ID: 6, Name: ":stack", LocalStack: true, Netns: topology.Netns{Inode: 9}},
			{ID: 7, Name: "eth0", IPs: []string{"198.18.200.4"}, Netns: topology.Netns{Inode: 9}},
		}},
	}
	got := Build(docs, Options{NodeIPs: map[string]string{"node-a": "198.18.0.1"}})
	if len(got.Switches) != 2 || got.Switches[0].Name != "device:node-a" || got.Switches[0].SwitchID != 1 ||
		got.Switches[0].IP != "198.18.0.1" || got.Switches[0].DeviceType != "legacy" {
		t.Errorf("switches: %+v", got.Switches)
	}
	wantSubnets := []Subnet{
		{IPSubnet: "198.18.1.0/24", Name: "default/macvlan-net 198.18.1.0/24", SubnetID: 1},
		{IPSubnet: "198.18.200.0/24", Name: "198.18.200.0/24", SubnetID: 2},
		{IPSubnet: "fd00:1::/64", Name: "default/macvlan-net fd00:1::/64", SubnetID: 3},
	}
	if len(got.Subnets) != len(wantSubnets) {
		t.Fatalf("subnets: %+v", got.Subnets)
	}
	for i, s := range wantSubnets {
		if got.Subnets[i] != s {
			t.Errorf("subnet %d: %+v, want %+v", i, got.Subnets[i], s)
		}
	}
	// node-a: port 5 → 2 subnets, stack port 6 → the 3 subnets of its
	// namespace, port 7 → 1; node-b: port 3 → 1 (the shared /24).
	if len(got.Links) != 7 {
		t.Fatalf("links: %+v", got.Links)
	}
	first := got.Links[0]
	if first.Node1 != "device:node-a" || first.Port1 != "5" || first.Port2 != "-1" || first.Node2 != "default/macvlan-net 198.18.1.0/24" {
		t.Errorf("first link: %+v", first)
	}
	last := got.Links[6]
	if last.Node1 != "device:node-b" || last.Port1 != "3" || last.Node2 != "default/macvlan-net 198.18.1.0/24" {
		t.Errorf("last link: %+v", last)
	}
}
