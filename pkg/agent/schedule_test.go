package agent

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/netif"
)

// gatedHandler records when each event starts and finishes; an event's
// handling blocks until its gate is opened.
type gatedHandler struct {
	mu      sync.Mutex
	started chan string
	gates   map[string]chan struct{}
	log     []string // "start X" / "end X" in order
	running int
	maxRun  int
}

// newGatedScheduler returns a scheduler whose events are handled by a
// gatedHandler.
func newGatedScheduler() (*gatedHandler, *eventScheduler) {
	g := &gatedHandler{started: make(chan string, 100), gates: make(map[string]chan struct{})}
	return g, newEventScheduler(g.handle)
}

func (g *gatedHandler) gate(name string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.gates[name]
	if !ok {
		c = make(chan struct{})
		g.gates[name] = c
	}
	return c
}

func (g *gatedHandler) handle(ev ifacewatch.Event) {
	name := eventName(ev)
	g.mu.Lock()
	g.log = append(g.log, "start "+name)
	g.running++
	g.maxRun = max(g.maxRun, g.running)
	g.mu.Unlock()
	g.started <- name
	<-g.gate(name)
	g.mu.Lock()
	g.log = append(g.log, "end "+name)
	g.running--
	g.mu.Unlock()
}

func eventName(ev ifacewatch.Event) string {
	if ev.Iface == nil {
		return fmt.Sprintf("%s/%d", ev.Kind, ev.Netns.ID)
	}
	return fmt.Sprintf("%s/%d/%s", ev.Kind, ev.Netns.ID, ev.Iface.Name)
}

func nsEvent(kind ifacewatch.EventKind, ns netif.Netns) ifacewatch.Event {
	return ifacewatch.Event{Kind: kind, Netns: ifacewatch.Namespace{ID: ns}}
}

func ifaceEvent(kind ifacewatch.EventKind, ns netif.Netns, name string, ifindex, master netif.Ifindex, ifkind string) ifacewatch.Event {
	return ifacewatch.Event{Kind: kind, Netns: ifacewatch.Namespace{ID: ns}, Iface: &ifacewatch.Interface{
		ID: netif.ID{Netns: ns, Ifindex: ifindex}, Name: name, Kind: ifkind, MasterIndex: master,
	}}
}

// expectStart waits for the named events to start, in any order.
func (g *gatedHandler) expectStart(t *testing.T, want ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	for range want {
		select {
		case got := <-g.started:
			if !left[got] {
				t.Fatalf("started %s, want one of %v", got, left)
			}
			delete(left, got)
		case <-time.After(5 * time.Second):
			t.Fatalf("%v did not start", left)
		}
	}
}

// expectNoStart checks that nothing starts while the scheduler settles.
func (g *gatedHandler) expectNoStart(t *testing.T) {
	t.Helper()
	select {
	case got := <-g.started:
		t.Fatalf("%s started, want it to wait", got)
	case <-time.After(50 * time.Millisecond):
	}
}

// A pod's second interface, published while its first is being attached,
// starts at once; the events that must run alone wait for both and keep
// their order; an interface's removal waits for its addition.
func TestEventSchedulerOrder(t *testing.T) {
	g, s := newGatedScheduler()
	const ns = netif.Netns(7)
	s.add(nsEvent(ifacewatch.NetnsAdded, ns))
	g.expectStart(t, "NetnsAdded/7")
	eth0 := ifaceEvent(ifacewatch.IfaceAdded, ns, "eth0", 2, 0, "veth")
	net1 := ifaceEvent(ifacewatch.IfaceAdded, ns, "net1", 3, 0, "macvlan")
	s.add(eth0)
	g.expectNoStart(t) // the namespace's addition runs alone
	close(g.gate("NetnsAdded/7"))
	g.expectStart(t, "IfaceAdded/7/eth0")

	s.add(net1) // arrives while eth0 is attached
	g.expectStart(t, "IfaceAdded/7/net1")

	removed := ifaceEvent(ifacewatch.IfaceRemoved, ns, "eth0", 2, 0, "veth")
	again := ifaceEvent(ifacewatch.IfaceAdded, ns, "net2", 4, 0, "veth")
	s.add(removed)
	s.add(again) // behind an event that runs alone: waits for it
	g.expectNoStart(t)
	close(g.gate("IfaceAdded/7/eth0"))
	g.expectNoStart(t) // net1 is still being added
	close(g.gate("IfaceAdded/7/net1"))
	g.expectStart(t, "IfaceRemoved/7/eth0")
	g.expectNoStart(t)
	close(g.gate("IfaceRemoved/7/eth0"))
	g.expectStart(t, "IfaceAdded/7/net2")
	close(g.gate("IfaceAdded/7/net2"))
	s.wait()

	want := []string{
		"start NetnsAdded/7", "end NetnsAdded/7",
		"start IfaceAdded/7/eth0", "start IfaceAdded/7/net1", "end IfaceAdded/7/eth0", "end IfaceAdded/7/net1",
		"start IfaceRemoved/7/eth0", "end IfaceRemoved/7/eth0",
		"start IfaceAdded/7/net2", "end IfaceAdded/7/net2",
	}
	if fmt.Sprint(g.log) != fmt.Sprint(want) {
		t.Fatalf("order:\n got %v\nwant %v", g.log, want)
	}
}

