package collector

import (
	"net/netip"
	"sync"
)

// seqKey identifies one report sequence: the reporting address, its hw_id
// and the format (v0.5 and v2.0 number independently, with different widths).
type seqKey struct {
	source netip.Addr
	hwID   uint8
	v20    bool
}

// sequences counts lost reports from gaps in each source's sequence numbers.
// A number behind the expected one (reordering, or a restarted reporter)
// resynchronises without counting; so does a jump of half the number space
// or more.
type sequences struct {
	mu       sync.Mutex
	next     map[seqKey]uint32
	max      int
	lost     uint64
	overflow uint64 // sources not tracked because the map was full
}

func newSequences(max int) *sequences {
	return &sequences{next: make(map[seqKey]uint32), max: max}
}

// observe records seq for k and returns how many reports were lost before it.
func (s *sequences) observe(k seqKey, seq uint32) uint64 {
	bits := uint(32)
	if k.v20 {
		bits = 22
	}
	mask := uint32(1<<bits - 1)
	seq &= mask
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.next[k]
	if !ok {
		if len(s.next) >= s.max {
			s.overflow++
			return 0
		}
		s.next[k] = (seq + 1) & mask
		return 0
	}
	s.next[k] = (seq + 1) & mask
	gap := (seq - want) & mask
	if gap == 0 || gap >= 1<<(bits-1) {
		return 0
	}
	s.lost += uint64(gap)
	return uint64(gap)
}

func (s *sequences) stats() (lost, overflow uint64, sources int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost, s.overflow, len(s.next)
}
