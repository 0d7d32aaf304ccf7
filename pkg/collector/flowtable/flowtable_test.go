package flowtable

import (
	"net/netip"
	"testing"

	"github.com/nsint/nsint/pkg/api"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/topology"
)

func port(id uint16, name string) *topology.Port {
	return &topology.Port{Port: api.Port{ID: id, Name: name}, SwitchID: 1, Node: "n"}
}

func obs(t int64, srcPort uint16) *Observation {
	return &Observation{TimeNs: t, Packets: 1, Bytes: 100, Tuple: flowkey.Tuple{
		Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"),
		SrcPort: srcPort, DstPort: 80, Proto: flowkey.ProtoTCP, EtherType: flowkey.EtherTypeIPv4}}
}

func TestEvictsLeastRecentlySeen(t *testing.T) {
	tb := New(3)
	p := port(1, "net1")
	for i := range 3 {
		tb.Add(obs(int64(i+1), uint16(1000+i)), p, nil)
	}
	tb.Add(obs(10, 1000), p, nil) // flow 1000 is now the most recent
	tb.Add(obs(11, 2000), p, nil) // evicts 1001, the least recently seen
	rows, _ := tb.Query(MatchAll())
	got := map[uint16]bool{}
	for _, r := range rows {
		got[r.SrcPort] = true
	}
	if len(rows) != 3 || !got[1000] || !got[1002] || !got[2000] || got[1001] {
		t.Fatalf("rows after eviction: %v", got)
	}
	if s := tb.Stats(); s.Evictions != 1 || s.Flows != 3 {
		t.Errorf("stats %+v, want 1 eviction and 3 flows", s)
	}
	// A flow evicted and seen again starts afresh.
	tb.Add(obs(12, 1001), p, nil)
	rows, _ = tb.Query(Filter{Proto: -1, Port: 1001})
	if len(rows) != 1 || rows[0].Reports != 1 || rows[0].FirstSeen.UnixNano() != 12 {
		t.Errorf("re-added flow: %+v", rows)
	}
}

func TestTwoRowsPerReportAndCounters(t *testing.T) {
	tb := New(10)
	in, out := port(1, "net1"), port(2, "eth0")
	o := obs(5, 1000)
	o.HasLatency, o.LatencyNs = true, 300
	tb.Add(o, in, out)
	o2 := obs(7, 1000)
	o2.HasLatency, o2.LatencyNs = true, 100
	tb.Add(o2, in, out)
	// A drop report standing for 5 drops (the agent folds a flow's drops
	// within its rate limit into one report), then one of another reason.
	d := obs(9, 1000)
	d.Packets, d.Bytes, d.Drops, d.DropReason = 0, 0, 5, 80
	tb.Add(d, in, nil)
	d.Drops, d.DropReason = 1, 71
	tb.Add(d, in, nil)

	rows, matched := tb.Query(Filter{Proto: -1, Port: -1, Interface: "net1"})
	if matched != 1 || len(rows) != 1 {
		t.Fatalf("net1 rows: %d", len(rows))
	}
	r := rows[0]
	if r.Src != "198.18.0.1" || r.Dst != "198.18.0.2" || r.Proto != "tcp" || r.SrcPort != 1000 || r.DstPort != 80 {
		t.Errorf("net1 row 5-tuple: %s %s:%d → %s:%d", r.Proto, r.Src, r.SrcPort, r.Dst, r.DstPort)
	}
	if r.Direction != "ingress" || r.Reports != 4 || r.Packets != 2 || r.Bytes != 200 || r.Drops != 6 ||
		r.DropReasons["80"] != 5 || r.DropReasons["71"] != 1 || *r.LatencyMinNs != 100 || *r.LatencyAvgNs != 200 || *r.LatencyMaxNs != 300 ||
		r.FirstSeen.UnixNano() != 5 || r.LastSeen.UnixNano() != 9 {
		t.Errorf("net1 row: %+v", r)
	}
	rows, _ = tb.Query(Filter{Proto: -1, Port: -1, Interface: "eth0"})
	if len(rows) != 1 || rows[0].Direction != "egress" || rows[0].Reports != 2 || rows[0].Drops != 0 {
		t.Errorf("eth0 rows: %+v", rows)
	}
	sum := tb.Summary(MatchAll())
	if len(sum) != 2 || sum[0].Interface != "eth0" || sum[0].Egress.Packets != 2 || sum[1].Ingress.Drops != 6 ||
		sum[1].Ingress.DropReasons["80"] != 5 || sum[1].Ingress.Packets != 2 || sum[1].Flows != 1 {
		t.Errorf("summary: %+v", sum)
	}
}

func TestRelabelAndForgetPorts(t *testing.T) {
	tb := New(10)
	old := port(1, "net1")
	tb.Add(obs(1, 1000), old, port(2, "eth0"))
	renamed := port(1, "net9")
	tb.Relabel(func(k topology.Key) *topology.Port {
		if k.Port == 1 {
			return renamed
		}
		return nil
	})
	if rows, _ := tb.Query(Filter{Proto: -1, Port: -1, Interface: "net9"}); len(rows) != 1 {
		t.Errorf("after relabel: %d net9 rows", len(rows))
	}
	tb.ForgetPorts(func(k topology.Key) bool { return k.Port == 1 })
	n := 0
	tb.EachPortTotals(func(pt PortTotals) { n++ })
	if n != 1 {
		t.Errorf("%d port totals after forgetting port 2, want 1", n)
	}
}

