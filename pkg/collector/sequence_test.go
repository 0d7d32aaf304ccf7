package collector

import (
	"net/netip"
	"testing"
	"time"
)

// testClock is a settable clock for sequences.
type testClock struct{ t time.Time }

func (c *testClock) now() time.Time { return c.t }

func TestSequenceGaps(t *testing.T) {
	src1, src2 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	a := seqKey{source: src1, hwID: 1}
	b := seqKey{source: src1, hwID: 2} // another hw_id of the same agent
	wrap := seqKey{source: netip.MustParseAddr("198.18.0.3")}
	v2 := seqKey{source: src2, v20: true}
	v2wrap := seqKey{source: netip.MustParseAddr("198.18.0.4"), v20: true}
	young := seqKey{source: netip.MustParseAddr("198.18.0.5")}
	s := newSequences(6)
	clock := &testClock{t: time.Unix(1e9, 0)}
	s.now = clock.now
	for _, step := range []struct {
		k    seqKey
		seq  uint32
		lost uint64
	}{
		{a, 10, 0}, {a, 11, 0}, {a, 15, 0}, // 12, 13, 14 open
		{b, 100, 0}, {b, 101, 0}, // another hw_id is another sequence
		{a, 13, 0}, {a, 15, 0}, {a, 16, 0}, // 13 late: its gap filled; 15 repeated: nothing changes
		{a, 0x90000000, 2}, {a, 0x90000001, 0}, // a jump back (past the late window): resynchronise, 12 and 14 lost
		{a, 0, 0}, {a, 1, 0}, // v0.5 restart from the upper half of the space: not a loss
		{b, 0, 0}, {b, 2, 0}, // restart from the lower half; then 1 open
		{wrap, 0xFFFFFFFE, 0}, {wrap, 1, 0}, // 0xFFFFFFFF and 0 open across the wrap
		{v2, 3000000, 0}, {v2, 3000001, 0}, // v2.0 past half its 22-bit space …
		{v2, 0, 0}, {v2, 1, 0}, // … restarts: a forward jump to the start, not a loss
		{v2, 5, 0},                            // then 2, 3, 4 open
		{v2wrap, 0x3FFFFE, 0}, {v2wrap, 1, 0}, // 22-bit wrap: 0x3FFFFF and 0 open
		{young, 0, 0}, {young, 1, 0}, {young, 2, 0}, // restarted within the late window:
		{young, 0, 0}, {young, 1, 0}, {young, 2, 0}, {young, 3, 0}, // no loss either
		{seqKey{source: netip.MustParseAddr("198.18.0.9")}, 7, 0}, // seventh sequence: untracked
	} {
		if got := s.observe(step.k, step.seq, 9); got != step.lost {
			t.Errorf("observe(%s hw_id %d v2.0 %v, %#x) = %d lost, want %d",
				step.k.source, step.k.hwID, step.k.v20, step.seq, got, step.lost)
		}
	}
	if lost, _, _ := s.stats(); lost != 2 {
		t.Errorf("lost %d with gaps still open, want 2", lost)
	}
	// The open gaps are lost once they waited lateTimeout.
	clock.t = clock.t.Add(lateTimeout)
	lost, overflow, n := s.stats()
	if lost != 10 || overflow != 1 || n != 6 {
		t.Errorf("stats lost %d overflow %d sequences %d, want 10 1 6", lost, overflow, n)
	}
	per := s.perSource()
	if len(per) != 5 {
		t.Fatalf("%d sources, want 5: %+v", len(per), per)
	}
	want := map[netip.Addr]sourceCounts{
		src1: {Source: src1, SwitchID: 9, Reports: 14, Lost: 3, Resets: 3},
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

// Reordered reports are not lost: a number arriving within the late window
// fills its gap. A gap is lost when later numbers push it out of the window
// or when it stays open lateTimeout; a jump past the window loses what falls
// outside it at once.
func TestSequenceReorder(t *testing.T) {
	k := seqKey{source: netip.MustParseAddr("198.18.0.1"), v20: true}
	clock := &testClock{t: time.Unix(1e9, 0)}
	observe := func(s *sequences, seqs ...uint32) (lost uint64) {
		for _, q := range seqs {
			lost += s.observe(k, q, 1)
		}
		return lost
	}
	newSeq := func() *sequences {
		s := newSequences(4)
		s.now = clock.now
		return s
	}
	lostOf := func(s *sequences) uint64 {
		lost, _, _ := s.stats()
		return lost
	}

	// Pairs swapped on the way: nothing lost, even after the timeout.
	s := newSeq()
	observe(s, 0, 2, 1, 4, 3, 6, 5, 7)
	clock.t = clock.t.Add(2 * lateTimeout)
	if got := lostOf(s); got != 0 {
		t.Errorf("swapped pairs: %d lost, want 0", got)
	}

	// 1 never comes, 2 comes lateWindow-1 numbers late: 1 is lost when
	// lateWindow+1 pushes it out of the window, 2 is not.
	s = newSeq()
	observe(s, 0)
	for q := uint32(3); q <= lateWindow; q++ {
		observe(s, q)
	}
	if n := observe(s, 2); n != 0 {
		t.Errorf("2, %d behind: %d lost, want 0", lateWindow-2, n)
	}
	if n := observe(s, lateWindow+1); n != 1 {
		t.Errorf("%d pushes 1 out of the window: %d lost, want 1", lateWindow+1, n)
	}
	if n := observe(s, 1); n != 0 || lostOf(s) != 1 {
		t.Errorf("1 after it was counted: %d lost now, %d in all; want 0 and 1", n, lostOf(s))
	}

	// A jump of lateWindow+36: the 37 numbers beyond the window (1 to 37)
	// are lost at once, the other lateWindow-1 once they waited
	// lateTimeout, less the one that came.
	s = newSeq()
	start := clock.t
	observe(s, 0)
	if n := observe(s, lateWindow+37); n != 37 {
		t.Errorf("jump of %d: %d lost at once, want 37", lateWindow+36, n)
	}
	observe(s, 90)
	clock.t = start.Add(lateTimeout - time.Nanosecond)
	if got := lostOf(s); got != 37 {
		t.Errorf("before the timeout: %d lost, want 37", got)
	}
	clock.t = start.Add(lateTimeout)
	if got := lostOf(s); got != 37+lateWindow-2 {
		t.Errorf("after the timeout: %d lost, want %d", got, 37+lateWindow-2)
	}
	if per := s.perSource(); len(per) != 1 || per[0].Lost != 37+lateWindow-2 || per[0].Reports != 3 {
		t.Errorf("per source %+v, want 3 reports, %d lost", per, 37+lateWindow-2)
	}
}

// Batches overtaken on the way (the sender moved to another CPU while the
// old one's backlog stalled): three batches of 64 arrive before the one
// sent ahead of them, and nothing is lost.
func TestSequenceBatchesOvertaken(t *testing.T) {
	k := seqKey{source: netip.MustParseAddr("198.18.0.1"), v20: true}
	clock := &testClock{t: time.Unix(1e9, 0)}
	s := newSequences(4)
	s.now = clock.now
	var lost uint64
	send := func(from, to uint32) {
		for q := from; q < to; q++ {
			lost += s.observe(k, q, 1)
		}
	}
	send(0, 64)    // batch 0
	send(128, 320) // batches 2, 3, 4 overtake batch 1
	send(64, 128)  // batch 1, late
	send(320, 384)
	clock.t = clock.t.Add(2 * lateTimeout)
	total, _, _ := s.stats()
	if lost != 0 || total != 0 {
		t.Errorf("batches overtaken: %d lost on the way, %d in all; want 0", lost, total)
	}
	if per := s.perSource(); len(per) != 1 || per[0].Reports != 384 || per[0].Resets != 0 {
		t.Errorf("per source %+v, want 384 reports, no reset", per)
	}
}

// A source sending v0.5 and v2.0 (two sequences) is one agent; its switch ID
// is that of its latest report.
func TestSequenceSourceTotals(t *testing.T) {
	src := netip.MustParseAddr("fd00::7")
	s := newSequences(10)
	clock := &testClock{t: time.Unix(1e9, 0)}
	s.now = clock.now
	s.observe(seqKey{source: src}, 1, 5)
	s.observe(seqKey{source: src}, 4, 5)
	s.observe(seqKey{source: src, v20: true}, 1, 6)
	s.observe(seqKey{source: src, v20: true}, 3, 6)
	clock.t = clock.t.Add(lateTimeout)
	per := s.perSource()
	if len(per) != 1 || per[0].Reports != 4 || per[0].Lost != 3 || per[0].SwitchID != 6 {
		t.Errorf("per source %+v, want one source with 4 reports, 3 lost, switch 6", per)
	}
}
