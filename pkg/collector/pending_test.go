package collector

import (
	"github.com/nsint/nsint/pkg/api"
	"testing"

	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestUnknownPortIsKeptAndResolvedLater sends a report naming a port the
// agent does not list yet; it must wait in the pending queue, not be dropped,
// and land in the table once the agent's topology (new generation) has it.
func TestUnknownPortIsKeptAndResolvedLater(t *testing.T) {
	doc := twoPodTopology(nodeA)
	agent := newFakeAgent(t, doc)
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)

	r := intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA, IngressPort: 9, EgressPort: 5, Inner: frame}
	send(t, addrs[0], encode(intreport.V20, r))
	eventually(t, "the report to be pending", func() bool { s := c.Stats(); return s.Pending == 1 && s.Topology.Fetches >= 1 })
	if n := len(flows(t, base, "").Flows); n != 0 {
		t.Fatalf("%d rows before the port is known, want 0", n)
	}

	doc.Generation = 2
	doc.Ports = append(doc.Ports, api.Port{ID: 9, Name: "net2", Ifindex: 4,
		Netns: topology.Netns{Inode: 4026532481}, Pod: doc.Ports[0].Pod, Network: "default/other-net"})
	agent.set(doc)
	eventually(t, "the report to resolve", func() bool { s := c.Stats(); return s.Pending == 0 && s.PendingResolved == 1 })
	got := flows(t, base, "iface=net2")
	if len(got.Flows) != 1 || got.Flows[0].Direction != "ingress" || got.Flows[0].Network != "default/other-net" {
		t.Fatalf("net2 rows after resolution: %+v", got.Flows)
	}
	if n := len(flows(t, base, "iface=net1").Flows); n != 1 {
		t.Errorf("net1 rows after resolution: %d, want 1 (the egress half)", n)
	}
	if s := c.Stats(); s.Unresolved != 1 || s.PendingOverflow != 0 {
		t.Errorf("stats: unresolved %d overflow %d", s.Unresolved, s.PendingOverflow)
	}
}

func TestPendingQueueOverflowCountsOldest(t *testing.T) {
	q := newPendingQueue(3)
	for i := range 5 {
		q.push(&unresolved{ingress: topology.Key{Port: uint16(i + 1)}})
	}
	n, overflow, _ := q.stats()
	if n != 3 || overflow != 2 {
		t.Fatalf("queued %d overflow %d, want 3 and 2", n, overflow)
	}
	var seen []uint16
	q.drain(func(u *unresolved) verdict {
		seen = append(seen, u.ingress.Port)
		if u.ingress.Port == 4 {
			return applied
		}
		return keep
	})
	if len(seen) != 3 || seen[0] != 3 || seen[2] != 5 {
		t.Errorf("drain order %v, want [3 4 5] (oldest dropped)", seen)
	}
	var left []uint16
	q.drain(func(u *unresolved) verdict {
		left = append(left, u.ingress.Port)
		if u.ingress.Port == 3 {
			return rejected
		}
		return keep
	})
	if len(left) != 2 || left[0] != 3 || left[1] != 5 {
		t.Errorf("kept %v, want [3 5]", left)
	}
	left = nil
	q.drain(func(u *unresolved) verdict { left = append(left, u.ingress.Port); return keep })
	if n, _, resolved := q.stats(); len(left) != 1 || left[0] != 5 || n != 1 || resolved != 1 {
		t.Errorf("after a rejection kept %v (queued %d, resolved %d), want [5] (1, 1)", left, n, resolved)
	}
}

// TestBadInputIsCountedByReason sends malformed and unsupported datagrams
// over UDP; each is counted under its reason and the collector keeps working.
func TestBadInputIsCountedByReason(t *testing.T) {
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	agent.serveV6(t)
	c, addrs, _ := startCollector(t, testConfig(agent.port()), true)
	good := encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA,
		IngressPort: 5, EgressPort: 6, Inner: frame})
	v05 := encode(intreport.V05, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA,
		IngressPort: 5, EgressPort: 6, Inner: frame})
	badNProto := append([]byte(nil), v05...)
	badNProto[0] = 0x07
	bad := [][]byte{
		{},                          // empty: truncated
		{0x00, 0x20},                // v0.5 fixed header cut short
		{0x10, 0, 0, 0},             // v1.0
		{0xF0, 1, 2, 3},             // version 15
		good[:9],                    // v2.0 individual header cut
		badNProto,                   // v0.5 NProto 7
		make([]byte, 70000)[:65507], // huge all-zero v0.5 NProto 0
	}
	for _, dst := range addrs {
		send(t, dst, bad...)
		send(t, dst, good)
	}
	eventually(t, "all datagrams", func() bool { return c.Stats().Datagrams == uint64(2*(len(bad)+1)) })
	s := c.Stats()
	if s.Errors["truncated"] != 6 || s.Errors["unsupported_version"] != 4 || s.Errors["malformed"] != 2 {
		t.Errorf("errors by reason: %v", s.Errors)
	}
	if s.Reports != 4 { // two good ones and two NProto-0 zero frames
		t.Errorf("reports %d, want 4", s.Reports)
	}
	if s.NoPorts != 2 {
		t.Errorf("reports without ports %d, want 2", s.NoPorts)
	}
	eventually(t, "the good report from each address", func() bool {
		rows, _ := c.Table().Query(flowtableAll())
		return len(rows) == 2 && rows[0].Reports+rows[1].Reports == 4
	})
}
