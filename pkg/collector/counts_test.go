package collector

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
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

// withZeroCounters encodes r (whose Packets and Bytes must be distinctive)
// and zeroes both counters in the payload, so that their DSMdBits stay set:
// the encoder itself leaves zero counters out.
func withZeroCounters(t *testing.T, r intreport.Report) []byte {
	t.Helper()
	r.Packets, r.Bytes = 0x0102030405060708, 0x1112131415161718
	p := encode(intreport.V20, r)
	for _, v := range []uint64{r.Packets, r.Bytes} {
		i := bytes.Index(p, binary.BigEndian.AppendUint64(nil, v))
		if i < 0 {
			t.Fatalf("counter %#x not in the payload", v)
		}
		clear(p[i : i+8])
	}
	var d intreport.Decoded
	if err := intreport.Decode(p, &d); err != nil {
		t.Fatal(err)
	}
	got := d.Reports[0]
	if got.DomainID != intreport.NsintDomainID || got.DSMdBits&(intreport.DSPackets|intreport.DSBytes) != intreport.DSPackets|intreport.DSBytes ||
		got.Packets != 0 || got.Bytes != 0 {
		t.Fatalf("crafted report: domain %#x bits %#x packets %d bytes %d, want both counters present and 0",
			got.DomainID, got.DSMdBits, got.Packets, got.Bytes)
	}
	return p
}

// TestEmptyReportsTouchNothing sends v2.0 reports whose counters are present
// and zero: they neither create nor touch a row or a per-interface total, and
// are counted as empty. A v2.0 report without counters still counts as the
// packet it carries.
func TestEmptyReportsTouchNothing(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	flowX := tcpFrame(ipB, ipA, 40000, 443, 1000)
	send(t, addrs[0],
		// flow X into pod-a through net1: 4 packets.
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA, IngressPort: 5,
			EgressPort: 6, Packets: 4, Bytes: 4160, Inner: flowX}))
	eventually(t, "flow X", func() bool { return len(flows(t, base, "").Flows) == 2 })
	before := map[[2]string]flowtable.Row{}
	for _, r := range flows(t, base, "").Flows {
		before[[2]string{r.Interface, r.Direction}] = r
	}

	send(t, addrs[0],
		// flow X again, nothing since: its rows must not change.
		withZeroCounters(t, intreport.Report{Kind: intreport.Flow, Seq: 2, SwitchID: nodeA, IngressPort: 5,
			EgressPort: 6, HopLatency: 900, Inner: flowX}),
		// a new flow at pod-b's net1: no row, no total for that port.
		withZeroCounters(t, intreport.Report{Kind: intreport.Flow, Seq: 3, SwitchID: nodeA, IngressPort: 8,
			Inner: tcpFrame(ipA, ipB, 1234, 80, 0)}),
		// a drop report standing for no drop, at pod-a's eth0.
		withZeroCounters(t, intreport.Report{Kind: intreport.Drop, Seq: 4, SwitchID: nodeA, IngressPort: 7,
			DropReason: 80, Inner: flowX}),
		// v2.0 without counters (the encoder leaves zero ones out): one packet.
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 5, SwitchID: nodeA, IngressPort: 7,
			EgressPort: 6, Inner: tcpFrame(ipB, ipA, 40001, 443, 1000)}))
	eventually(t, "five reports", func() bool { s := c.Stats(); return s.Reports == 5 && s.Pending == 0 })

	s := c.Stats()
	if s.EmptyReports != 3 || s.FlowReports != 4 || s.DropReports != 1 {
		t.Errorf("stats: empty %d flow %d drop %d, want 3 empty of 4 flow and 1 drop reports",
			s.EmptyReports, s.FlowReports, s.DropReports)
	}
	after := flows(t, base, "port=40000").Flows
	if len(after) != len(before) {
		t.Fatalf("flow X has %d rows, want %d: %+v", len(after), len(before), after)
	}
	for _, a := range after {
		r := before[[2]string{a.Interface, a.Direction}]
		if a.Reports != r.Reports || a.Packets != r.Packets || a.Bytes != r.Bytes || !a.LastSeen.Equal(r.LastSeen) ||
			a.LatencyMaxNs != nil {
			t.Errorf("row %s %s changed: %+v, was %+v", a.Interface, a.Direction, a, r)
		}
	}
	all := flows(t, base, "").Flows
	if len(all) != 4 {
		t.Errorf("%d rows, want 4 (flow X at net1 and the stack, the counter-less report at eth0 and the stack)", len(all))
	}
	for _, r := range all {
		if r.Packets == 0 && r.Drops == 0 {
			t.Errorf("row with neither packets nor drops: %+v", r)
		}
	}
	eth0 := flows(t, base, "iface=eth0")
	if len(eth0.Flows) != 1 || eth0.Flows[0].Packets != 1 || eth0.Flows[0].Bytes != 1040 || eth0.Flows[0].Drops != 0 {
		t.Errorf("eth0 rows: %+v, want one packet of 1040 bytes from the report without counters", eth0.Flows)
	}

	var sum web.SummaryResponse
	getJSON(t, base+"/api/v1/summary", &sum)
	for _, i := range sum.Interfaces {
		if i.PortID == 8 {
			t.Errorf("pod-b's net1 has a summary entry from an empty report: %+v", i)
		}
	}
	if m := scrape(t, base); !strings.Contains(m, "nsint_collector_empty_reports_total 3\n") || strings.Contains(m, `port="8"`) {
		t.Errorf("metrics: want nsint_collector_empty_reports_total 3 and no series of port 8")
	}
}

// TestDropCountsOnlyWhereObserved: a v2.0 drop report that says where it
// was observed adds its drops to that interface and direction only — a
// packet dropped leaving net1 is no drop of the stack it came from — while
// a flow report counts at both interfaces it names.
func TestDropCountsOnlyWhereObserved(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	fromA := tcpFrame(ipA, ipB, 443, 40000, 100)
	send(t, addrs[0],
		encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 1, SwitchID: nodeA, IngressPort: 6,
			EgressPort: 5, DropReason: 71, Packets: 3, Inner: fromA,
			ObservationPort: 5, Direction: netif.Egress}),
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 2, SwitchID: nodeA, IngressPort: 6,
			EgressPort: 5, Packets: 2, Bytes: 300, Inner: fromA,
			ObservationPort: 5, Direction: netif.Egress}))
	eventually(t, "two reports applied", func() bool { s := c.Stats(); return s.Reports == 2 && s.Pending == 0 })
	for _, tc := range []struct {
		query          string
		drops, packets uint64
	}{{"iface=net1&port=443", 3, 2}, {"iface=%3Astack", 0, 2}} {
		got := flows(t, base, tc.query)
		if len(got.Flows) != 1 || got.Flows[0].Drops != tc.drops || got.Flows[0].Packets != tc.packets {
			t.Errorf("flows?%s: %+v, want one row with %d drops and %d packets", tc.query, got.Flows, tc.drops, tc.packets)
		}
	}
}
