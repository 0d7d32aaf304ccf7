package collector

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestDropReportsCountEveryDrop sends drop reports over UDP: a v2.0 drop
// report stands for the drops its packet counter carries, at each port it
// names, in the rows, the per-interface totals and the metrics; a v0.5 drop
// report (no counters) stands for one.
func TestDropReportsCountEveryDrop(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	toB := tcpFrame(ipB, netip.MustParseAddr("198.18.2.9"), 5555, 22, 0)
	fromA := tcpFrame(ipA, ipB, 443, 40000, 100)
	send(t, addrs[0],
		// 7 drops at pod-b's net1 ingress (ACL), folded into one report.
		encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 1, SwitchID: nodeA, IngressPort: 8,
			DropReason: 80, Packets: 7, Inner: toB}),
		// then 2 more of the same flow.
		encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 2, SwitchID: nodeA, IngressPort: 8,
			DropReason: 80, Packets: 2, Inner: toB}),
		// 3 drops leaving pod-a's stack through net1 (queue full): both ports.
		encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 3, SwitchID: nodeA, IngressPort: 6,
			EgressPort: 5, DropReason: 71, Packets: 3, Inner: fromA}),
		// v0.5 has no counters: one drop.
		encode(intreport.V05, intreport.Report{Kind: intreport.Drop, Seq: 1, SwitchID: nodeA, IngressPort: 6,
			EgressPort: 5, DropReason: 71, Inner: fromA}))
	eventually(t, "four reports applied", func() bool { s := c.Stats(); return s.Reports == 4 && s.Pending == 0 })

	for _, tc := range []struct {
		query         string
		drops, reason uint64
		code          string
	}{
		{"iface=net1&port=22", 9, 9, "80"},
		{"iface=net1&port=443", 4, 4, "71"},
		{"iface=%3Astack", 4, 4, "71"},
	} {
		got := flows(t, base, tc.query)
		if len(got.Flows) != 1 {
			t.Fatalf("flows?%s: %d rows, want 1", tc.query, len(got.Flows))
		}
		r := got.Flows[0]
		if r.Drops != tc.drops || r.DropReasons[tc.code] != tc.reason || r.Packets != 0 || r.Bytes != 0 {
			t.Errorf("flows?%s: drops %d reasons %v packets %d bytes %d, want %d drops (%s×%d) and no packets",
				tc.query, r.Drops, r.DropReasons, r.Packets, r.Bytes, tc.drops, tc.code, tc.reason)
		}
	}

	var sum web.SummaryResponse
	getJSON(t, base+"/api/v1/summary?iface=net1", &sum)
	drops := map[string][2]uint64{}
	for _, s := range sum.Interfaces {
		drops[s.Pod.Name] = [2]uint64{s.Ingress.Drops, s.Egress.Drops}
	}
	if drops["pod-b"] != [2]uint64{9, 0} || drops["pod-a"] != [2]uint64{0, 4} {
		t.Errorf("net1 drop totals (ingress, egress) by pod: %v, want pod-b 9/0 and pod-a 0/4", drops)
	}

	m := scrape(t, base)
	for _, want := range []string{
		`nsint_collector_interface_drops_total{direction="ingress",interface="net1",netns="pod-b",network="team-b/sriov-net",node="node-a",pod="pod-b",pod_namespace="team-b",port="8",reason="acl deny",reason_code="80"} 9`,
		`nsint_collector_interface_drops_total{direction="egress",interface="net1",netns="pod-a",network="default/macvlan-net",node="node-a",pod="pod-a",pod_namespace="default",port="5",reason="queue full",reason_code="71"} 4`,
		`nsint_collector_reports_total{kind="drop"} 4`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
