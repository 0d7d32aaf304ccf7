package collector

import (
	"net/http"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestReportLossPerAgent sends sequenced reports from two agents, one with
// a gap and then a restart, and checks the loss per agent in
// /api/v1/summary, /api/v1/stats and the metrics.
func TestReportLossPerAgent(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), true)
	flow := func(f intreport.Format, sw uint32, seq uint32) []byte {
		return encode(f, intreport.Report{Kind: intreport.Flow, Seq: seq, SwitchID: sw, IngressPort: 5, EgressPort: 6,
			Packets: 1, Bytes: 100, Inner: frame})
	}
	// node-a from 127.0.0.1: 2001, 2002, then 2006 (3 lost), then it
	// restarts: 0, 1 (not a loss). One v0.5 report of its own sequence.
	send(t, addrs[0], flow(intreport.V20, nodeA, 2001), flow(intreport.V20, nodeA, 2002), flow(intreport.V20, nodeA, 2006),
		flow(intreport.V20, nodeA, 0), flow(intreport.V20, nodeA, 1), flow(intreport.V05, nodeA, 77))
	// From ::1, where no agent answers: rejected, in no view.
	send(t, addrs[1], flow(intreport.V20, 0x0A, 40), flow(intreport.V20, 0x0A, 41))
	eventually(t, "node-a's six reports, its topology and ::1's two rejected", func() bool {
		s := c.Stats()
		_, known := c.Resolver().Node(nodeA)
		return s.Table.Flows > 0 && known && s.Rejected == 2 && s.Pending == 0
	})

	var sum web.SummaryResponse
	if code := getJSON(t, base+"/api/v1/summary", &sum); code != http.StatusOK {
		t.Fatalf("summary: status %d", code)
	}
	want := []web.AgentReports{
		{Source: "127.0.0.1", Node: "node-a", SwitchID: nodeA, Reports: 6, LostReports: 3, SequenceResets: 1},
	}
	if len(sum.Agents) != len(want) {
		t.Fatalf("summary agents %+v, want %+v", sum.Agents, want)
	}
	for i := range want {
		if sum.Agents[i] != want[i] {
			t.Errorf("summary agent %d: %+v, want %+v", i, sum.Agents[i], want[i])
		}
	}
	getJSON(t, base+"/api/v1/summary?node=node-a", &sum)
	if len(sum.Agents) != 1 || sum.Agents[0].Source != "127.0.0.1" {
		t.Errorf("summary?node=node-a agents %+v, want node-a's only", sum.Agents)
	}
	getJSON(t, base+"/api/v1/summary?node=node-b", &sum)
	if sum.Agents == nil || len(sum.Agents) != 0 {
		t.Errorf("summary?node=node-b agents %+v, want an empty list", sum.Agents)
	}
	if s := c.Stats(); s.LostReports != 3 {
		t.Errorf("stats: lost %d, want 3", s.LostReports)
	}

	m := scrape(t, base)
	for _, w := range []string{
		`nsint_collector_agent_lost_reports_total{agent="127.0.0.1"} 3`,
		`nsint_collector_agent_reports_total{agent="127.0.0.1"} 6`,
		`nsint_collector_agent_info{agent="127.0.0.1",node="node-a",switch_id="3323068673"} 1`,
		`nsint_collector_reports_rejected_total{reason="unknown_source"} 2`,
		`nsint_collector_lost_reports_total 3`,
	} {
		if !strings.Contains(m, w+"\n") {
			t.Errorf("metrics lack %s", w)
		}
	}
	if strings.Contains(m, `agent="::1"`) {
		t.Error("metrics name ::1, which is no agent")
	}
}
