package agent

import (
	"bytes"
	"sync"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/netif"
)

// maxConcurrentAdds bounds the events of one namespace handled at once.
const maxConcurrentAdds = 16

// eventScheduler runs discovery events through handle, one goroutine per
// event, so that an event waits only for the earlier events it depends on:
//
//   - An interface's own event (its addition, or a change that touches no
//     bridge: interfaceEvent) waits for the earlier events of the same
//     interface and for any earlier event that runs alone; interfaces of a
//     namespace are otherwise handled side by side, at most
//     maxConcurrentAdds at once.
//   - Every other event (a namespace added or removed, an interface removed,
//     anything about a bridge or a bridge's member) runs alone: it waits for
//     everything before it in its namespace, and nothing after it starts
//     before it is done.
//   - Namespaces never wait for each other.
//
// An interface's attachment holds it for two RCU grace periods of the kernel
// (docs/performance.md), so a pod's second interface must not wait for its
// first: the watcher publishes a veth end, then the change that names its
// peer, then the peer, and the peer used to wait behind that change.
type eventScheduler struct {
	handle func(ifacewatch.Event)

	wg sync.WaitGroup
	mu sync.Mutex
	ns map[netif.Netns]*nsQueue
}

// nsQueue is one namespace's share of the scheduler. It lives from the
// namespace's first event until its removal has been handled.
type nsQueue struct {
	events  []ifacewatch.Event
	running map[netif.Ifindex]struct{} // interface events in progress
	alone   bool                       // an event that runs alone is in progress
	removed bool                       // its NetnsRemoved was handled
	// view is each interface as the events handed to handle left it, for
	// telling whether a change touches a bridge.
	view map[netif.Ifindex]*ifacewatch.Interface
}

func newEventScheduler(handle func(ifacewatch.Event)) *eventScheduler {
	return &eventScheduler{handle: handle, ns: make(map[netif.Netns]*nsQueue)}
}

// add queues ev and starts what may start.
func (s *eventScheduler) add(ev ifacewatch.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := ev.Netns.ID
	q := s.ns[id]
	if q == nil {
		q = &nsQueue{running: make(map[netif.Ifindex]struct{}), view: make(map[netif.Ifindex]*ifacewatch.Interface)}
		s.ns[id] = q
	}
	q.events = append(q.events, ev)
	s.startLocked(id, q)
}

// wait returns once every event added has been handled.
func (s *eventScheduler) wait() { s.wg.Wait() }

// startLocked starts every queued event of q whose predecessors allow it,
// and forgets q once its namespace is gone and nothing is left. s.mu is
// held.
func (s *eventScheduler) startLocked(id netif.Netns, q *nsQueue) {
	// Interfaces with an event passed over: their later events wait too.
	waiting := map[netif.Ifindex]struct{}{}
	for i := 0; i < len(q.events) && !q.alone; {
		ev := q.events[i]
		if !q.interfaceEvent(ev) {
			if i > 0 || len(q.running) > 0 {
				break // runs alone, after everything before it
			}
			q.take(i)
			q.alone = true
			s.wg.Go(func() {
				s.handle(ev)
				s.mu.Lock()
				q.alone = false
				s.startLocked(id, q)
				s.mu.Unlock()
			})
			break
		}
		ifindex := ev.Iface.ID.Ifindex
		_, busy := q.running[ifindex]
		_, behind := waiting[ifindex]
		if busy || behind || len(q.running) >= maxConcurrentAdds {
			waiting[ifindex] = struct{}{}
			i++
			continue
		}
		q.take(i)
		q.running[ifindex] = struct{}{}
		s.wg.Go(func() {
			s.handle(ev)
			s.mu.Lock()
			delete(q.running, ifindex)
			s.startLocked(id, q)
			s.mu.Unlock()
		})
	}
	if q.removed && len(q.events) == 0 && !q.alone && len(q.running) == 0 {
		delete(s.ns, id)
	}
}

// interfaceEvent reports whether ev concerns one interface alone: its
// addition, or a change, where neither the interface as the change leaves
// it nor as it was is a bridge or a bridge's member and its MAC stays (what
// a bridge's ports are configured from). Such events of different
// interfaces do not depend on each other.
func (q *nsQueue) interfaceEvent(ev ifacewatch.Event) bool {
	if ev.Iface == nil || !standalone(ev.Iface) {
		return false
	}
	switch ev.Kind {
	case ifacewatch.IfaceAdded:
		return true
	case ifacewatch.IfaceChanged:
		old := q.view[ev.Iface.ID.Ifindex]
		return old != nil && standalone(old) && bytes.Equal(old.MAC, ev.Iface.MAC)
	}
	return false
}

// standalone: neither a bridge nor a bridge's member.
func standalone(iface *ifacewatch.Interface) bool {
	return iface.Kind != "bridge" && iface.MasterIndex == 0
}

// take removes the i-th queued event, recording what it leaves behind.
func (q *nsQueue) take(i int) {
	ev := q.events[i]
	switch ev.Kind {
	case ifacewatch.IfaceAdded, ifacewatch.IfaceChanged:
		q.view[ev.Iface.ID.Ifindex] = ev.Iface
	case ifacewatch.IfaceRemoved:
		delete(q.view, ev.Iface.ID.Ifindex)
	case ifacewatch.NetnsRemoved:
		clear(q.view)
		q.removed = true
	case ifacewatch.NetnsAdded:
		q.removed = false
	}
	copy(q.events[i:], q.events[i+1:])
	q.events[len(q.events)-1] = ifacewatch.Event{}
	q.events = q.events[:len(q.events)-1]
}
