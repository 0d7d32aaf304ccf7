package tc

import (
	"fmt"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// manyInterfaces creates n namespaces under one directory, each holding
// both ends of a veth pair (eth0, eth1), and returns the 2n interfaces. All
// are removed at cleanup.
func manyInterfaces(tb testing.TB, n int) (dir string, nss []*netnstest.NS, targets []Target) {
	tb.Helper()
	netnstest.RequireRoot(tb)
	dir, pfx := netnstest.Dir(tb), netnstest.Prefix(tb)
	for i := range n {
		ns, err := netnstest.Create(dir, fmt.Sprintf("%s-%d", pfx, i))
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() {
			if err := ns.Remove(); err != nil {
				tb.Error(err)
			}
		})
		h, err := ns.Handle()
		if err != nil {
			tb.Fatal(err)
		}
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "eth1"}
		if err := h.LinkAdd(veth); err != nil {
			h.Close()
			tb.Fatalf("add veth in %s: %v", ns.Name, err)
		}
		for _, name := range []string{"eth0", "eth1"} {
			l, err := h.LinkByName(name)
			if err == nil {
				err = h.LinkSetUp(l)
			}
			if err != nil {
				h.Close()
				tb.Fatalf("%s in %s: %v", name, ns.Name, err)
			}
			targets = append(targets, Target{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: netif.Ifindex(l.Attrs().Index)}, NetnsPath: ns.Path, Name: name})
		}
		h.Close()
		nss = append(nss, ns)
	}
	return dir, nss, targets
}

// attachAll attaches prog to both hooks of every target, concurrently.
func attachAll(a *Attacher, targets []Target, prog *counter, workers int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(targets))
	next := make(chan Target)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tg := range next {
				for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
					if err := a.Attach(tg, dir, prog.prog); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	for _, tg := range targets {
		next <- tg
	}
	close(next)
	wg.Wait()
	close(errs)
	return <-errs
}

func TestConcurrentAttachAcrossNamespaces(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		_, nss, targets := manyInterfaces(t, 16)
		prog := newCounter(t, "nsint_many")
		a := newAttacher(t, Config{Mode: mode, PinDir: privateBPFFS(t), MaxConcurrent: 4})
		if err := attachAll(a, targets, prog, 32); err != nil {
			t.Fatal(err)
		}
		// Again, as a restart would: every hook replaced in place.
		if err := attachAll(a, targets, prog, 32); err != nil {
			t.Fatal(err)
		}
		if st := a.Stats(); st.Attached != uint64(2*len(targets)) || st.Replaced != uint64(2*len(targets)) {
			t.Errorf("stats %+v, want %d attached and as many replaced", st, 2*len(targets))
		}
		for i, tg := range targets {
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				assertOurs(t, mode, nss[i/2], tg.Ifindex, dir, prog, prog)
			}
		}
	})
}
