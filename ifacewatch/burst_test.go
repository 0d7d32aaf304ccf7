package ifacewatch

import (
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// addVeth creates a veth pair with both ends inside ns and returns their
// ifindexes. The handle is closed at once so that removing the namespace
// file destroys the namespace.
func addVeth(tb testing.TB, ns *netnstest.NS, a, b string) (netif.Ifindex, netif.Ifindex) {
	tb.Helper()
	h, err := ns.Handle()
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}); err != nil {
		tb.Fatalf("add veth %s/%s in %s: %v", a, b, ns.Name, err)
	}
	la, err := h.LinkByName(a)
	if err != nil {
		tb.Fatal(err)
	}
	lb, err := h.LinkByName(b)
	if err != nil {
		tb.Fatal(err)
	}
	return netif.Ifindex(la.Attrs().Index), netif.Ifindex(lb.Attrs().Index)
}

// kernelLinks lists the links of ns: ifindex → name.
func kernelLinks(tb testing.TB, ns *netnstest.NS) map[int]string {
	tb.Helper()
	h, err := ns.Handle()
	if err != nil {
		tb.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[int]string)
	for _, l := range links {
		out[l.Attrs().Index] = l.Attrs().Name
	}
	return out
}

// snapshotLinks is kernelLinks as the watcher sees it.
func snapshotLinks(w *Watcher, id netif.Netns) map[int]string {
	out := make(map[int]string)
	if s := snapshotOf(w, id); s != nil {
		for _, i := range s.Interfaces {
			out[int(i.ID.Ifindex)] = i.Name
		}
	}
	return out
}

// eventLinks is kernelLinks as the events tell it.
func eventLinks(evs []Event, id netif.Netns) map[int]string {
	out := make(map[int]string)
	for _, ev := range ofNetns(evs, id) {
		switch ev.Kind {
		case IfaceAdded, IfaceChanged:
			out[int(ev.Iface.ID.Ifindex)] = ev.Iface.Name
		case IfaceRemoved:
			delete(out, int(ev.Iface.ID.Ifindex))
		}
	}
	return out
}

// checkLifecycles asserts, for one namespace (one incarnation: the kernel
// reuses nsfs inode numbers, so the path tells incarnations apart), NetnsAdded first and
// NetnsRemoved last (when removed), and for every interface exactly one
// IfaceAdded before any change and at most one IfaceRemoved after them.
func checkLifecycles(t *testing.T, evs []Event, id netif.Netns, path string, removed bool) map[netif.Ifindex]bool {
	t.Helper()
	evs = slices.DeleteFunc(ofNetns(evs, id), func(ev Event) bool { return ev.Netns.Path != path })
	if len(evs) == 0 || evs[0].Kind != NetnsAdded {
		t.Fatalf("netns %d: events do not start with NetnsAdded:\n%s", id, dump(evs))
	}
	last := evs[len(evs)-1].Kind == NetnsRemoved
	if last != removed {
		t.Fatalf("netns %d: ends with NetnsRemoved = %v, want %v:\n%s", id, last, removed, dump(evs))
	}
	state := map[netif.Ifindex]string{} // ifindex → "added" or "removed"
	for i, ev := range evs {
		if i > 0 && (ev.Kind == NetnsAdded || (ev.Kind == NetnsRemoved && i != len(evs)-1)) {
			t.Fatalf("netns %d: %v out of place:\n%s", id, ev, dump(evs))
		}
		if ev.Iface == nil {
			continue
		}
		if ev.Iface.ID.Netns != id {
			t.Fatalf("netns %d: event for %v", id, ev.Iface.ID)
		}
		idx := ev.Iface.ID.Ifindex
		switch ev.Kind {
		case IfaceAdded:
			if state[idx] != "" {
				t.Fatalf("netns %d: ifindex %d added twice:\n%s", id, idx, dump(evs))
			}
			state[idx] = "added"
		case IfaceChanged:
			if state[idx] != "added" {
				t.Fatalf("netns %d: ifindex %d changed while %q:\n%s", id, idx, state[idx], dump(evs))
			}
		case IfaceRemoved:
			if state[idx] != "added" {
				t.Fatalf("netns %d: ifindex %d removed while %q:\n%s", id, idx, state[idx], dump(evs))
			}
			state[idx] = "removed"
		}
	}
	seen := make(map[netif.Ifindex]bool)
	for idx, s := range state {
		if removed && s != "removed" {
			t.Fatalf("netns %d: ifindex %d never removed:\n%s", id, idx, dump(evs))
		}
		seen[idx] = true
	}
	return seen
}

