package agent

import (
	"context"
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
func (a *Agent) handledAll() bool {
	snap := a.watch.Snapshot()
	a.reg.mu.RLock()
	defer a.reg.mu.RUnlock()
	for _, ns := range snap {
		e, ok := a.reg.netns[ns.ID]
		if !ok {
			return false
		}
		for _, i := range ns.Interfaces {
			p, ok := e.ifaces[i.ID.Ifindex]
			if !ok || !p.handled {
				return false
			}
		}
	}
	return true
}