func TestSortAndLimit(t *testing.T) {
	tb := New(10)
	p := port(1, "net1")
	for i := range 5 {
		o := obs(int64(i), uint16(1000+i))
		o.Packets = uint64(10 - i)
		tb.Add(o, p, nil)
	}
	f := MatchAll()
	f.Sort, f.Limit = SortPackets, 2
	rows, matched := tb.Query(f)
	if matched != 5 || len(rows) != 2 || rows[0].Packets != 10 || rows[1].Packets != 9 {
		t.Errorf("packets desc limit 2: %d %+v", matched, rows)
	}
	f.Ascending = true
	rows, _ = tb.Query(f)
	if rows[0].Packets != 6 {
		t.Errorf("packets asc: first %d", rows[0].Packets)
	}
	if _, _, ok := ParseSort("-bytes"); !ok {
		t.Error("ParseSort(-bytes) failed")
	}
	if _, _, ok := ParseSort("size"); ok {
		t.Error("ParseSort(size) accepted")
	}
}

func BenchmarkAddTwoRows(b *testing.B) {
	tb := New(100000)
	in, out := port(1, "net1"), port(2, "eth0")
	o := obs(1, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		o.Tuple.SrcPort = uint16(i & 0x3FFF)
		o.TimeNs = int64(i)
		tb.Add(o, in, out)
		i++
	}
}

func TestIPv6AndNonIPRows(t *testing.T) {
	tb := New(10)
	p := port(1, "net1")
	o := obs(1, 5)
	o.Tuple.Src, o.Tuple.Dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	o.Tuple.EtherType = flowkey.EtherTypeIPv6
	tb.Add(o, p, nil)
	tb.Add(&Observation{TimeNs: 2, Packets: 1, Bytes: 28, Tuple: flowkey.Tuple{EtherType: 0x0806}}, p, nil)
	f := MatchAll()
	f.Sort, f.Ascending = SortLastSeen, true
	rows, _ := tb.Query(f)
	if len(rows) != 2 || rows[0].Src != "fd00::1" || rows[0].Dst != "fd00::2" || rows[0].EtherType != "0x86dd" {
		t.Fatalf("ipv6 row: %+v", rows)
	}
	if rows[1].Src != "" || rows[1].Proto != "" || rows[1].EtherType != "0x806" {
		t.Errorf("arp row: %+v", rows[1])
	}
	f.Addr = netip.MustParsePrefix("fd00::/64")
	if rows, _ := tb.Query(f); len(rows) != 1 {
		t.Errorf("addr=fd00::/64: %d rows", len(rows))
	}
}

// An observation with neither packets nor drops creates no row and no
// per-interface total, and leaves an existing row as it was.
func TestEmptyObservationChangesNothing(t *testing.T) {
	tb := New(10)
	in, out := port(1, "net1"), port(2, "eth0")
	empty := obs(3, 1000)
	empty.Packets, empty.Bytes, empty.HasLatency, empty.LatencyNs = 0, 0, true, 50
	tb.Add(empty, in, out)
	empty.DropReason = 80 // a drop report standing for no drop
	tb.Add(empty, in, nil)
	if s := tb.Stats(); s.Flows != 0 {
		t.Errorf("%d rows from empty observations, want 0", s.Flows)
	}
	totals := 0
	tb.EachPortTotals(func(PortTotals) { totals++ })
	if totals != 0 || len(tb.Summary(MatchAll())) != 0 {
		t.Errorf("%d per-interface totals from empty observations, want 0", totals)
	}

	tb.Add(obs(1, 1000), in, nil)
	empty.TimeNs = 9
	tb.Add(empty, in, out)
	rows, _ := tb.Query(MatchAll())
	if len(rows) != 1 || rows[0].Reports != 1 || rows[0].LastSeen.UnixNano() != 1 || rows[0].LatencyMaxNs != nil {
		t.Errorf("rows after an empty observation: %+v", rows)
	}
}

// TestBytesAloneCount: a report of bytes without packets (the agent's
// bytes of packets an earlier report carried) adds its bytes to the row.
func TestBytesAloneCount(t *testing.T) {
	tb := New(10)
	in, out := port(1, "net1"), port(2, "eth0")
	tb.Add(obs(1, 1000), in, out)
	late := obs(2, 1000)
	late.Packets, late.Bytes = 0, 66
	tb.Add(late, in, out)
	rows, _ := tb.Query(Filter{Proto: -1, Port: -1, Interface: "net1"})
	if len(rows) != 1 || rows[0].Packets != 1 || rows[0].Bytes != 166 || rows[0].Reports != 2 {
		t.Errorf("net1 rows %+v: want one of 1 packet, 166 bytes, 2 reports", rows)
	}
}
