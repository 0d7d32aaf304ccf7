package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/ports"
	"github.com/nsint/nsint/pkg/tc"
)

// eventWorkers bounds how many namespaces are handled at once. Events of one
// namespace always go to the same worker, in order.
const eventWorkers = 8

// dispatchEvents fans discovery events out to workers by namespace until
// events closes, then waits for the workers to finish what they hold.
func (a *Agent) dispatchEvents(ctx context.Context, events <-chan ifacewatch.Event) {
	var wg sync.WaitGroup
	queues := make([]chan ifacewatch.Event, eventWorkers)
	for i := range queues {
		queues[i] = make(chan ifacewatch.Event, 256)
		q := queues[i]
		wg.Go(func() {
			for ev := range q {
				a.handle(ev)
			}
		})
	}
	for ev := range events {
		a.metrics.discoveryEvents.WithLabelValues(ev.Kind.String()).Inc()
		queues[uint64(ev.Netns.ID)%eventWorkers] <- ev
	}
	for _, q := range queues {
		close(q)
	}
	wg.Wait()
}

func (a *Agent) handle(ev ifacewatch.Event) {
	var err error
	switch ev.Kind {
	case ifacewatch.NetnsAdded:
		err = a.addNetns(ev.Netns)
	case ifacewatch.NetnsRemoved:
		err = a.removeNetns(ev.Netns)
	case ifacewatch.IfaceAdded, ifacewatch.IfaceChanged:
		err = a.upsertIface(ev.Netns, ev.Iface)
	case ifacewatch.IfaceRemoved:
		err = a.removeIface(ev.Netns, ev.Iface)
	}
	if err != nil {
		a.log.Warn("handle discovery event", "event", ev.String(), "err", err)
	}
}

func (a *Agent) addNetns(ns ifacewatch.Namespace) error {
	id, err := a.acquire(ports.Key{Netns: uint64(ns.ID)})
	if err != nil {
		return fmt.Errorf("local-stack port of netns %d: %w", ns.ID, err)
	}
	info := datapath.PortInfo{NetnsInode: uint64(ns.ID), LocalPort: id, LocalStack: true}
	if err := a.dp.SetPort(id, info); err != nil {
		return fmt.Errorf("configure local-stack port %d of netns %d: %w", id, ns.ID, err)
	}
	r := a.reg
	r.mu.Lock()
	e := &nsEntry{ns: ns, local: id, ifaces: map[int]*portEntry{}}
	r.netns[ns.ID] = e
	r.byPort[id] = &portEntry{id: id, netns: e}
	r.changed()
	r.mu.Unlock()
	a.log.Debug("namespace added", "netns", ns.ID, "path", ns.Path, "localPort", id)
	return nil
}

func (a *Agent) acquire(k ports.Key) (uint16, error) {
	id, err := a.alloc.Acquire(k)
	if errors.Is(err, ports.ErrExhausted) {
		a.metrics.portsExhausted.Inc()
	}
	return id, err
}

func (a *Agent) removeNetns(ns ifacewatch.Namespace) error {
	r := a.reg
	r.mu.Lock()
	e, ok := r.netns[ns.ID]
	var localView api.Port
	if ok {
		delete(r.netns, ns.ID)
		if p := r.byPort[e.local]; p != nil {
			localView = r.apiPort(p) // while its interfaces still name the pod
		}
		r.changed()
	}
	var left []*portEntry
	if ok {
		for _, p := range e.ifaces {
			left = append(left, p)
		}
	}
	r.mu.Unlock()
	if !ok {
		return nil
	}
	var errs []error
	// The watcher removes interfaces first; anything left is removed here.
	for _, p := range left {
		errs = append(errs, a.removeIface(ns, p.iface))
	}
	// The local-stack port goes last: its drops are reported first, and the
	// topology keeps naming it until the collectors have its last reports.
	a.sweeper.sweep("port", datapath.SweepOptions{Ports: []uint16{e.local}})
	r.mu.Lock()
	if p, ok := r.byPort[e.local]; ok {
		r.retire(p, &localView)
	}
	r.mu.Unlock()
	info := datapath.PortInfo{NetnsInode: uint64(ns.ID), LocalPort: e.local, LocalStack: true}
	errs = append(errs, a.dp.DeletePort(e.local, info))
	a.reported.reset(e.local)
	if _, err := a.alloc.ReleaseNetns(uint64(ns.ID)); err != nil {
		errs = append(errs, err)
	}
	a.log.Debug("namespace removed", "netns", ns.ID, "path", ns.Path)
	return errors.Join(errs...)
}

