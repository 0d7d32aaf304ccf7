package flowtable

import (
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

func takeAll(tb *Table, max int) []Delta {
	var out []Delta
	tb.TakeDeltas(max, func(d *Delta) {
		c := *d
		out = append(out, c)
	})
	return out
}

// A row's deltas add up to its totals: each take hands over what was added
// since the previous one, and nothing for a row that did not change.
func TestTakeDeltasHandsOverIncrements(t *testing.T) {
	tb := New(10)
	in, out := port(1, "net1"), port(2, "eth0")
	tb.Add(obs(1, 1000), in, out)
	tb.Add(obs(2, 1000), in, out)
	d := takeAll(tb, 0)
	if len(d) != 2 || d[0].Packets != 2 || d[0].Bytes != 200 || d[0].Reports != 2 || d[0].FirstSeenNs != 1 || d[0].LastSeenNs != 2 {
		t.Fatalf("first take: %+v", d)
	}
	if d := takeAll(tb, 0); len(d) != 0 {
		t.Fatalf("take without changes: %+v", d)
	}
	drop := obs(3, 1000)
	drop.Packets, drop.Bytes, drop.Drops, drop.DropReason = 0, 0, 4, 80
	tb.Add(drop, in, nil)
	drop.Drops, drop.DropReason = 1, 71
	tb.Add(drop, in, nil)
	d = takeAll(tb, 0)
	if len(d) != 1 || d[0].Interface != "net1" || d[0].Direction != netif.Ingress || d[0].Packets != 0 || d[0].Drops != 5 ||
		d[0].DropReasons[80] != 4 || d[0].DropReasons[71] != 1 || d[0].FirstSeenNs != 1 || d[0].LastSeenNs != 3 {
		t.Fatalf("take after drops: %+v", d)
	}
	drop.TimeNs = 4
	tb.Add(drop, in, nil)
	d = takeAll(tb, 0)
	if len(d) != 1 || d[0].Drops != 1 || len(d[0].DropReasons) != 1 || d[0].DropReasons[71] != 1 || d[0].Src.String() != "198.18.0.1" ||
		d[0].SrcPort != 1000 || d[0].DstPort != 80 || d[0].Proto != 6 {
		t.Fatalf("take after one more drop: %+v", d)
	}
	if s := tb.DeltaStats(); s.Changed != 0 || s.Lost != 0 {
		t.Errorf("delta stats %+v", s)
	}
}

// A limited take leaves the other changed rows for the next one, even when
// rows taken since are more recent than they are.
func TestTakeDeltasLimited(t *testing.T) {
	tb := New(10)
	p := port(1, "net1")
	for i := range 5 {
		tb.Add(obs(int64(i+1), uint16(1000+i)), p, nil)
	}
	if d := takeAll(tb, 2); len(d) != 2 || d[0].SrcPort != 1004 || d[1].SrcPort != 1003 {
		t.Fatalf("take 2: %+v", d)
	}
	tb.Add(obs(9, 1004), p, nil) // the most recent row again
	if s := tb.DeltaStats(); s.Changed != 4 {
		t.Errorf("%d rows changed, want 4", s.Changed)
	}
	got := map[uint16]uint64{}
	for _, d := range takeAll(tb, 0) {
		got[d.SrcPort] = d.Packets
	}
	if len(got) != 4 || got[1004] != 1 || got[1000] != 1 || got[1001] != 1 || got[1002] != 1 {
		t.Errorf("rest: %v", got)
	}
}

// An evicted row's untaken increments are kept for the next take, as many
// as TrackDeltas says; beyond, they are counted lost.
func TestTakeDeltasKeepsEvictedRows(t *testing.T) {
	tb := New(2)
	tb.TrackDeltas(1)
	p := port(1, "net1")
	tb.Add(obs(1, 1000), p, nil)
	tb.Add(obs(2, 1001), p, nil)
	tb.Add(obs(3, 1002), p, nil) // evicts 1000: kept
	tb.Add(obs(4, 1003), p, nil) // evicts 1001: lost
	s := tb.DeltaStats()
	if s.Changed != 3 || s.Lost != 1 || s.LostPackets != 1 || s.LostBytes != 100 {
		t.Errorf("delta stats %+v, want 3 changed (one kept) and one lost of 1 packet", s)
	}
	d := takeAll(tb, 0)
	if len(d) != 3 || d[0].SrcPort != 1000 || d[0].Packets != 1 || d[1].SrcPort != 1003 || d[2].SrcPort != 1002 {
		t.Fatalf("take: %+v", d)
	}
	// A row taken and then evicted has nothing to keep.
	tb.Add(obs(5, 1004), p, nil)
	if s := tb.DeltaStats(); s.Changed != 1 || s.Lost != 1 {
		t.Errorf("after evicting a taken row: %+v", s)
	}
}
