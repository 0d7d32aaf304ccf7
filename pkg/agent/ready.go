package agent

import (
	"context"
	"sync"
	"time"
)

// waitInitialDiscovery returns once the watcher has listed the namespaces
// present at start and every namespace and interface of its snapshot has been
// handled (attached, or failed and counted).
func (a *Agent) waitInitialDiscovery(ctx context.Context) error {
	select {
	case <-a.watch.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !a.handledAll() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// handledAll reports whether the registry has handled everything the
// watcher's snapshot holds. Interfaces that vanished meanwhile are not waited
// for: they are no longer in the snapshot.
func (a *Agent) handledAll() bool { return a.reg.handledAll(a.watch.Snapshot()) }

// readiness is what /readyz answers: ready, or why not. Once the agent is
// stopping it stays not ready, with the reason stop gave.
type readiness struct {
	mu       sync.Mutex
	ready    bool
	why      string
	stopping bool
}

// notYet says why the agent is not ready yet.
func (r *readiness) notYet(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopping {
		r.ready, r.why = false, why
	}
}

// setReady marks the agent ready, unless it is stopping.
func (r *readiness) setReady() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopping {
		r.ready, r.why = true, ""
	}
}

// stop marks the agent not ready for good; the first reason given stays.
func (r *readiness) stop(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.stopping {
		r.ready, r.why, r.stopping = false, why, true
	}
}

func (r *readiness) get() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready, r.why
}
