package agent

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/netif"
)

// registry is the agent's view of what it watches: namespaces, their
// local-stack ports, the ports of their interfaces and their Kubernetes
// names. It answers the API. Its lock is taken here and nowhere else: every
// method is safe for concurrent use, and those whose name ends in Locked
// expect the caller (a method of this file) to hold it.
type registry struct {
	mu     sync.RWMutex
	gen    uint64
	netns  map[netif.Netns]*nsEntry
	byPort map[uint16]*portEntry
	meta   map[netif.ID]podMeta // Kubernetes names, when known
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
	ifaces map[netif.Ifindex]*portEntry
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
		netns:  map[netif.Netns]*nsEntry{},
		byPort: map[uint16]*portEntry{},
		meta:   map[netif.ID]podMeta{},
		gone:   map[uint16]gonePort{},
	}
}

// retireLocked removes port p, keeping its API view — view when not nil,
// else the current one — as gone. Callers retire p before forgetting its
// Kubernetes names.
func (r *registry) retireLocked(p *portEntry, view *api.Port) {
	var ap api.Port
	if view != nil && view.ID == p.id {
		ap = *view
	} else {
		ap = r.apiPortLocked(p)
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

func (r *registry) changedLocked() { r.gen++ }

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
		meta.Pod = r.netnsPodLocked(p.netns)
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
		t.Ports = append(t.Ports, r.apiPortLocked(p))
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
	return api.Netns{Inode: ns.ID, Name: ns.Name, Path: ns.Path, Host: ns.Host}
}

func (r *registry) apiPortLocked(p *portEntry) api.Port {
	out := api.Port{ID: p.id, Netns: apiNetns(p.netns.ns), IPs: []string{}, AttachMode: p.attached}
	if p.iface == nil {
		out.Name, out.LocalStack = api.LocalStackName, true
		out.Pod = r.netnsPodLocked(p.netns)
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

// netnsPodLocked is the pod a namespace belongs to, when one of its
// interfaces has been matched to one.
func (r *registry) netnsPodLocked(e *nsEntry) *api.Pod {
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
		n := api.Namespace{Netns: apiNetns(e.ns), Interfaces: len(e.ifaces), LocalPort: e.local, Pod: r.netnsPodLocked(e)}
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

// addNetns records namespace ns and its local-stack port.
func (r *registry) addNetns(ns ifacewatch.Namespace, local uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := &nsEntry{ns: ns, local: local, ifaces: map[netif.Ifindex]*portEntry{}}
	r.netns[ns.ID] = e
	r.byPort[local] = &portEntry{id: local, netns: e}
	r.changedLocked()
}

// unlinkedNetns is what is left of a namespace the registry forgot.
type unlinkedNetns struct {
	local uint16
	// localView is the local-stack port's API view while the namespace's
	// interfaces still named its pod.
	localView api.Port
	ifaces    []*ifacewatch.Interface // not removed yet
}

// unlinkNetns forgets namespace id. Its ports stay known until retired: the
// interfaces left (removeIface) and the local-stack port (retirePort).
func (r *registry) unlinkNetns(id netif.Netns) (unlinkedNetns, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.netns[id]
	if !ok {
		return unlinkedNetns{}, false
	}
	delete(r.netns, id)
	u := unlinkedNetns{local: e.local}
	if p := r.byPort[e.local]; p != nil {
		u.localView = r.apiPortLocked(p)
	}
	for _, p := range e.ifaces {
		u.ifaces = append(u.ifaces, p.iface)
	}
	r.changedLocked()
	return u, true
}

// retirePort removes port id, keeping view (when it is id's) or its current
// view among the gone ports.
func (r *registry) retirePort(id uint16, view *api.Port) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byPort[id]; ok {
		r.retireLocked(p, view)
		r.changedLocked()
	}
}

// updateIface replaces the attributes of interface iface of namespace ns
// when it is known (a rename, an address or state change: same identity,
// same port) and returns the earlier ones; nil when it is new.
func (r *registry) updateIface(ns netif.Netns, iface *ifacewatch.Interface) (*ifacewatch.Interface, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.netns[ns]
	if !ok {
		return nil, fmt.Errorf("interface %s in unknown netns %d", iface.Name, ns)
	}
	p, ok := e.ifaces[iface.ID.Ifindex]
	if !ok {
		return nil, nil
	}
	old := p.iface
	p.iface = iface
	r.changedLocked()
	return old, nil
}

// addIface records new interface iface of namespace ns with port id, not
// attached yet, and returns its datapath configuration.
func (r *registry) addIface(ns netif.Netns, id uint16, iface *ifacewatch.Interface) (datapath.PortInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.netns[ns]
	if !ok {
		return datapath.PortInfo{}, fmt.Errorf("interface %s in unknown netns %d", iface.Name, ns)
	}
	p := &portEntry{id: id, netns: e, iface: iface}
	e.ifaces[iface.ID.Ifindex] = p
	r.byPort[id] = p
	r.changedLocked()
	return r.portInfoLocked(e, iface), nil
}

// attachDone marks port id's first attach attempt over; mode is the attach
// mode when both hooks are attached, "" when the attempt failed.
func (r *registry) attachDone(id uint16, mode string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.byPort[id]; ok {
		p.handled = true
		p.attached = mode
		r.changedLocked()
	}
}

// portUpdate is a port's new datapath configuration.
type portUpdate struct {
	id   uint16
	info datapath.PortInfo
}

// bridgeUpdates returns the datapath configuration of changed and, when it
// is a bridge, of its members: what a bridge's MAC or membership change
// affects.
func (r *registry) bridgeUpdates(ns netif.Netns, changed netif.ID) []portUpdate {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.netns[ns]
	if !ok {
		return nil
	}
	var out []portUpdate
	for _, p := range e.ifaces {
		if p.iface.ID == changed || p.iface.MasterIndex == changed.Ifindex {
			out = append(out, portUpdate{p.id, r.portInfoLocked(e, p.iface)})
		}
	}
	return out
}

// portInfoLocked describes iface to the datapath: its namespace's
// local-stack port and, for a bridge member whose bridge is known, the
// bridge's MAC.
func (r *registry) portInfoLocked(e *nsEntry, iface *ifacewatch.Interface) datapath.PortInfo {
	info := datapath.PortInfo{ID: iface.ID, LocalPort: e.local, MAC: iface.MAC}
	if iface.MasterIndex != 0 {
		if m, ok := e.ifaces[iface.MasterIndex]; ok && m.iface.Kind == "bridge" && len(m.iface.MAC) == 6 {
			info.BridgePort, info.BridgeMAC = true, m.iface.MAC
		}
	}
	return info
}

// removeIface forgets interface iface of namespace ns and retires its port.
// allocated is the port the allocator holds for it (found: whether it holds
// one), by which the port is found once its namespace is unlinked. It
// returns the port and its namespace's local-stack port.
func (r *registry) removeIface(ns netif.Netns, iface netif.ID, allocated uint16, found bool) (port, local uint16, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var p *portEntry
	e, linked := r.netns[ns]
	switch {
	case linked:
		p = e.ifaces[iface.Ifindex]
	case found:
		p = r.byPort[allocated]
	}
	if p == nil {
		return 0, 0, false
	}
	if linked {
		delete(e.ifaces, iface.Ifindex)
	}
	r.retireLocked(p, nil)
	delete(r.meta, iface)
	r.changedLocked()
	return p.id, p.netns.local, true
}

// liveIDs are the identities of every namespace's local stack and every
// interface known.
func (r *registry) liveIDs() map[netif.ID]bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	live := map[netif.ID]bool{}
	for ns, e := range r.netns {
		live[netif.LocalStack(ns)] = true
		for _, p := range e.ifaces {
			live[p.iface.ID] = true
		}
	}
	return live
}

// handledAll reports whether every namespace and interface of snap has been
// handled (attached, or its attach attempt failed).
func (r *registry) handledAll(snap []ifacewatch.NamespaceState) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, ns := range snap {
		e, ok := r.netns[ns.ID]
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

// namingInput lists every interface as the Kubernetes matcher takes it.
func (r *registry) namingInput() []k8s.Iface {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var ifaces []k8s.Iface
	for _, ns := range r.netns {
		for _, p := range ns.ifaces {
			i := p.iface
			in := k8s.Iface{ID: i.ID, NetnsPath: ns.ns.Path, Name: i.Name, MAC: i.MAC, PCIAddress: i.PCIAddress}
			for _, pr := range i.Addrs {
				in.IPs = append(in.IPs, pr.Addr())
			}
			ifaces = append(ifaces, in)
		}
	}
	return ifaces
}

// setNames replaces the Kubernetes names of the interfaces. Each interface
// and namespace also keeps the last pod it was matched to, for its gone
// port once Kubernetes forgets the pod.
func (r *registry) setNames(next map[netif.ID]podMeta) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ns := range r.netns {
		for _, p := range ns.ifaces {
			if m, ok := next[p.iface.ID]; ok && m.Pod != nil {
				p.lastMeta, ns.lastPod = m, m.Pod
			}
		}
	}
	if !sameMeta(r.meta, next) {
		r.meta = next
		r.changedLocked()
	}
}
