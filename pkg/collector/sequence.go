package collector

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// seqKey identifies one report sequence: the reporting address, its switch
// ID, its hw_id and the format (v0.5 and v2.0 number independently, with
// different widths). The switch ID keeps apart agents that reach the
// collector from one address (behind NAT, or simulated on one host).
type seqKey struct {
	source   netip.Addr
	switchID uint32
	hwID     uint8
	v20      bool
}

// agentKey is one agent as a collector replica serves it: the address its
// reports come from and its switch ID.
type agentKey struct {
	source   netip.Addr
	switchID uint32
}

// agentSeen is what a collector received from one agent (agentKey).
type agentSeen struct {
	Source   netip.Addr
	SwitchID uint32
	Reports  uint64 // sequence numbers received (one per datagram)
	First    time.Time
	Last     time.Time
}

const (
	// lateWindow: a number at most this far behind the expected one is a
	// late (reordered) or repeated report. A late report fills its gap: a
	// report reordered on the way is not lost. Resynchronising on it instead
	// would count the reports after it as lost a second time. Loopback and
	// multi-queue paths reorder whole batches: a sender that moves to another
	// CPU between two sendmmsg calls leaves the first batch in the old CPU's
	// backlog (up to netdev_max_backlog, 1 000 packets), and when that CPU
	// stalls (a preempted vCPU) the next batches overtake it. The window
	// covers a full backlog.
	lateWindow = 1024
	// repeatWindow: a number at most this far behind the expected one that
	// was not missing is a repeated report; further behind and below
	// restartWindow, a reporter that started again.
	repeatWindow = 64
	// lateTimeout: a gap still open this long after it opened is counted
	// lost, as is one pushed out of the late window by later numbers.
	lateTimeout = time.Second
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
	stepLate                 // a late or repeated number
	stepReset                // the reporter started again or jumped back: resynchronise
)

// step classifies seq when want is expected, in a space of 2^bits numbers,
// and returns how many numbers were skipped for stepNext, or how far behind
// want seq is (1: the number just before it) for stepLate.
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
		return stepLate, uint64((want - seq) & mask)
	}
	return stepReset, 0
}

// sourceCounts are the sequence counters of one reporting address (one
// agent), over all its sequences.
type sourceCounts struct {
	Source   netip.Addr
	SwitchID uint32 // of its latest report
	Reports  uint64 // sequence numbers received (one per datagram)
	Lost     uint64 // sequence numbers skipped and not received late
	Resets   uint64 // restarts (and backward jumps): resynchronised, not lost
}

type seqState struct {
	next uint32
	// gaps holds the numbers skipped that have not arrived yet;
	// gapsSince is when the oldest of them opened.
	gaps      gapSet
	gapsSince time.Time
	source    *sourceCounts
	agent     *agentSeen
}

// sequences counts lost reports from gaps in each source's sequence numbers,
// per sequence and per source address. A gap is lost once it leaves the late
// window or stays open lateTimeout; a late number fills its gap, a repeated
// one changes nothing; a reporter that started again (or jumped back)
// resynchronises. Counters only grow. Memory is bounded: at most max
// sequences (and so at most max source addresses) are tracked.
type sequences struct {
	mu       sync.Mutex
	seqs     map[seqKey]*seqState
	sources  map[netip.Addr]*sourceCounts
	agents   map[agentKey]*agentSeen
	max      int
	lost     uint64
	overflow uint64 // reports whose sequence was not tracked because the map was full
	now      func() time.Time
}

func newSequences(max int) *sequences {
	return &sequences{seqs: make(map[seqKey]*seqState), sources: make(map[netip.Addr]*sourceCounts),
		agents: make(map[agentKey]*agentSeen), max: max, now: time.Now}
}