// portInfo describes iface to the datapath: its namespace's local-stack port
// and, for a bridge member whose bridge is known, the bridge's MAC.
func (a *Agent) portInfo(e *nsEntry, iface *ifacewatch.Interface) datapath.PortInfo {
	info := datapath.PortInfo{NetnsInode: uint64(e.ns.ID), Ifindex: uint32(iface.ID.Ifindex), LocalPort: e.local,
		MAC: iface.MAC}
	if iface.MasterIndex != 0 {
		if m, ok := e.ifaces[iface.MasterIndex]; ok && m.iface.Kind == "bridge" && len(m.iface.MAC) == 6 {
			info.BridgePort, info.BridgeMAC = true, m.iface.MAC
		}
	}
	return info
}

func (a *Agent) upsertIface(ns ifacewatch.Namespace, iface *ifacewatch.Interface) error {
	r := a.reg
	r.mu.Lock()
	e, ok := r.netns[ns.ID]
	if !ok {
		r.mu.Unlock()
		return fmt.Errorf("interface %s in unknown netns %d", iface.Name, ns.ID)
	}
	p, existed := e.ifaces[iface.ID.Ifindex]
	var old *ifacewatch.Interface
	if existed {
		old = p.iface
		p.iface = iface
		r.changed()
	}
	r.mu.Unlock()

	if existed {
		a.notifyIfacesChanged()
		// A rename, address or state change keeps the identity and the port.
		if old.MasterIndex != iface.MasterIndex || !bytes.Equal(old.MAC, iface.MAC) {
			return a.reconfigureBridgePorts(e, iface)
		}
		return nil
	}

	key := ports.Key{Netns: uint64(ns.ID), Ifindex: uint32(iface.ID.Ifindex)}
	// An interface without a port ID yet was never seen by an earlier run.
	_, known := a.alloc.Lookup(key)
	id, err := a.acquire(key)
	if err != nil {
		return fmt.Errorf("port for %s (ifindex %d) in netns %d: %w", iface.Name, iface.ID.Ifindex, ns.ID, err)
	}
	r.mu.Lock()
	p = &portEntry{id: id, netns: e, iface: iface}
	e.ifaces[iface.ID.Ifindex] = p
	r.byPort[id] = p
	info := a.portInfo(e, iface)
	r.changed()
	r.mu.Unlock()
	a.notifyIfacesChanged()

	err = a.dp.SetPort(id, info)
	if err != nil {
		err = fmt.Errorf("configure port %d (%s in netns %d): %w", id, iface.Name, ns.ID, err)
	} else {
		err = a.attach(ns, iface, id, !known)
	}
	r.mu.Lock()
	p.handled = true
	if err == nil {
		p.attached = a.att.Mode().String()
	}
	r.changed()
	r.mu.Unlock()
	if err != nil {
		return err
	}
	a.log.Debug("interface attached", "netns", ns.ID, "iface", iface.Name, "ifindex", iface.ID.Ifindex, "port", id)
	if iface.Kind == "bridge" {
		return a.reconfigureBridgePorts(e, iface)
	}
	return nil
}

// reconfigureBridgePorts refreshes the datapath's view of changed and of the
// members of changed when it is a bridge.
func (a *Agent) reconfigureBridgePorts(e *nsEntry, changed *ifacewatch.Interface) error {
	type update struct {
		id   uint16
		info datapath.PortInfo
	}
	var updates []update
	a.reg.mu.RLock()
	for _, p := range e.ifaces {
		if p.iface.ID == changed.ID || p.iface.MasterIndex == changed.ID.Ifindex {
			updates = append(updates, update{p.id, a.portInfo(e, p.iface)})
		}
	}
	a.reg.mu.RUnlock()
	var errs []error
	for _, u := range updates {
		errs = append(errs, a.dp.SetPort(u.id, u.info))
	}
	return errors.Join(errs...)
}

