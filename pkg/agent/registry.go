package agent

import (
	"sort"
	"sync"
	"time"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/api"
)

// registry is the agent's view of what it watches: namespaces, their
// local-stack ports, and the ports of their interfaces. It answers the API.
type registry struct {
	mu     sync.RWMutex
	gen    uint64
	netns  map[ifacewatch.NetnsID]*nsEntry
	byPort map[uint16]*portEntry
	meta   map[ifacewatch.IfaceID]podMeta // Kubernetes names, when known
	// gone keeps the API view of removed ports for goneRetention
	// (api.Topology.GonePorts).
	gone map[uint16]gonePort
}

type gonePort struct {
	port api.Port
	at   time.Time
}

// goneRetention is how long a removed port stays in the topology's gone
// ports: its last reports (swept when it went away) leave just before, and
// a collector that never saw the port must still resolve them. Port IDs are
// not reused for much longer than that (pkg/ports).
const goneRetention = 10 * time.Minute

type nsEntry struct {
	ns     ifacewatch.Namespace
	local  uint16
	ifaces map[int]*portEntry // by ifindex
	// lastPod is the pod its interfaces were last matched to: Kubernetes
	// forgets a deleted pod before its namespace goes, and the gone port
	// of its local stack still names the pod (retire).
	lastPod *api.Pod
}

type portEntry struct {
	id       uint16
	netns    *nsEntry
	iface    *ifacewatch.Interface // nil for the local-stack port
	attached string                // attach mode once both hooks are attached
	handled  bool                  // the first attach attempt is over
	// lastMeta is what Kubernetes last said of the interface, kept for its
	// gone port once the pod is forgotten (see nsEntry.lastPod).
	lastMeta podMeta
}

// podMeta is what Kubernetes says about an interface.
type podMeta struct {
	Pod         *api.Pod
	Network     string
	Role        string
	NetworkType string
}

func newRegistry() *registry {
	return &registry{
		netns:  map[ifacewatch.NetnsID]*nsEntry{},
		byPort: map[uint16]*portEntry{},
		meta:   map[ifacewatch.IfaceID]podMeta{},
		gone:   map[uint16]gonePort{},
	}
}

// retire removes port p, keeping its API view — view when not nil, else
// the current one — as gone. Callers hold r.mu and retire p before
// forgetting its Kubernetes names.
func (r *registry) retire(p *portEntry, view *api.Port) {
	var ap api.Port
	if view != nil && view.ID == p.id {
		ap = *view
	} else {
		ap = r.apiPort(p)
	}
	switch {
	case ap.Pod != nil:
	case p.iface != nil && p.lastMeta.Pod != nil:
		m := p.lastMeta
		ap.Pod, ap.Network, ap.Role, ap.NetworkType = m.Pod, m.Network, m.Role, m.NetworkType
	case p.iface == nil:
		ap.Pod = p.netns.lastPod
	}
	r.gone[p.id] = gonePort{port: ap, at: time.Now()}
	delete(r.byPort, p.id)
}

func (r *registry) changed() { r.gen++ }

// portLabels returns the labels of port id's metrics; ok is false when the
// port is unknown.
func (r *registry) portLabels(id uint16) (name, netns string, meta podMeta, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.byPort[id]
	if !ok {
		return "", "", podMeta{}, false
	}
	name = api.LocalStackName
	if p.iface != nil {
		name = p.iface.Name
		meta = r.meta[p.iface.ID]
	} else {
		meta.Pod = r.netnsPod(p.netns)
	}
	return name, netnsLabel(p.netns.ns), meta, true
}

func netnsLabel(ns ifacewatch.Namespace) string {
	if ns.Host {
		return "host"
	}
	return ns.Name
}

// ports lists the port IDs currently known.
func (r *registry) ports() []uint16 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]uint16, 0, len(r.byPort))
	for id := range r.byPort {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// topology builds the API view. switchID and node come from the agent.
func (r *registry) topology(switchID uint32, node string) api.Topology {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, g := range r.gone {
		if time.Since(g.at) > goneRetention {
			delete(r.gone, id)
		}
	}
	t := api.Topology{SwitchID: switchID, Node: node, Generation: r.gen, Ports: make([]api.Port, 0, len(r.byPort))}
	for _, p := range r.byPort {
		t.Ports = append(t.Ports, r.apiPort(p))
	}
	sort.Slice(t.Ports, func(i, j int) bool { return t.Ports[i].ID < t.Ports[j].ID })
	for id, g := range r.gone {
		if _, reused := r.byPort[id]; !reused {
			t.GonePorts = append(t.GonePorts, g.port)
		}
	}
	sort.Slice(t.GonePorts, func(i, j int) bool { return t.GonePorts[i].ID < t.GonePorts[j].ID })
	return t
}

func apiNetns(ns ifacewatch.Namespace) api.Netns {
	return api.Netns{Inode: uint64(ns.ID), Name: ns.Name, Path: ns.Path, Host: ns.Host}
}

func (r *registry) apiPort(p *portEntry) api.Port {
	out := api.Port{ID: p.id, Netns: apiNetns(p.netns.ns), IPs: []string{}, AttachMode: p.attached}
	if p.iface == nil {
		out.Name, out.LocalStack = api.LocalStackName, true
		out.Pod = r.netnsPod(p.netns)
		return out
	}
	i := p.iface
	out.Name, out.Ifindex, out.Kind, out.Driver = i.Name, i.ID.Ifindex, i.Kind, i.Driver
	out.PCIAddress, out.OperState = i.PCIAddress, i.OperState
	if len(i.MAC) > 0 {
		out.MAC = i.MAC.String()
	}
	for _, a := range i.Addrs {
		out.IPs = append(out.IPs, a.Addr().String())
	}
	if m, ok := r.meta[i.ID]; ok {
		out.Pod, out.Network, out.Role, out.NetworkType = m.Pod, m.Network, m.Role, m.NetworkType
	}
	return out
}

// netnsPod is the pod a namespace belongs to, when one of its interfaces has
// been matched to one. Callers hold r.mu.
func (r *registry) netnsPod(e *nsEntry) *api.Pod {
	for _, p := range e.ifaces {
		if m, ok := r.meta[p.iface.ID]; ok && m.Pod != nil {
			return m.Pod
		}
	}
	return nil
}

// namespaces builds the /api/v1/namespaces view.
func (r *registry) namespaces() []api.Namespace {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]api.Namespace, 0, len(r.netns))
	for _, e := range r.netns {
		n := api.Namespace{Netns: apiNetns(e.ns), Interfaces: len(e.ifaces), LocalPort: e.local, Pod: r.netnsPod(e)}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out
}

// attachedByMode counts ports with both hooks attached, by mode.
func (r *registry) attachedByMode() map[string]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := map[string]int{}
	for _, p := range r.byPort {
		if p.attached != "" {
			out[p.attached]++
		}
	}
	return out
}
