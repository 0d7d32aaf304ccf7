package collector

import (
	"fmt"
	"github.com/nsint/nsint/pkg/api"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/intreport"
)

const nodeA = 0xC6120101

var (
	ipA   = netip.MustParseAddr("198.18.1.2")
	ipB   = netip.MustParseAddr("198.18.2.3")
	ip6A  = netip.MustParseAddr("fd00:1::2")
	ip6B  = netip.MustParseAddr("fd00:2::3")
	frame = tcpFrame(ipB, ipA, 40000, 443, 1000)
)

func flows(t *testing.T, base string, query string) web.FlowsResponse {
	t.Helper()
	var resp web.FlowsResponse
	if code := getJSON(t, base+"/api/v1/flows?"+query, &resp); code != http.StatusOK {
		t.Fatalf("flows?%s: status %d", query, code)
	}
	return resp
}

// TestReceiveResolveAndQuery sends v0.5 and v2.0 reports over real UDP from
// 127.0.0.1, lets the collector resolve their ports through a fake agent at
// the source address, and checks the rows /api/v1/flows serves.
func TestReceiveResolveAndQuery(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)

	// Into pod-a through net1, delivered to its stack: v0.5, latency 700 ns.
	in := encode(intreport.V05, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA,
		IngressPort: 5, EgressPort: 6, IngressTS: 1000, EgressTS: 1700, Tracked: true, Inner: frame})
	// Reply from pod-a's stack out of net1: v2.0 with counters and hop latency.
	out := encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA,
		IngressPort: 6, EgressPort: 5, HopLatency: 1500, IngressTS: 5000, Packets: 10, Bytes: 15000,
		Tracked: true, Inner: tcpFrame(ipA, ipB, 443, 40000, 1400)})
	// A drop on pod-b's net1 before any egress port: v2.0, ACL (80).
	drop := encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 2, SwitchID: nodeA,
		IngressPort: 8, DropReason: 80, KernelDropReason: 6, IngressTS: 9000,
		Inner: tcpFrame(ipB, netip.MustParseAddr("198.18.2.9"), 5555, 22, 0)})
	send(t, addrs[0], in, out, drop)

	eventually(t, "three reports in the table", func() bool { return c.Stats().Reports == 3 && c.Stats().Pending == 0 })
	eventually(t, "five rows", func() bool { return len(flows(t, base, "").Flows) == 5 })

	got := flows(t, base, "iface=net1")
	if len(got.Flows) != 3 {
		t.Fatalf("iface=net1: %d rows, want 3: %+v", len(got.Flows), got.Flows)
	}
	for _, r := range got.Flows {
		if r.Interface != "net1" {
			t.Errorf("iface=net1 returned a row of %q", r.Interface)
		}
	}

	got = flows(t, base, "iface="+url.QueryEscape("default/pod-a:net1")+"&sort=firstSeen")
	if len(got.Flows) != 2 {
		t.Fatalf("iface=default/pod-a:net1: %d rows, want 2", len(got.Flows))
	}
	byDir := map[string]int{}
	for i, r := range got.Flows {
		byDir[r.Direction] = i
		if r.Pod == nil || r.Pod.Name != "pod-a" || r.Network != "default/macvlan-net" || r.Node != "node-a" {
			t.Errorf("row %d: pod %v network %q node %q", i, r.Pod, r.Network, r.Node)
		}
		if r.Netns.Inode != 4026532481 || r.Proto != "tcp" {
			t.Errorf("row %d: netns %v proto %q", i, r.Netns, r.Proto)
		}
	}
	ing, eg := got.Flows[byDir["ingress"]], got.Flows[byDir["egress"]]
	if ing.Direction != "ingress" || ing.Src != ipB.String() || ing.Dst != ipA.String() ||
		ing.SrcPort != 40000 || ing.DstPort != 443 {
		t.Errorf("ingress row: %+v", ing)
	}
	if ing.Packets != 1 || ing.Bytes != 1040 || ing.Reports != 1 {
		t.Errorf("ingress row (v0.5, no counters): packets %d bytes %d reports %d, want 1 1040 1", ing.Packets, ing.Bytes, ing.Reports)
	}
	if ing.LatencyMinNs == nil || *ing.LatencyMinNs != 700 || *ing.LatencyMaxNs != 700 {
		t.Errorf("ingress row latency: %v..%v, want 700", ing.LatencyMinNs, ing.LatencyMaxNs)
	}
	if eg.Direction != "egress" || eg.Src != ipA.String() || eg.SrcPort != 443 || eg.Packets != 10 || eg.Bytes != 15000 {
		t.Errorf("egress row: %+v", eg)
	}
	if eg.LatencyAvgNs == nil || *eg.LatencyAvgNs != 1500 {
		t.Errorf("egress row latency avg: %v, want 1500", eg.LatencyAvgNs)
	}

	// The other half of each report landed on the local-stack port.
	stack := flows(t, base, "iface="+url.QueryEscape(":stack"))
	if len(stack.Flows) != 2 {
		t.Fatalf("iface=:stack: %d rows, want 2", len(stack.Flows))
	}

	got = flows(t, base, "drops=true")
	if len(got.Flows) != 1 {
		t.Fatalf("drops=true: %d rows, want 1", len(got.Flows))
	}
	d := got.Flows[0]
	if d.Interface != "net1" || d.Pod.Name != "pod-b" || d.Drops != 1 || d.DropReasons["80"] != 1 ||
		d.Direction != "ingress" || d.DstPort != 22 || got.DropReasonNames["80"] == "" {
		t.Errorf("drop row: %+v names %v", d, got.DropReasonNames)
	}

	for q, want := range map[string]int{
		"iface=net": 0, "iface=NET1": 0, "pod=pod-b": 1, "namespace=team-b": 1, "pod=default/pod-a": 4,
		"network=team-b/sriov-net": 1, "node=node-a": 5, "node=node-b": 0, "proto=tcp": 5, "proto=udp": 0,
		"addr=198.18.2.9": 1, "addr=198.18.1.0/24": 4, "port=22": 1, "port=443": 4, "limit=2": 2,
		"iface=" + url.QueryEscape("team-b/pod-b:net1"): 1, "iface=" + url.QueryEscape("default/pod-b:net1"): 0,
	} {
		if n := len(flows(t, base, q).Flows); n != want {
			t.Errorf("flows?%s: %d rows, want %d", q, n, want)
		}
	}

	var sum web.SummaryResponse
	getJSON(t, base+"/api/v1/summary?iface=net1", &sum)
	if len(sum.Interfaces) != 2 {
		t.Fatalf("summary iface=net1: %d interfaces, want 2", len(sum.Interfaces))
	}
	for _, s := range sum.Interfaces {
		switch s.Pod.Name {
		case "pod-a":
			if s.Ingress.Packets != 1 || s.Egress.Packets != 10 || s.Flows != 2 {
				t.Errorf("pod-a net1 summary: %+v", s)
			}
		case "pod-b":
			if s.Ingress.Drops != 1 || s.Ingress.DropReasons["80"] != 1 {
				t.Errorf("pod-b net1 summary: %+v", s)
			}
		}
	}

	var ports web.PortsResponse
	getJSON(t, base+"/api/v1/ports", &ports)
	if len(ports.Ports) != 4 || ports.Ports[0].Node != "node-a" || ports.Ports[0].SwitchID != nodeA {
		t.Errorf("ports: %+v", ports.Ports)
	}
}

