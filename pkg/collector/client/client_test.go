package client

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/collector/web"
)

func TestWriteTable(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 10, 0, time.UTC)
	lat := uint32(1500)
	resp := &web.FlowsResponse{Matched: 3, DropReasonNames: map[string]string{"80": "acl deny"}, Flows: []flowtable.Row{
		{PortRef: flowtable.PortRef{Interface: "net1", Node: "node-a", Pod: &topology.Pod{Namespace: "default", Name: "pod-a"}},
			Direction: "egress", Proto: "tcp", Src: "fd00::1", Dst: "fd00::2", SrcPort: 443, DstPort: 40000, Packets: 10, Bytes: 150000,
			Reports: 2, Drops: 2, DropReasons: map[string]uint64{"80": 1, "7": 1},
			LatencyMinNs: &lat, LatencyAvgNs: &lat, LatencyMaxNs: &lat, LastSeen: now.Add(-3 * time.Second)},
		{PortRef: flowtable.PortRef{Interface: ":stack", Netns: topology.Netns{Name: "ns1"}}, Direction: "ingress", Proto: "icmp", Src: "198.18.0.1", Dst: "198.18.0.2"},
	}}
	var out bytes.Buffer
	if err := WriteTable(&out, resp, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), out.String())
	}
	for _, want := range []string{"default/pod-a", "[fd00::1]:443", "[fd00::2]:40000", "146.5KiB",
		"2 (code 7×1, acl deny×1)", "1.5µs/1.5µs/1.5µs", "3s ago"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
	if !strings.Contains(lines[2], "netns:ns1") || !strings.Contains(lines[2], " 198.18.0.1 ") {
		t.Errorf("row %q", lines[2])
	}
	if !strings.Contains(lines[3], "2 of 3 rows") {
		t.Errorf("footer %q", lines[3])
	}
}

func TestParams(t *testing.T) {
	o := FlowsOptions{Iface: "default/pod-a:net1", Port: 0, Drops: true, Limit: 5}
	if got := o.Params().Encode(); got != "drops=true&iface=default%2Fpod-a%3Anet1&limit=5&port=0" {
		t.Errorf("params %s", got)
	}
}

func TestWriteLosses(t *testing.T) {
	var out bytes.Buffer
	err := WriteLosses(&out, []web.AgentReports{
		{Source: "198.18.0.1", Node: "node-a", Reports: 40, LostReports: 3},
		{Source: "198.18.0.3", Node: "node-b", Reports: 12, SequenceResets: 1}, // nothing lost: no line
		{Source: "fd00::2", Reports: 9, LostReports: 1},                        // node not known yet
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "node-a (198.18.0.1): 3 reports lost — totals may be short\n" +
		"fd00::2: 1 report lost — totals may be short\n"
	if out.String() != want {
		t.Errorf("loss lines:\n%s\nwant:\n%s", out.String(), want)
	}
	out.Reset()
	if err := WriteLosses(&out, []web.AgentReports{{Source: "198.18.0.1", Reports: 5}}); err != nil || out.Len() != 0 {
		t.Errorf("no loss: wrote %q (%v), want nothing", out.String(), err)
	}
}
