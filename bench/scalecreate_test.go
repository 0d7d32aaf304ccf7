package bench

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/netnstest"
)

// scaleCreation is one creation run of TestBenchScale: count namespaces,
// each with a bare link listener subscribed before its veth pair eth0/net1
// is made, by four workers, paced or flat out.
type scaleCreation struct {
	mu        sync.Mutex
	all       []*netnstest.NS
	created   map[ifaceKey]time.Time // the veth pair was made
	began     map[ifaceKey]time.Time // just before it was made
	seen      map[ifaceKey]time.Time // the bare listener saw the link
	nsCreated map[uint64]time.Time
	start     time.Time
	createdIn time.Duration
}

// createScale creates count namespaces in dir at rate per second (0: flat
// out) and waits until every listener saw both links. onSeen, when not nil,
// gives for each namespace the callback its listener runs at a link's first
// sighting (linkListener.wait). The namespaces stay until removeAll, which
// the test's cleanup also runs.
func createScale(t *testing.T, dir string, count, rate int, onSeen func(ns *netnstest.NS) func(name string, index int)) *scaleCreation {
	t.Helper()
	const workers = 4
	pfx := netnstest.Prefix(t)
	c := &scaleCreation{
		created: map[ifaceKey]time.Time{}, began: map[ifaceKey]time.Time{},
		seen: map[ifaceKey]time.Time{}, nsCreated: map[uint64]time.Time{},
	}
	t.Cleanup(func() { c.removeAll(t) })
	var listenErrs []error
	var listeners sync.WaitGroup
	c.start = time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < count; i += workers {
				if rate > 0 {
					time.Sleep(time.Until(c.start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
				}
				ns, err := netnstest.Create(dir, fmt.Sprintf("%s-s%d", pfx, i))
				if err != nil {
					errs <- err
					return
				}
				c.mu.Lock()
				c.all = append(c.all, ns)
				c.nsCreated[ns.Inode] = time.Now()
				c.mu.Unlock()
				h, err := ns.Handle()
				if err != nil {
					errs <- err
					return
				}
				l, err := listenLinks(ns)
				if err != nil {
					h.Close()
					errs <- err
					return
				}
				var cb func(string, int)
				if onSeen != nil {
					cb = onSeen(ns)
				}
				listeners.Go(func() {
					s, err := l.wait(120*time.Second, cb, "eth0", "net1")
					c.mu.Lock()
					defer c.mu.Unlock()
					for name, at := range s {
						c.seen[ifaceKey{ns.Inode, name}] = at
					}
					if err != nil {
						listenErrs = append(listenErrs, err)
					}
				})
				begin := time.Now()
				err = addVethLocal(h, "eth0", "net1")
				at := time.Now()
				h.Close()
				if err != nil {
					errs <- fmt.Errorf("netns %s: %w", ns.Name, err)
					return
				}
				c.mu.Lock()
				for _, name := range []string{"eth0", "net1"} {
					c.created[ifaceKey{ns.Inode, name}] = at
					c.began[ifaceKey{ns.Inode, name}] = begin
				}
				c.mu.Unlock()
			}
		})
	}
	wg.Wait()
	c.createdIn = time.Since(c.start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	listeners.Wait()
	for _, err := range listenErrs {
		t.Error(err)
	}
	return c
}

// removeAll removes the namespaces (eight at a time).
func (c *scaleCreation) removeAll(t *testing.T) {
	c.mu.Lock()
	list := c.all
	c.all = nil
	c.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, ns := range list {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := ns.Remove(); err != nil {
				t.Errorf("remove netns %s: %v", ns.Path, err)
			}
		})
	}
	wg.Wait()
}
