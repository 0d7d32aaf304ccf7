package collector

import (
	"net/netip"
	"slices"
	"sync"
)

// seqKey identifies one report sequence: the reporting address, its hw_id
// and the format (v0.5 and v2.0 number independently, with different widths).
type seqKey struct {
	source netip.Addr
	hwID   uint8
	v20    bool
}

const (
	// lateWindow: a number at most this far behind the expected one is a
	// late (reordered) or repeated report. It changes nothing: resynchronising
	// on it would count the reports after it as lost a second time. (A
	// reordered report was counted lost when its gap opened; counters only
	// grow, so that stays.)
	lateWindow = 64
	// restartWindow: a reporter numbers from 0 when it starts. A jump of at
	// least restartWindow to a number below restartWindow is a reporter that
	// started again, not a loss — whichever half of the space the old
	// sequence was in (a 22-bit v2.0 sequence passes its half after 2^21
	// reports).
	restartWindow = 1 << 10
)

// seqStep is what one sequence number means for its sequence.
type seqStep uint8

const (
	stepNext  seqStep = iota // the expected number, or one after a gap
	stepLate                 // a late or repeated number: ignored
	stepReset                // the reporter started again or jumped back: resynchronise
)

// step classifies seq when want is expected, in a space of 2^bits numbers,
// and returns how many numbers were skipped (lost) for stepNext.
func step(seq, want uint32, bits uint) (seqStep, uint64) {
	mask := uint32(1)<<bits - 1
	gap := (seq - want) & mask
	switch {
	case gap == 0:
		return stepNext, 0
	case gap < 1<<(bits-1):
		if seq < restartWindow && gap >= restartWindow {
			return stepReset, 0
		}
		return stepNext, uint64(gap)
	case (want-seq)&mask <= lateWindow:
		return stepLate, 0
	}
	return stepReset, 0
}

// sourceCounts are the sequence counters of one reporting address (one
// agent), over all its sequences.
type sourceCounts struct {
	Source   netip.Addr
	SwitchID uint32 // of its latest report
	Reports  uint64 // sequence numbers received (one per datagram)
	Lost     uint64 // sequence numbers skipped
	Resets   uint64 // restarts (and backward jumps): resynchronised, not lost
}

type seqState struct {
	next   uint32
	source *sourceCounts
}

// sequences counts lost reports from gaps in each source's sequence numbers,
// per sequence and per source address. A late or repeated number changes
// nothing; a reporter that started again (or jumped back) resynchronises
// without counting. Memory is bounded: at most max sequences (and so at most
// max source addresses) are tracked.
type sequences struct {
	mu       sync.Mutex
	seqs     map[seqKey]*seqState
	sources  map[netip.Addr]*sourceCounts
	max      int
	lost     uint64
	overflow uint64 // reports whose sequence was not tracked because the map was full
}

func newSequences(max int) *sequences {
	return &sequences{seqs: make(map[seqKey]*seqState), sources: make(map[netip.Addr]*sourceCounts), max: max}
}

// observe records seq for k from a report of switchID and returns how many
// reports were lost before it.
func (s *sequences) observe(k seqKey, seq, switchID uint32) uint64 {
	bits := uint(32)
	if k.v20 {
		bits = 22
	}
	seq &= uint32(1<<bits - 1)
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seqs[k]
	if st == nil {
		if len(s.seqs) >= s.max {
			s.overflow++
			return 0
		}
		st = &seqState{source: s.sourceLocked(k.source)}
		s.seqs[k] = st
		st.source.Reports++
		st.advance(seq, bits, switchID)
		return 0
	}
	kind, lost := step(seq, st.next, bits)
	st.source.Reports++
	switch kind {
	case stepLate:
		return 0
	case stepReset:
		st.source.Resets++
	}
	s.lost += lost
	st.source.Lost += lost
	st.advance(seq, bits, switchID)
	return lost
}

// advance makes seq the latest number of the sequence.
func (st *seqState) advance(seq uint32, bits uint, switchID uint32) {
	st.next = (seq + 1) & (1<<bits - 1)
	st.source.SwitchID = switchID
}

func (s *sequences) sourceLocked(a netip.Addr) *sourceCounts {
	sc := s.sources[a]
	if sc == nil {
		sc = &sourceCounts{Source: a}
		s.sources[a] = sc
	}
	return sc
}

func (s *sequences) stats() (lost, overflow uint64, tracked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost, s.overflow, len(s.seqs)
}

// perSource returns the counters of every tracked source address, ordered by
// address.
func (s *sequences) perSource() []sourceCounts {
	s.mu.Lock()
	out := make([]sourceCounts, 0, len(s.sources))
	for _, sc := range s.sources {
		out = append(out, *sc)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b sourceCounts) int { return a.Source.Compare(b.Source) })
	return out
}