// observe records seq for k from a report of switchID and returns how many
// reports of k were counted lost by it.
func (s *sequences) observe(k seqKey, seq, switchID uint32) uint64 {
	width := uint(32)
	if k.v20 {
		width = 22
	}
	seq &= uint32(1<<width - 1)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.seqs[k]
	if st == nil {
		if len(s.seqs) >= s.max {
			s.overflow++
			return 0
		}
		st = &seqState{source: s.sourceLocked(k.source), agent: s.agentLocked(k, now)}
		s.seqs[k] = st
		st.source.Reports++
		st.agent.Reports++
		st.agent.Last = now
		st.advance(seq, width, switchID)
		return 0
	}
	kind, n := step(seq, st.next, width)
	st.source.Reports++
	st.agent.Reports++
	st.agent.Last = now
	var lost uint64
	switch kind {
	case stepLate:
		// Number next-1-i is gap i: a late one fills its gap. A number
		// that was not missing is repeated, unless it lies far behind and
		// near the start: a reporter that started again after fewer
		// numbers than the window holds.
		if st.gaps.fill(n-1) || n <= repeatWindow || seq >= restartWindow {
			break
		}
		fallthrough
	case stepReset:
		st.source.Resets++
		lost = st.gaps.clearAll()
		st.advance(seq, width, switchID)
	case stepNext:
		lost = st.shift(n, now)
		st.advance(seq, width, switchID)
	}
	lost += st.expire(now)
	s.count(st, lost)
	return lost
}

// shift moves the window past skipped numbers and the one received after
// them; it returns how many open gaps left the window (lost).
func (st *seqState) shift(skipped uint64, now time.Time) uint64 {
	lost := st.gaps.shift(skipped + 1)
	if skipped > lateWindow-1 {
		lost += skipped - (lateWindow - 1)
		skipped = lateWindow - 1
	}
	if skipped > 0 {
		if st.gaps.empty() {
			st.gapsSince = now
		}
		// Gaps 1..skipped: the received number is gap 0.
		st.gaps.openRange(1, skipped)
	}
	return lost
}

// expire counts the open gaps lost once the oldest has waited lateTimeout.
func (st *seqState) expire(now time.Time) uint64 {
	if st.gaps.empty() || now.Sub(st.gapsSince) < lateTimeout {
		return 0
	}
	return st.gaps.clearAll()
}

func (s *sequences) count(st *seqState, lost uint64) {
	s.lost += lost
	st.source.Lost += lost
}

// expireAllLocked counts the gaps that timed out in every sequence, so that
// counters read after the last report are final.
func (s *sequences) expireAllLocked() {
	now := s.now()
	for _, st := range s.seqs {
		s.count(st, st.expire(now))
	}
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

func (s *sequences) agentLocked(k seqKey, now time.Time) *agentSeen {
	ak := agentKey{source: k.source, switchID: k.switchID}
	a := s.agents[ak]
	if a == nil {
		a = &agentSeen{Source: k.source, SwitchID: k.switchID, First: now}
		s.agents[ak] = a
	}
	return a
}

// served returns every agent (source address and switch ID) reports came
// from, ordered by address and switch ID.
func (s *sequences) served() []agentSeen {
	s.mu.Lock()
	out := make([]agentSeen, 0, len(s.agents))
	for _, a := range s.agents {
		out = append(out, *a)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b agentSeen) int {
		if c := a.Source.Compare(b.Source); c != 0 {
			return c
		}
		return cmp.Compare(a.SwitchID, b.SwitchID)
	})
	return out
}

func (s *sequences) stats() (lost, overflow uint64, tracked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expireAllLocked()
	return s.lost, s.overflow, len(s.seqs)
}

// perSource returns the counters of every tracked source address, ordered by
// address.
func (s *sequences) perSource() []sourceCounts {
	s.mu.Lock()
	s.expireAllLocked()
	out := make([]sourceCounts, 0, len(s.sources))
	for _, sc := range s.sources {
		out = append(out, *sc)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b sourceCounts) int { return a.Source.Compare(b.Source) })
	return out
}
