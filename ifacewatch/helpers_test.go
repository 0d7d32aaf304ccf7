package ifacewatch

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// waitLimit bounds every wait in the tests: a failure bound, not a speed test.
const waitLimit = 20 * time.Second

// harness runs a Watcher and records every event it delivers.
type harness struct {
	tb     testing.TB
	w      *Watcher
	cancel context.CancelFunc
	runErr chan error

	mu     sync.Mutex
	events []Event
	notify chan struct{}
}

// startWatcher runs a watcher for the test; setup may adjust its test knobs
// before Run. The watcher is stopped at cleanup.
func startWatcher(tb testing.TB, cfg Config, setup func(*Watcher)) *harness {
	tb.Helper()
	w, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	if setup != nil {
		setup(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{tb: tb, w: w, cancel: cancel, runErr: make(chan error, 1), notify: make(chan struct{}, 1)}
	events := make(chan Event)
	go func() { h.runErr <- w.Run(ctx, events) }()
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ev := range events {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
			select {
			case h.notify <- struct{}{}:
			default:
			}
		}
	}()
	tb.Cleanup(func() {
		h.stop()
		<-collected
	})
	return h
}

// stop ends Run and checks its result; idempotent.
func (h *harness) stop() {
	h.tb.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.runErr; err != nil {
		h.tb.Errorf("Run: %v", err)
	}
}

// all returns a copy of the events so far.
func (h *harness) all() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

// waitFor waits until cond holds on the events so far.
func (h *harness) waitFor(what string, cond func([]Event) bool) []Event {
	h.tb.Helper()
	deadline := time.After(waitLimit)
	for {
		evs := h.all()
		if cond(evs) {
			return evs
		}
		select {
		case <-h.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			h.tb.Fatalf("timed out waiting for %s; stats %+v, last error %v; events:\n%s", what, h.w.Stats(), h.w.LastError(), dump(h.all()))
		}
	}
}

// waitUntil waits until cond holds (for state other than events).
func waitUntil(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dump(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %v\n", ev)
	}
	return b.String()
}

// ofNetns filters the events of one namespace.
func ofNetns(evs []Event, id netif.Netns) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Netns.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// has reports whether an event of kind exists for the namespace and, when
// name is not empty, for an interface of that name.
func has(evs []Event, kind EventKind, id netif.Netns, name string) bool {
	return find(evs, kind, id, name) != nil
}

func find(evs []Event, kind EventKind, id netif.Netns, name string) *Event {
	for i := len(evs) - 1; i >= 0; i-- {
		ev := evs[i]
		if ev.Kind == kind && ev.Netns.ID == id && (name == "" || (ev.Iface != nil && ev.Iface.Name == name)) {
			return &evs[i]
		}
	}
	return nil
}

// count counts events of kind for one interface identity.
func count(evs []Event, kind EventKind, id netif.ID) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind && ev.Iface != nil && ev.Iface.ID == id {
			n++
		}
	}
	return n
}

// kinds lists the event kinds with interface names, for exact comparisons.
func kinds(evs []Event) []string {
	var out []string
	for _, ev := range evs {
		s := ev.Kind.String()
		if ev.Iface != nil {
			s += " " + ev.Iface.Name
		}
		out = append(out, s)
	}
	return out
}

// snapshotOf returns the state of one namespace in a snapshot.
func snapshotOf(w *Watcher, id netif.Netns) *NamespaceState {
	for _, s := range w.Snapshot() {
		if s.ID == id {
			return &s
		}
	}
	return nil
}

// ifindex returns the ifindex of name inside ns.
func ifindex(tb testing.TB, ns *netnstest.NS, name string) netif.Ifindex {
	tb.Helper()
	l, err := ns.NetlinkHandle(tb).LinkByName(name)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", name, ns.Name, err)
	}
	return netif.Ifindex(l.Attrs().Index)
}

// openFds counts the process's open file descriptors.
func openFds(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

func goroutines() int { return runtime.NumGoroutine() }