var tcDirs = [2]struct {
	dp datapath.Direction
	tc tc.Direction
}{{datapath.Ingress, tc.Ingress}, {datapath.Egress, tc.Egress}}

func target(ns ifacewatch.Namespace, iface *ifacewatch.Interface) tc.Target {
	path := ns.Path
	if ns.Host {
		path = ""
	}
	return tc.Target{NetnsPath: path, Netns: uint64(ns.ID), Ifindex: iface.ID.Ifindex, Name: iface.Name}
}

// attach builds a dispatcher per direction and attaches it. A vanished
// interface is counted and logged at debug level: its removal event follows.
// noEarlierRun: see tc.Target.
func (a *Agent) attach(ns ifacewatch.Namespace, iface *ifacewatch.Interface, id uint16, noEarlierRun bool) error {
	t := target(ns, iface)
	t.NoEarlierRun = noEarlierRun
	for _, d := range tcDirs {
		prog, err := a.dp.Dispatcher(id, d.dp)
		if err != nil {
			a.metrics.attachErrors.WithLabelValues("load").Inc()
			return fmt.Errorf("dispatcher for %s in netns %d: %w", iface.Name, ns.ID, err)
		}
		pl, err := a.att.Place(t, d.tc, prog)
		prog.Close() // the attachment holds its own reference
		if err == nil && !pl.First() {
			a.log.Warn("another tool's tc filter runs ahead of ours and may hide packets from it (a filter at priority 1)",
				"netns", ns.ID, "iface", iface.Name, "direction", d.tc.String(), "priority", pl.Priority, "ahead", pl.Ahead)
		}
		switch {
		case errors.Is(err, tc.ErrInterfaceGone):
			a.metrics.attachErrors.WithLabelValues("gone").Inc()
			a.log.Debug("interface gone while attaching", "netns", ns.ID, "iface", iface.Name, "err", err)
			return nil
		case err != nil:
			a.metrics.attachErrors.WithLabelValues("attach").Inc()
			return fmt.Errorf("attach %s %s in netns %d: %w", d.tc, iface.Name, ns.ID, err)
		}
	}
	return nil
}

func (a *Agent) removeIface(ns ifacewatch.Namespace, iface *ifacewatch.Interface) error {
	r := a.reg
	r.mu.Lock()
	e, ok := r.netns[ns.ID]
	var p *portEntry
	if ok {
		p = e.ifaces[iface.ID.Ifindex]
	} else {
		// removeNetns already unlinked the namespace; find the port by ID.
		if id, found := a.alloc.Lookup(ports.Key{Netns: uint64(ns.ID), Ifindex: uint32(iface.ID.Ifindex)}); found {
			p = r.byPort[id]
		}
	}
	if p == nil {
		r.mu.Unlock()
		return nil
	}
	if ok {
		delete(e.ifaces, iface.ID.Ifindex)
	}
	r.retire(p, nil)
	delete(r.meta, iface.ID)
	info := datapath.PortInfo{NetnsInode: uint64(ns.ID), Ifindex: uint32(iface.ID.Ifindex), LocalPort: p.netns.local}
	r.changed()
	r.mu.Unlock()

	var errs []error
	t := target(ns, iface)
	for _, d := range tcDirs {
		if err := a.att.Detach(t, d.tc); err != nil && !errors.Is(err, tc.ErrInterfaceGone) {
			errs = append(errs, err)
		}
	}
	// Nothing counts on the port any more: report what it holds before the
	// port and its counters go.
	a.sweeper.sweep("port", datapath.SweepOptions{Ports: []uint16{p.id}})
	errs = append(errs, a.dp.DeletePort(p.id, info))
	a.reported.reset(p.id)
	errs = append(errs, a.alloc.Release(ports.Key{Netns: uint64(ns.ID), Ifindex: uint32(iface.ID.Ifindex)}))
	a.log.Debug("interface removed", "netns", ns.ID, "iface", iface.Name, "port", p.id)
	return errors.Join(errs...)
}
