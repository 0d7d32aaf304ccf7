package collector

import (
	"testing"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/intreport"
)

// FuzzIngest feeds arbitrary UDP payloads through the whole input path
// (decode, inner-frame parsing, sequence tracking, resolution, pending queue,
// flow table, row rendering). Nothing may panic, every datagram is counted
// once, the table and pending queue stay within their bounds, and no row
// has neither packets nor drops.
//
// Seeds: the independent reference vectors and encoder output of every kind.
func FuzzIngest(f *testing.F) {
	for _, v := range readVectors(f, "testdata/int-vectors.txt") {
		f.Add(v)
	}
	for _, fm := range []intreport.Format{intreport.V05, intreport.V20} {
		for _, k := range []intreport.Kind{intreport.Flow, intreport.Drop} {
			f.Add(encode(fm, intreport.Report{Kind: k, Seq: 3, SwitchID: nodeA, IngressPort: 5, EgressPort: 9,
				HopLatency: 100, IngressTS: 7, Packets: 2, Bytes: 3, DropReason: 80, KernelDropReason: 2,
				Direction: 1, ObservationPort: 5, Inner: tcpFrame(ip6B, ip6A, 1, 2, 0)}))
		}
	}
	cfg := DefaultConfig()
	cfg.MaxFlows, cfg.MaxPending, cfg.MaxSources = 64, 16, 16
	c, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	// The reports come from ipA: the agent's address.
	if err := c.Resolver().Install("http://"+ipA.String()+":4048", twoPodTopology(nodeA)); err != nil {
		f.Fatal(err)
	}
	in := c.NewIngester()
	f.Fuzz(func(t *testing.T, payload []byte) {
		before := c.Stats().Datagrams
		in.Ingest(ipA, payload, 1)
		s := c.Stats()
		if s.Datagrams != before+1 {
			t.Fatalf("datagrams %d after %d", s.Datagrams, before)
		}
		if s.Table.Flows > cfg.MaxFlows || s.Pending > cfg.MaxPending || s.Sources > cfg.MaxSources {
			t.Fatalf("bounds exceeded: %+v", s)
		}
		rows, _ := c.Table().Query(flowtable.MatchAll())
		for _, r := range rows {
			if r.Interface == "" || (r.Direction != "ingress" && r.Direction != "egress") {
				t.Fatalf("bad row %+v", r)
			}
			if r.Packets == 0 && r.Drops == 0 {
				t.Fatalf("row with neither packets nor drops: %+v", r)
			}
		}
		c.Table().Summary(flowtable.MatchAll())
	})
}
