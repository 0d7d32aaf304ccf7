package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/k8s"
)

// kubernetesWanted decides whether to enrich ports with Kubernetes names:
// "on", "off", or "auto" (when running in a pod or given a kubeconfig).
func kubernetesWanted(mode, kubeconfig string) bool {
	switch mode {
	case "on":
		return true
	case "off":
		return false
	}
	return kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
}

// runEnrichment keeps the registry's Kubernetes names current: it re-matches
// every interface when pods or networks change and when interfaces do. The
// agent works the same without it; names arrive when the API server answers.
func (a *Agent) runEnrichment(ctx context.Context, e *k8s.Enricher) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.Changes():
		case <-a.ifacesChanged:
		}
		a.rematch(e)
	}
}

// rematch asks the enricher about every interface and stores the answers.
func (a *Agent) rematch(e *k8s.Enricher) {
	a.reg.mu.RLock()
	var (
		ids    []ifacewatch.IfaceID
		ifaces []k8s.Iface
	)
	for _, ns := range a.reg.netns {
		for _, p := range ns.ifaces {
			i := p.iface
			in := k8s.Iface{NetnsInode: uint64(ns.ns.ID), NetnsPath: ns.ns.Path, Name: i.Name, MAC: i.MAC,
				PCIAddress: i.PCIAddress}
			for _, pr := range i.Addrs {
				in.IPs = append(in.IPs, pr.Addr())
			}
			ids = append(ids, i.ID)
			ifaces = append(ifaces, in)
		}
	}
	a.reg.mu.RUnlock()

	matched := e.Match(ifaces)
	if a.log.Enabled(context.Background(), slog.LevelDebug) {
		a.log.Debug("kubernetes names matched", "interfaces", len(ifaces), "matched", len(matched), "stats", fmt.Sprintf("%+v", e.Stats()))
	}
	next := make(map[ifacewatch.IfaceID]podMeta, len(matched))
	for idx, m := range matched {
		pod := &api.Pod{Namespace: m.Pod.Namespace, Name: m.Pod.Name, UID: m.Pod.UID}
		next[ids[idx]] = podMeta{Pod: pod, Network: m.Network, Role: m.Role, NetworkType: m.NetworkType}
	}

	a.reg.mu.Lock()
	defer a.reg.mu.Unlock()
	for _, ns := range a.reg.netns {
		for _, p := range ns.ifaces {
			if m, ok := next[p.iface.ID]; ok && m.Pod != nil {
				p.lastMeta, ns.lastPod = m, m.Pod
			}
		}
	}
	if !sameMeta(a.reg.meta, next) {
		a.reg.meta = next
		a.reg.changed()
	}
}

func sameMeta(a, b map[ifacewatch.IfaceID]podMeta) bool {
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

// notifyIfacesChanged wakes the enrichment loop without blocking.
func (a *Agent) notifyIfacesChanged() {
	select {
	case a.ifacesChanged <- struct{}{}:
	default:
	}
}