// Bridges and their members depend on each other's configuration: they are
// added one at a time; a second addition of one interface waits for the
// first.
func TestEventSchedulerRunsAlone(t *testing.T) {
	g, s := newGatedScheduler()
	const ns = netif.Netns(8)
	br := ifaceEvent(ifacewatch.IfaceAdded, ns, "br0", 2, 0, "bridge")
	member := ifaceEvent(ifacewatch.IfaceAdded, ns, "veth0", 3, 2, "veth")
	plain := ifaceEvent(ifacewatch.IfaceAdded, ns, "eth0", 4, 0, "veth")
	plainAgain := ifaceEvent(ifacewatch.IfaceAdded, ns, "eth0-again", 4, 0, "veth")
	s.add(plain)
	g.expectStart(t, "IfaceAdded/8/eth0")
	s.add(plainAgain)
	s.add(br)
	g.expectNoStart(t) // the same interface again: after the first
	close(g.gate("IfaceAdded/8/eth0"))
	g.expectStart(t, "IfaceAdded/8/eth0-again")
	g.expectNoStart(t) // the bridge waits for it
	s.add(member)
	close(g.gate("IfaceAdded/8/eth0-again"))
	g.expectStart(t, "IfaceAdded/8/br0")
	g.expectNoStart(t)
	close(g.gate("IfaceAdded/8/br0"))
	g.expectStart(t, "IfaceAdded/8/veth0")
	close(g.gate("IfaceAdded/8/veth0"))
	s.wait()
}

// A namespace whose events are blocked never delays another's; one
// namespace runs at most maxConcurrentAdds additions at once.
func TestEventSchedulerBounds(t *testing.T) {
	g, s := newGatedScheduler()
	const busy, other = netif.Netns(9), netif.Netns(10)
	for i := range maxConcurrentAdds + 3 {
		s.add(ifaceEvent(ifacewatch.IfaceAdded, busy, fmt.Sprintf("if%d", i), netif.Ifindex(2+i), 0, "veth"))
	}
	var first []string
	for i := range maxConcurrentAdds {
		first = append(first, fmt.Sprintf("IfaceAdded/9/if%d", i))
	}
	g.expectStart(t, first...)
	g.expectNoStart(t)
	s.add(nsEvent(ifacewatch.NetnsRemoved, other))
	g.expectStart(t, "NetnsRemoved/10")
	close(g.gate("NetnsRemoved/10"))
	for i := range maxConcurrentAdds + 3 {
		close(g.gate(fmt.Sprintf("IfaceAdded/9/if%d", i)))
	}
	var rest []string
	for i := maxConcurrentAdds; i < maxConcurrentAdds+3; i++ {
		rest = append(rest, fmt.Sprintf("IfaceAdded/9/if%d", i))
	}
	g.expectStart(t, rest...)
	s.wait()
	if g.maxRun > maxConcurrentAdds+1 {
		t.Fatalf("%d events ran at once, want at most %d of one namespace and 1 of the other", g.maxRun, maxConcurrentAdds)
	}
}

// A veth end, the change naming its peer, then the peer (how the watcher
// publishes a pair made inside a pod): the peer is attached at once, the
// change waits only for its own interface. A change that puts an interface
// into a bridge runs alone.
func TestEventSchedulerChanges(t *testing.T) {
	g, s := newGatedScheduler()
	const ns = netif.Netns(11)
	net1 := ifaceEvent(ifacewatch.IfaceAdded, ns, "net1", 2, 0, "veth")
	peer := ifaceEvent(ifacewatch.IfaceChanged, ns, "net1", 2, 0, "veth")
	peer.Iface.Name = "net1-peer" // the same interface, named apart for the gates
	eth0 := ifaceEvent(ifacewatch.IfaceAdded, ns, "eth0", 3, 0, "veth")
	s.add(net1)
	g.expectStart(t, "IfaceAdded/11/net1")
	s.add(peer)
	s.add(eth0)
	g.expectStart(t, "IfaceAdded/11/eth0")
	g.expectNoStart(t) // the change waits for its interface's addition
	close(g.gate("IfaceAdded/11/net1"))
	g.expectStart(t, "IfaceChanged/11/net1-peer")

	enslaved := ifaceEvent(ifacewatch.IfaceChanged, ns, "eth0-enslaved", 3, 9, "veth")
	other := ifaceEvent(ifacewatch.IfaceAdded, ns, "net2", 4, 0, "veth")
	s.add(enslaved)
	s.add(other)
	g.expectNoStart(t) // into a bridge: after everything before it
	close(g.gate("IfaceAdded/11/eth0"))
	g.expectNoStart(t)
	close(g.gate("IfaceChanged/11/net1-peer"))
	g.expectStart(t, "IfaceChanged/11/eth0-enslaved")
	g.expectNoStart(t)
	close(g.gate("IfaceChanged/11/eth0-enslaved"))
	g.expectStart(t, "IfaceAdded/11/net2")
	close(g.gate("IfaceAdded/11/net2"))

	s.add(nsEvent(ifacewatch.NetnsRemoved, ns))
	g.expectStart(t, "NetnsRemoved/11")
	close(g.gate("NetnsRemoved/11"))
	s.wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ns) != 0 {
		t.Fatalf("the scheduler keeps %d namespaces after their removal", len(s.ns))
	}
}
