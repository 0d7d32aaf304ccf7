package collector

import (
	"net/netip"
	"sync"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// unresolved is a report whose ports were not all known when it arrived.
type unresolved struct {
	source  netip.Addr
	ingress topology.Key
	egress  topology.Key
	obs     flowtable.Observation
}

// pendingQueue is a bounded FIFO of unresolved reports: when full, the oldest
// one is dropped and counted.
type pendingQueue struct {
	mu       sync.Mutex
	ring     []unresolved
	head     int
	n        int
	overflow uint64
	resolved uint64
}

// verdict is what a drain does with a queued report.
type verdict uint8

const (
	keep     verdict = iota // still waiting
	applied                 // in the table now
	rejected                // dropped: its source is no agent
)

func newPendingQueue(capacity int) *pendingQueue {
	return &pendingQueue{ring: make([]unresolved, max(capacity, 1))}
}

func (q *pendingQueue) push(u *unresolved) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == len(q.ring) {
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.overflow++
	}
	q.ring[(q.head+q.n)%len(q.ring)] = *u
	q.n++
}

// drain calls try on every queued report in arrival order and keeps those
// it says to keep.
func (q *pendingQueue) drain(try func(*unresolved) verdict) {
	q.mu.Lock()
	defer q.mu.Unlock()
	kept := 0
	for i := 0; i < q.n; i++ {
		u := &q.ring[(q.head+i)%len(q.ring)]
		switch try(u) {
		case applied:
			q.resolved++
			continue
		case rejected:
			continue
		}
		q.ring[(q.head+kept)%len(q.ring)] = *u
		kept++
	}
	q.n = kept
}

// sources returns the distinct (source, switch) pairs waiting.
func (q *pendingQueue) sources() map[netip.Addr]uint32 {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[netip.Addr]uint32{}
	for i := 0; i < q.n; i++ {
		u := &q.ring[(q.head+i)%len(q.ring)]
		out[u.source] = u.ingress.SwitchID
	}
	return out
}

func (q *pendingQueue) stats() (queued int, overflow, resolved uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.overflow, q.resolved
}