// 200 namespaces with a veth pair each, created and removed in a burst: every
// namespace and interface is reported exactly once each way, in order, and
// fds and goroutines return to their baseline.
func TestBurst200Namespaces(t *testing.T) {
	netnstest.RequireRoot(t)
	const n = 200
	dir := netnstest.Dir(t)
	p := netnstest.Prefix(t)
	h := startWatcher(t, Config{Dirs: []string{dir}}, nil)
	// Warm up (Go's poller opens its epoll fd on first use), then take the
	// baseline.
	warm := netnstest.New(t, dir, p+"-warm")
	h.waitFor("warm-up namespace", func(evs []Event) bool { return has(evs, IfaceAdded, netif.Netns(warm.Inode), "lo") })
	if err := warm.Remove(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("warm-up removed", func(evs []Event) bool { return has(evs, NetnsRemoved, netif.Netns(warm.Inode), "") })
	baseFds, baseG := openFds(t), goroutines()

	type made struct {
		ns     *netnstest.NS
		ifaces map[netif.Ifindex]bool
	}
	all := make([]made, n)
	for i := range all {
		ns, err := netnstest.Create(dir, fmt.Sprintf("%s-%d", p, i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ns.Remove() })
		a, b := addVeth(t, ns, "v0", "v1")
		all[i] = made{ns: ns, ifaces: map[netif.Ifindex]bool{1: true, a: true, b: true}}
	}
	// Every namespace is seen before the removals begin: one created and
	// removed before the watcher looked at it would rightly never be
	// reported, and on a loaded machine the last ones can be (a CI run once
	// saw 199 of 200).
	h.waitFor("all namespaces added with their interfaces", func(evs []Event) bool {
		for _, m := range all {
			for idx := range m.ifaces {
				if !hasIndex(evs, IfaceAdded, netif.Netns(m.ns.Inode), idx) {
					return false
				}
			}
		}
		return true
	})
	for _, m := range all {
		if err := m.ns.Remove(); err != nil {
			t.Fatal(err)
		}
	}
	h.waitFor("all namespaces removed", func(evs []Event) bool {
		removed := 0
		for _, ev := range evs {
			if ev.Kind == NetnsRemoved {
				removed++
			}
		}
		return removed >= n+1 // and the warm-up
	})
	evs := h.all()
	if len(evs) < n*8 { // NetnsAdded, 3 added, 3 removed, NetnsRemoved
		t.Fatalf("%d events for %d namespaces", len(evs), n)
	}
	for _, m := range all {
		got := checkLifecycles(t, evs, netif.Netns(m.ns.Inode), m.ns.Path, true)
		if !maps.Equal(got, m.ifaces) {
			t.Fatalf("netns %s: interfaces reported %v, created %v", m.ns.Name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(m.ifaces)))
		}
	}
	if s := h.w.Stats(); s.Namespaces != 0 || s.Interfaces != 0 || s.Recoveries != 0 {
		t.Errorf("stats after the burst: %+v", s)
	}
	waitUntil(t, fmt.Sprintf("fds back to %d", baseFds), func() bool { return openFds(t) <= baseFds })
	t.Logf("baseline: %d fds, %d goroutines; stats %+v", baseFds, baseG, h.w.Stats())
	waitUntil(t, fmt.Sprintf("goroutines back to %d", baseG), func() bool { return goroutines() <= baseG })
}

// pauser holds one namespace's goroutine before its next read, so that the
// test can make its socket overflow or fail while nobody reads it.
type pauser struct {
	target atomic.Uint64
	gate   chan struct{}
	parked chan struct{}
}

