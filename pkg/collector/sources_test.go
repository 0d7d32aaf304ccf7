package collector

import (
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/intreport"
)

// sendFrom sends each payload as one datagram from src (any port) to dst.
func sendFrom(t testing.TB, src netip.Addr, dst netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatalf("dial %s from %s: %v", dst, src, err)
	}
	defer conn.Close()
	for _, p := range payloads {
		if _, err := conn.Write(p); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
	}
}

// TestReportsOnlyFromAgents sends reports over UDP from 127.0.0.1, where
// the agent API answers, and forged ones naming the same switch and ports
// from 127.0.0.2, where nothing answers: the first are shown, exactly (they
// arrived before the topology and waited for it); the forged ones are
// counted as rejected and are in no view, not held as pending, and rejected
// at once when they come again. Once an agent answers at 127.0.0.2, its
// reports are shown too.
func TestReportsOnlyFromAgents(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	genuine, forged := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	report := func(seq uint32, srcPort uint16) []byte {
		return encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: seq, SwitchID: nodeA,
			IngressPort: 5, EgressPort: 6, Packets: 3, Bytes: 300, Inner: tcpFrame(ipB, ipA, srcPort, 443, 100)})
	}
	var last Stats
	defer func() {
		if t.Failed() {
			t.Logf("last stats: %+v, agents %+v", last, c.Resolver().Agents())
		}
	}()
	sendFrom(t, genuine, addrs[0], report(1, 1111), report(2, 1111))
	sendFrom(t, forged, addrs[0], report(1, 6666), report(2, 6666), report(3, 6666))
	eventually(t, "the genuine reports applied and the forged ones rejected", func() bool {
		s := c.Stats()
		// The first genuine report waited for the topology; the second may
		// have come after it.
		if s.Rejected == 3 && s.Pending == 0 && s.PendingResolved >= 1 && s.Table.Flows == 2 {
			return true
		}
		last = s
		return false
	})
	rowsOf := func(srcPort int) []uint64 {
		var out []uint64
		for _, r := range flows(t, base, "port="+strconv.Itoa(srcPort)).Flows {
			out = append(out, r.Packets)
		}
		return out
	}
	if got := rowsOf(1111); len(got) != 2 || got[0] != 6 || got[1] != 6 {
		t.Errorf("genuine flow: packets per row %v, want [6 6] (two reports of 3 at net1 and the stack)", got)
	}
	if got := rowsOf(6666); len(got) != 0 {
		t.Errorf("forged flow shown: %v", got)
	}
	var sum web.SummaryResponse
	getJSON(t, base+"/api/v1/summary", &sum)
	var packets uint64
	for _, i := range sum.Interfaces {
		packets += i.Ingress.Packets + i.Egress.Packets
	}
	if packets != 12 || sum.RejectedReports != 3 || len(sum.Agents) != 1 || sum.Agents[0].Source != "127.0.0.1" {
		t.Errorf("summary: %d packets, %d rejected, agents %+v; want 12, 3 and 127.0.0.1 only", packets,
			sum.RejectedReports, sum.Agents)
	}
	if f := flows(t, base, ""); len(f.Agents) != 1 || f.Agents[0].Source != "127.0.0.1" {
		t.Errorf("flows' agents %+v, want 127.0.0.1 only", f.Agents)
	}

	// Rejected at once now: never queued.
	before := c.Stats()
	sendFrom(t, forged, addrs[0], report(4, 6666))
	eventually(t, "the next forged report rejected", func() bool { return c.Stats().Rejected == 4 })
	if s := c.Stats(); s.Unresolved != before.Unresolved || s.Reports != before.Reports || s.Pending != 0 {
		t.Errorf("a forged report from a rejected source was queued: unresolved %d→%d reports %d→%d pending %d",
			before.Unresolved, s.Unresolved, before.Reports, s.Reports, s.Pending)
	}
	m := scrape(t, base)
	if !strings.Contains(m, `nsint_collector_reports_rejected_total{reason="unknown_source"} 4`+"\n") {
		t.Error(`metrics lack nsint_collector_reports_rejected_total{reason="unknown_source"} 4`)
	}
	if strings.Contains(m, `agent="127.0.0.2"`) || strings.Contains(m, "6666") {
		t.Error("metrics name the forged source")
	}

	// An agent starts answering at 127.0.0.2: the refresh finds it, and its
	// reports are shown from then on.
	ln, err := net.Listen("tcp", net.JoinHostPort(forged.String(), strconv.Itoa(agent.port())))
	if err != nil {
		t.Fatalf("agent at %s: %v", forged, err)
	}
	second := httptest.NewUnstartedServer(agent.srv.Config.Handler)
	second.Listener.Close()
	second.Listener = ln
	second.Start()
	t.Cleanup(second.Close)
	eventually(t, "127.0.0.2 known as an agent", func() bool {
		return c.Resolver().Source(forged) == topology.SourceAgent
	})
	sendFrom(t, forged, addrs[0], report(5, 7777))
	eventually(t, "the report of the new agent shown", func() bool { return len(rowsOf(7777)) == 2 })
	if s := c.Stats(); s.Rejected != 4 {
		t.Errorf("rejected %d after the source became an agent, want 4", s.Rejected)
	}
}
