package fakenode

import (
	"strings"
	"testing"

	"github.com/nsint/nsint/internal/netnstest"
)

func TestNodeConnectivity(t *testing.T) {
	netnstest.RequireRoot(t)
	n, err := Build(netnstest.Dir(t), netnstest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	a, err := n.AddPod("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.AddPod("b")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		from *netnstest.NS
		to   string
	}{
		{a.NS, b.EthIP.String()},    // primary, bridged
		{a.NS, b.Net1IP.String()},   // secondary, macvlan bridge mode
		{a.NS, ExtNet1IP.String()},  // secondary to the external host
		{a.NS, ExtFarIP.String()},   // primary, routed through the node
		{b.NS, a.EthIP6.String()},   // IPv6 primary
		{b.NS, ExtNet1IP6.String()}, // IPv6 secondary
	} {
		out, err := Exec(c.from.Path, "ping", "-c1", "-W2", c.to)
		if err != nil || !strings.Contains(out, "1 received") {
			t.Errorf("ping %s from %s: %v", c.to, c.from.Name, err)
		}
	}
	if err := n.RemovePod("a"); err != nil {
		t.Fatal(err)
	}
	if out, _ := Exec(n.NodeNS.Path, "ip", "-o", "link"); strings.Contains(out, "veth1") {
		t.Fatalf("veth of removed pod still on the node:\n%s", out)
	}
}