// TestBadQueryValues checks that every bad parameter is a 400 naming it.
func TestBadQueryValues(t *testing.T) {
	_, _, base := startCollector(t, testConfig(1), false)
	for _, q := range []string{"limit=abc", "limit=0", "port=70000", "proto=tcpx", "addr=1.2.3", "drops=maybe",
		"sort=size", "iface=", "iface=ns/pod", "pod=/x", "bogus=1", "iface=a&iface=b"} {
		var e web.ErrorResponse
		code := getJSON(t, base+"/api/v1/flows?"+q, &e)
		param, value, _ := strings.Cut(q, "=")
		if code != http.StatusBadRequest || e.Param != param || !strings.Contains(e.Error, param) {
			t.Errorf("flows?%s: status %d, %+v", q, code, e)
		}
		if !strings.Contains(q, "&") && e.Value != value {
			t.Errorf("flows?%s: value %q, want %q", q, e.Value, value)
		}
	}
}

// TestHandWrittenVectors feeds the independent reference payloads (not built
// by our encoder) through the UDP path, from [::1], with a static agent list
// (one of them at [::1], so that the reports come from an agent's host).
func TestHandWrittenVectors(t *testing.T) {
	// Frames 1 (v0.5 flow), 2 (v0.5 drop), 3 (v1.0), 4 (v2.0 IPv4 inner) of
	// shared/int-vectors (copied to testdata): switch/node IDs 1 and
	// 0x11111111, ports 260 → 268, TCP 198.51.100.10:40000 → 203.0.113.20:443.
	payloads := readVectors(t, "testdata/int-vectors.txt")[:4]
	ports := func(sw uint32, node string) topology.Document {
		return topology.Document{SwitchID: sw, Node: node, Generation: 1, Ports: []api.Port{
			{ID: 260, Name: "net1", Ifindex: 3, Netns: topology.Netns{Inode: 1}},
			{ID: 268, Name: "eth0", Ifindex: 2, Netns: topology.Netns{Inode: 1}},
		}}
	}
	a1, a2 := newFakeAgent(t, ports(1, "sw1")), newFakeAgent(t, ports(0x11111111, "sw2"))
	cfg := testConfig(1)
	cfg.Agents = []string{a1.serveV6(t), a2.srv.URL + topology.Path}
	c, addrs, base := startCollector(t, cfg, true)
	send(t, addrs[1], payloads...)

	eventually(t, "three reports", func() bool { return c.Stats().Reports == 3 && c.Stats().Pending == 0 })
	s := c.Stats()
	if s.Errors["unsupported_version"] != 1 || s.Datagrams != 4 {
		t.Errorf("stats: datagrams %d errors %v, want 4 and one unsupported_version", s.Datagrams, s.Errors)
	}
	got := flows(t, base, "iface=net1&sort=%2BfirstSeen")
	if len(got.Flows) != 2 {
		t.Fatalf("iface=net1: %d rows, want 2 (one per switch)", len(got.Flows))
	}
	for _, r := range got.Flows {
		if r.Src != "198.51.100.10" || r.Dst != "203.0.113.20" || r.SrcPort != 40000 || r.DstPort != 443 || r.Proto != "tcp" {
			t.Errorf("row %+v: wrong 5-tuple", r)
		}
		switch r.Node {
		case "sw1":
			if r.Reports != 2 || r.Drops != 1 || r.DropReasons["29"] != 1 {
				t.Errorf("sw1 row: %+v", r)
			}
		case "sw2":
			if r.Reports != 1 || r.Drops != 0 {
				t.Errorf("sw2 row: %+v", r)
			}
		default:
			t.Errorf("row of unknown node %q", r.Node)
		}
	}
	eth0 := flows(t, base, "iface=eth0")
	if len(eth0.Flows) != 2 || eth0.Flows[0].Direction != "egress" {
		t.Errorf("iface=eth0: %+v", eth0.Flows)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`nsint_collector_interface_reports_total{direction="ingress",interface="net1",netns="",network="",node="sw1",pod="",pod_namespace="",port="260"} 2`,
		`nsint_collector_interface_drops_total{direction="ingress",interface="net1",netns="",network="",node="sw1",pod="",pod_namespace="",port="260",reason="code 29",reason_code="29"} 1`,
		`nsint_collector_errors_total{reason="unsupported_version"} 1`,
		`nsint_collector_hop_latency_seconds_count`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		fmt.Println(string(body))
	}
}
