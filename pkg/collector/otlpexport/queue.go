package otlpexport

import (
	"context"
	"sync"

	sdklog "go.opentelemetry.io/otel/sdk/log"
)

// queue is the SDK Processor that holds emitted records until the sender
// has sent them: at most size records, the batch being sent included; OnEmit
// refuses (and counts) one more. The exporter only emits as many records as
// room says, so a refusal means another caller emitted through the provider.
type queue struct {
	mu       sync.Mutex
	size     int
	recs     []sdklog.Record
	inFlight int // records handed out by next and not yet done
	closed   bool
	wake     chan struct{} // a record arrived, or the queue closed
	refused  func(*sdklog.Record)
}

var _ sdklog.Processor = (*queue)(nil)

func newQueue(size int, refused func(*sdklog.Record)) *queue {
	return &queue{size: size, wake: make(chan struct{}, 1), refused: refused}
}

// Enabled implements sdklog.Processor.
func (q *queue) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }

// OnEmit implements sdklog.Processor: it queues a copy of r.
func (q *queue) OnEmit(_ context.Context, r *sdklog.Record) error {
	q.mu.Lock()
	if q.closed || len(q.recs)+q.inFlight >= q.size {
		q.mu.Unlock()
		q.refused(r)
		return nil
	}
	q.recs = append(q.recs, r.Clone())
	q.mu.Unlock()
	// No signal here: the exporter signals once it has emitted a whole
	// round, so that the sender finds full batches.
	return nil
}

// Shutdown implements sdklog.Processor; the exporter drains the queue
// itself before it shuts the provider down.
func (q *queue) Shutdown(context.Context) error { return nil }

// ForceFlush implements sdklog.Processor; see Shutdown.
func (q *queue) ForceFlush(context.Context) error { return nil }

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// room is how many records the queue takes now.
func (q *queue) room() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size - len(q.recs) - q.inFlight
}

// len is how many records are queued.
func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.recs)
}

// close makes the queue refuse new records; next still hands out the queued
// ones, then reports the end.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// next waits for records and returns up to max of them, oldest first; nil
// once the queue is closed and empty, or when ctx ends. They count against
// the queue's size until done.
func (q *queue) next(ctx context.Context, max int) []sdklog.Record {
	for {
		q.mu.Lock()
		if n := min(len(q.recs), max); n > 0 {
			q.inFlight += n
			batch := make([]sdklog.Record, n)
			copy(batch, q.recs)
			// Shift rather than reslice, so the backing array never grows
			// beyond size records.
			m := copy(q.recs, q.recs[n:])
			clear(q.recs[m:])
			q.recs = q.recs[:m]
			q.mu.Unlock()
			return batch
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-q.wake:
		}
	}
}

// done says that n records handed out by next were sent or given up.
func (q *queue) done(n int) {
	q.mu.Lock()
	q.inFlight -= n
	q.mu.Unlock()
}

// drain removes and returns every queued record.
func (q *queue) drain() []sdklog.Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.recs
	q.recs = nil
	return out
}
