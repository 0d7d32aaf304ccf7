package exporter

import (
	"sync"
	"sync/atomic"

	"github.com/nsint/nsint/pkg/intreport"
)

// slot is one encoded report waiting to be sent.
type slot struct {
	buf  []byte // len SlotSize; the payload is buf[:n]
	n    int
	hwID uint8
}

// ring is a bounded queue of preallocated slots with any number of producers
// (serialised by a mutex that the consumer never takes) and exactly one
// consumer. head and tail count slots ever consumed and produced; tail-head
// is the number queued. While the consumer runs (sending), a producer that
// finds the queue full waits for it to free a slot; otherwise it drops the
// report and counts it.
type ring struct {
	slots []slot

	produce sync.Mutex
	tail    atomic.Uint64
	head    atomic.Uint64

	// sleeping is set by the consumer before it waits on wake; a producer
	// that clears it owes the consumer one token on wake.
	sleeping atomic.Bool
	wake     chan struct{}

	// sending is set while the consumer runs. spaceWanted is set by a
	// producer before it waits on space for a free slot; the consumer that
	// clears it, and the consumer stopping, send it a token.
	sending     atomic.Bool
	spaceWanted atomic.Bool
	space       chan struct{}

	enqueued    atomic.Uint64
	queueDrops  atomic.Uint64
	queueWaits  atomic.Uint64
	encodeDrops atomic.Uint64
}

func newRing(n int) *ring {
	backing := make([]byte, n*SlotSize)
	q := &ring{slots: make([]slot, n), wake: make(chan struct{}, 1), space: make(chan struct{}, 1)}
	for i := range q.slots {
		q.slots[i].buf = backing[i*SlotSize : (i+1)*SlotSize : (i+1)*SlotSize]
	}
	return q
}

// put encodes r into a free slot, waiting for one while the consumer runs.
// It returns false when the queue is full and no consumer runs, or the
// encoded report would not fit a slot.
func (q *ring) put(format intreport.Format, r *intreport.Report) bool {
	q.produce.Lock()
	tail := q.tail.Load()
	for waited := false; tail-q.head.Load() >= uint64(len(q.slots)); {
		if !q.sending.Load() {
			q.produce.Unlock()
			q.queueDrops.Add(1)
			return false
		}
		if !waited {
			waited = true
			q.queueWaits.Add(1)
		}
		// As prepareSleep, the other way round: either the consumer
		// sees spaceWanted or this sees the slot it freed.
		q.spaceWanted.Store(true)
		if tail-q.head.Load() >= uint64(len(q.slots)) && q.sending.Load() {
			<-q.space // other producers wait on produce meanwhile
		}
		q.spaceWanted.Store(false)
	}
	s := &q.slots[tail%uint64(len(q.slots))]
	out := intreport.Append(s.buf[:0], format, r)
	if len(out) == 0 || len(out) > SlotSize || &out[0] != &s.buf[0] {
		// Append had to grow the buffer: the report is larger than any
		// report we are prepared to send. Leave the slot free.
		q.produce.Unlock()
		q.encodeDrops.Add(1)
		return false
	}
	s.n = len(out)
	s.hwID = r.HwID & hwIDMask
	q.tail.Store(tail + 1)
	q.produce.Unlock()
	q.enqueued.Add(1)

	if q.sleeping.Load() && q.sleeping.CompareAndSwap(true, false) {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// queued returns how many slots wait for the consumer.
func (q *ring) queued() int {
	head := q.head.Load() // first: head never passes a tail read after it
	return int(q.tail.Load() - head)
}

// peek returns the i-th queued slot from the head; consumer only.
func (q *ring) peek(i int) *slot {
	return &q.slots[(q.head.Load()+uint64(i))%uint64(len(q.slots))]
}

// release frees the n oldest slots; consumer only.
func (q *ring) release(n int) {
	q.head.Add(uint64(n))
	if q.spaceWanted.Load() && q.spaceWanted.CompareAndSwap(true, false) {
		q.signalSpace()
	}
}

// setSending tells producers whether the consumer runs; when it stops, a
// producer waiting for a slot drops its report instead.
func (q *ring) setSending(on bool) {
	q.sending.Store(on)
	if !on {
		q.signalSpace()
	}
}

func (q *ring) signalSpace() {
	select {
	case q.space <- struct{}{}:
	default:
	}
}

// prepareSleep tells producers that the consumer is about to wait on wake. It
// returns false (and the consumer must not wait) when something was queued
// meanwhile. Go's atomics are sequentially consistent, so either the consumer
// sees the producer's tail or the producer sees sleeping and sends a token.
func (q *ring) prepareSleep() bool {
	q.sleeping.Store(true)
	if q.queued() > 0 {
		q.sleeping.Store(false)
		return false
	}
	return true
}
