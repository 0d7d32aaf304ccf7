package agent

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/netif"
)

// namer gives interfaces their Kubernetes names: a *k8s.Enricher, or a test's
// stand-in.
type namer interface {
	// Run follows the API server until ctx ends.
	Run(ctx context.Context) error
	// Changes signals that pods or networks changed.
	Changes() <-chan struct{}
	// Match names the interfaces it can attribute, by index into ifaces.
	Match(ifaces []k8s.Iface) map[int]k8s.Meta
	// Stats are the enricher's counters, for the debug log.
	Stats() k8s.Stats
}

// runNaming keeps the registry's Kubernetes names current: it re-matches
// every interface when pods or networks change and when interfaces do. The
// agent works the same without it; names arrive when the API server answers.
func (h *eventHandler) runNaming(ctx context.Context, n namer) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-n.Changes():
		case <-h.ifacesChanged:
		}
		h.rematch(n)
	}
}

// rematch asks n about every interface and stores the answers.
func (h *eventHandler) rematch(n namer) {
	ifaces := h.reg.namingInput()
	matched := n.Match(ifaces)
	if h.log.Enabled(context.Background(), slog.LevelDebug) {
		h.log.Debug("kubernetes names matched", "interfaces", len(ifaces), "matched", len(matched), "stats", fmt.Sprintf("%+v", n.Stats()))
	}
	next := make(map[netif.ID]podMeta, len(matched))
	for idx, m := range matched {
		pod := &api.Pod{Namespace: m.Pod.Namespace, Name: m.Pod.Name, UID: m.Pod.UID}
		next[ifaces[idx].ID] = podMeta{Pod: pod, Network: m.Network, Role: m.Role, NetworkType: m.NetworkType}
	}
	h.reg.setNames(next)
}

func sameMeta(a, b map[netif.ID]podMeta) bool {
	if len(a) != len(b) {
		return false
	}
	for k, va := range a {
		vb, ok := b[k]
		if !ok || va.Network != vb.Network || va.Role != vb.Role || va.NetworkType != vb.NetworkType ||
			(va.Pod == nil) != (vb.Pod == nil) || (va.Pod != nil && *va.Pod != *vb.Pod) {
			return false
		}
	}
	return true
}

// notifyIfacesChanged wakes the naming loop without blocking.
func (h *eventHandler) notifyIfacesChanged() {
	select {
	case h.ifacesChanged <- struct{}{}:
	default:
	}
}
