package ifacewatch

import (
	"slices"
	"sync"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/pkg/netif"
)

// registry is the set of watched namespaces. The main loop adds and removes
// entries; Snapshot, Stats and the nsid resolution of workers read it.
type registry struct {
	mu    sync.RWMutex
	byID  map[netif.Netns]*nsEntry
	order []*nsEntry // oldest first
	gen   uint64     // bumped on every addition
	// host is the host namespace, a resolution candidate even when it is not
	// watched (a pod's macvlan parent lives there).
	hostID netif.Netns
	hostNS *netns.NS // nil once closed
}

// nsEntry is one watched namespace.
type nsEntry struct {
	ns     Namespace
	file   *netns.NS
	paths  map[string]struct{} // files naming it; the host entry may have none
	pinned bool                // the watched host namespace: never removed by its files
	worker *nsWorker
}

func newRegistry() *registry {
	return &registry{byID: make(map[netif.Netns]*nsEntry)}
}

func (r *registry) get(id netif.Netns) *nsEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byID[id]
}

func (r *registry) add(e *nsEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[e.ns.ID] = e
	r.order = append(r.order, e)
	r.gen++
}

func (r *registry) remove(e *nsEntry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byID, e.ns.ID)
	if i := slices.Index(r.order, e); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	}
}

// alive reports whether e (nil: the host namespace, which never goes away)
// is still the registered namespace id. Comparing entries, not inode
// numbers, matters: the kernel reuses nsfs inode numbers.
func (r *registry) alive(id netif.Netns, e *nsEntry) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e == nil {
		return id == r.hostID
	}
	return r.byID[id] == e
}

func (r *registry) generation() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.gen
}

func (r *registry) entries() []*nsEntry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.order)
}

// candidates calls fn with the host namespace (entry nil), then every
// watched namespace newest first, until fn says stop. The fds stay open
// meanwhile: entries are removed under the write lock before their fd is
// closed.
func (r *registry) candidates(fn func(id netif.Netns, e *nsEntry, fd int) (stop bool, err error)) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.hostNS != nil {
		if stop, err := fn(r.hostID, nil, r.hostNS.Fd()); stop || err != nil {
			return err
		}
	}
	for i := len(r.order) - 1; i >= 0; i-- {
		e := r.order[i]
		if e.ns.ID == r.hostID {
			continue
		}
		if stop, err := fn(e.ns.ID, e, e.file.Fd()); stop || err != nil {
			return err
		}
	}
	return nil
}
