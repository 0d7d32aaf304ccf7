package ifacewatch

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/nsint/nsint/pkg/netif"
)

// dispatcher holds one ordered queue per namespace identity and hands their
// events to the consumer's channel one at a time, round-robin over the
// namespaces that have something queued. Producers (namespace goroutines)
// never wait for the consumer: a slow consumer delays delivery for everyone but
// never stalls netlink reading, and a busy namespace cannot starve the others.
//
// Queues are keyed by netif.Netns, not by goroutine, so when a namespace file is
// removed and the same namespace is found again, the new NetnsAdded still
// comes after the old NetnsRemoved.
type dispatcher struct {
	mu      sync.Mutex
	queues  map[netif.Netns]*nsQueue
	ready   []*nsQueue // FIFO of queues with events; each at most once
	pending int
	wake    chan struct{}

	delivered atomic.Uint64
}

type nsQueue struct {
	id      netif.Netns
	events  []Event
	head    int
	inReady bool
}

func newDispatcher() *dispatcher {
	return &dispatcher{queues: make(map[netif.Netns]*nsQueue), wake: make(chan struct{}, 1)}
}

// push appends ev to the queue of its namespace.
func (d *dispatcher) push(ev Event) {
	d.mu.Lock()
	q := d.queues[ev.Netns.ID]
	if q == nil {
		q = &nsQueue{id: ev.Netns.ID}
		d.queues[ev.Netns.ID] = q
	}
	q.events = append(q.events, ev)
	d.pending++
	if !q.inReady {
		q.inReady = true
		d.ready = append(d.ready, q)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// pop takes the next event in round-robin order.
func (d *dispatcher) pop() (Event, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.ready) == 0 {
		return Event{}, false
	}
	q := d.ready[0]
	d.ready[0] = nil
	d.ready = d.ready[1:]
	ev := q.events[q.head]
	q.events[q.head] = Event{}
	q.head++
	d.pending--
	if q.head < len(q.events) {
		d.ready = append(d.ready, q)
	} else {
		q.inReady = false
		delete(d.queues, q.id) // empty: free it; push recreates it
	}
	return ev, true
}

func (d *dispatcher) queued() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending
}

// run delivers events to out until ctx ends, then returns without draining.
func (d *dispatcher) run(ctx context.Context, out chan<- Event) {
	for {
		ev, ok := d.pop()
		if !ok {
			select {
			case <-d.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		select {
		case out <- ev:
			d.delivered.Add(1)
		case <-ctx.Done():
			return
		}
	}
}
