package collector

import (
	"net/netip"
	"testing"
)

func TestSequenceGaps(t *testing.T) {
	src1, src2 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	a := seqKey{source: src1, hwID: 1}
	b := seqKey{source: src1, hwID: 2} // another hw_id of the same agent
	wrap := seqKey{source: netip.MustParseAddr("198.18.0.3")}
	v2 := seqKey{source: src2, v20: true}
	v2wrap := seqKey{source: netip.MustParseAddr("198.18.0.4"), v20: true}
	young := seqKey{source: netip.MustParseAddr("198.18.0.5")}
	s := newSequences(6)
	for _, step := range []struct {
		k    seqKey
		seq  uint32
		lost uint64
	}{
		{a, 10, 0}, {a, 11, 0}, {a, 15, 3}, // 12, 13, 14 lost
		{b, 100, 0}, {b, 101, 0}, // another hw_id is another sequence
		{a, 13, 0}, {a, 15, 0}, {a, 16, 0}, // late, then repeated: nothing changes, no loss after them
		{a, 0x90000000, 0}, {a, 0x90000001, 0}, // a jump back (past the late window): resynchronise
		{a, 0, 0}, {a, 1, 0}, // v0.5 restart from the upper half of the space: not a loss
		{b, 0, 0}, {b, 2, 1}, // restart from the lower half; then 1 lost
		{wrap, 0xFFFFFFFE, 0}, {wrap, 1, 2}, // 0xFFFFFFFF and 0 lost across the wrap
		{v2, 3000000, 0}, {v2, 3000001, 0}, // v2.0 past half its 22-bit space …
		{v2, 0, 0}, {v2, 1, 0}, // … restarts: a forward jump to the start, not a loss
		{v2, 5, 3},                            // then 2, 3, 4 lost
		{v2wrap, 0x3FFFFE, 0}, {v2wrap, 1, 2}, // 22-bit wrap: 0x3FFFFF and 0 lost
		{young, 0, 0}, {young, 1, 0}, {young, 2, 0}, // restarted within the late window:
		{young, 0, 0}, {young, 1, 0}, {young, 2, 0}, {young, 3, 0}, // no loss either
		{seqKey{source: netip.MustParseAddr("198.18.0.9")}, 7, 0}, // seventh sequence: untracked
	} {
		if got := s.observe(step.k, step.seq, 9); got != step.lost {
			t.Errorf("observe(%s hw_id %d v2.0 %v, %#x) = %d lost, want %d",
				step.k.source, step.k.hwID, step.k.v20, step.seq, got, step.lost)
		}
	}
	lost, overflow, n := s.stats()
	if lost != 11 || overflow != 1 || n != 6 {
		t.Errorf("stats lost %d overflow %d sequences %d, want 11 1 6", lost, overflow, n)
	}
	per := s.perSource()
	if len(per) != 5 {
		t.Fatalf("%d sources, want 5: %+v", len(per), per)
	}
	want := map[netip.Addr]sourceCounts{
		src1: {Source: src1, SwitchID: 9, Reports: 14, Lost: 4, Resets: 3},
		src2: {Source: src2, SwitchID: 9, Reports: 5, Lost: 3, Resets: 1},
	}
	for _, p := range per {
		if w, ok := want[p.Source]; ok && p != w {
			t.Errorf("source %s: %+v, want %+v", p.Source, p, w)
		}
		if p.Source.String() == "198.18.0.5" && (p.Lost != 0 || p.Reports != 7) {
			t.Errorf("restarted young source: %+v, want 7 reports and none lost", p)
		}
	}
	if per[0].Source != src1 || per[4].Source.String() != "198.18.0.5" {
		t.Errorf("sources not ordered by address: %+v", per)
	}
}

// A source sending v0.5 and v2.0 (two sequences) is one agent; its switch ID
// is that of its latest report.
func TestSequenceSourceTotals(t *testing.T) {
	src := netip.MustParseAddr("fd00::7")
	s := newSequences(10)
	s.observe(seqKey{source: src}, 1, 5)
	s.observe(seqKey{source: src}, 4, 5)
	s.observe(seqKey{source: src, v20: true}, 1, 6)
	s.observe(seqKey{source: src, v20: true}, 3, 6)
	per := s.perSource()
	if len(per) != 1 || per[0].Reports != 4 || per[0].Lost != 3 || per[0].SwitchID != 6 {
		t.Errorf("per source %+v, want one source with 4 reports, 3 lost, switch 6", per)
	}
}