func newPauser() *pauser {
	return &pauser{gate: make(chan struct{}), parked: make(chan struct{}, 1)}
}

func (p *pauser) hook(id netif.Netns) {
	if uint64(id) != p.target.Load() {
		return
	}
	select {
	case p.parked <- struct{}{}:
	default:
	}
	<-p.gate
}

// The real recovery paths: a socket that overflows (ENOBUFS) or is closed
// while changes happen is re-opened, the namespace re-listed, and only the
// differences are reported: vanished interfaces removed, new ones added, the
// rest untouched.
func TestSubscriptionRecovery(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, mode := range []string{"enobufs", "closed"} {
		t.Run(mode, func(t *testing.T) {
			dir := netnstest.Dir(t)
			p := netnstest.Prefix(t)
			pause := newPauser()
			h := startWatcher(t, Config{Dirs: []string{dir}}, func(w *Watcher) {
				w.beforeRecv = pause.hook
				if mode == "enobufs" {
					w.rcvBuf = 1 // the kernel's minimum: a few messages
				}
			})
			ns := netnstest.New(t, dir, p+"-a")
			id := netif.Netns(ns.Inode)
			o0, o1 := addVeth(t, ns, "old0", "old1")
			h.waitFor("old pair", func([]Event) bool { return len(snapshotLinks(h.w, id)) == 3 })

			// Park the namespace's goroutine: it stops at its next read.
			pause.target.Store(uint64(id))
			nh := ns.NetlinkHandle(t)
			lo, err := nh.LinkByName("lo")
			if err != nil {
				t.Fatal(err)
			}
			if err := nh.LinkSetMTU(lo, 60000); err != nil {
				t.Fatal(err)
			}
			<-pause.parked
			if mode == "closed" {
				h.w.reg.get(id).worker.breakSocket()
			}
			old, err := nh.LinkByName("old0")
			if err != nil {
				t.Fatal(err)
			}
			if err := nh.LinkDel(old); err != nil { // takes old1 with it
				t.Fatal(err)
			}
			for i := range 30 {
				addVeth(t, ns, fmt.Sprintf("x%d", i), fmt.Sprintf("y%d", i))
			}
			pause.target.Store(0)
			close(pause.gate)

			want := kernelLinks(t, ns)
			h.waitFor("the re-listed state", func(evs []Event) bool { return maps.Equal(eventLinks(evs, id), want) })
			if got := snapshotLinks(h.w, id); !maps.Equal(got, want) {
				t.Errorf("snapshot %v, want %v", got, want)
			}
			evs := h.all()
			s := h.w.Stats()
			if s.Recoveries == 0 || s.NetlinkErrors == 0 {
				t.Fatalf("no recovery counted: %+v", s)
			}
			seen := checkLifecycles(t, evs, id, ns.Path, false)
			if len(seen) != len(want)+2 {
				t.Errorf("%d interfaces reported, want %d", len(seen), len(want)+2)
			}
			for _, idx := range []netif.Ifindex{o0, o1} {
				if count(evs, IfaceRemoved, netif.ID{Netns: id, Ifindex: idx}) != 1 {
					t.Errorf("old interface %d not removed exactly once:\n%s", idx, dump(ofNetns(evs, id)))
				}
			}
			if n := count(evs, IfaceAdded, netif.ID{Netns: id, Ifindex: 1}); n != 1 {
				t.Errorf("lo added %d times", n)
			}
			if s := snapshotOf(h.w, id); s.Interfaces[0].MTU != 60000 {
				t.Errorf("lo MTU %d, want 60000", s.Interfaces[0].MTU)
			}
			t.Logf("stats: %+v, last error: %v", s, h.w.LastError())
		})
	}
}

// hasIndex reports whether evs has an event of kind for ifindex idx in netns id.
func hasIndex(evs []Event, kind EventKind, id netif.Netns, idx netif.Ifindex) bool {
	for _, ev := range evs {
		if ev.Kind == kind && ev.Iface != nil && ev.Iface.ID == (netif.ID{Netns: id, Ifindex: idx}) {
			return true
		}
	}
	return false
}
