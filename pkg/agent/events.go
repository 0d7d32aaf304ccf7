package agent

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/ports"
	"github.com/nsint/nsint/pkg/tc"
)

// eventHandler turns what discovery and Kubernetes say into ports,
// datapath configuration and attachments: a namespace or interface added,
// changed (renamed, readdressed), moved (removed from one namespace, added to
// another: a new identity), removed, a namespace gone with its interfaces,
// and Kubernetes names arriving. The state it builds is the registry's, whose
// methods take its lock; the side effects (port IDs, the datapath, tc) happen
// outside it.
type eventHandler struct {
	reg      *registry
	dp       *datapath.Datapath
	att      *tc.Attacher
	alloc    *ports.Allocator
	sweeper  *sweeper
	reported *reportedPackets
	metrics  *metrics
	log      *slog.Logger

	ifacesChanged chan struct{} // wakes Kubernetes naming; buffer 1
}

// run hands discovery events to an eventScheduler (in order per namespace,
// a namespace's independent interface additions side by side, namespaces
// never waiting for each other; the attacher bounds how many attachments run
// at once) until events closes, then waits for them to finish.
func (h *eventHandler) run(events <-chan ifacewatch.Event) {
	s := newEventScheduler(h.handle)
	for ev := range events {
		h.metrics.discoveryEvents.WithLabelValues(ev.Kind.String()).Inc()
		s.add(ev)
	}
	s.wait()
}

func (h *eventHandler) handle(ev ifacewatch.Event) {
	var err error
	switch ev.Kind {
	case ifacewatch.NetnsAdded:
		err = h.addNetns(ev.Netns)
	case ifacewatch.NetnsRemoved:
		err = h.removeNetns(ev.Netns)
	case ifacewatch.IfaceAdded, ifacewatch.IfaceChanged:
		err = h.upsertIface(ev.Netns, ev.Iface)
	case ifacewatch.IfaceRemoved:
		err = h.removeIface(ev.Netns, ev.Iface)
	}
	if err != nil {
		h.log.Warn("handle discovery event", "event", ev.String(), "err", err)
	}
}

func (h *eventHandler) addNetns(ns ifacewatch.Namespace) error {
	id, err := h.acquire(netif.LocalStack(ns.ID))
	if err != nil {
		return fmt.Errorf("local-stack port of netns %d: %w", ns.ID, err)
	}
	info := datapath.PortInfo{ID: netif.LocalStack(ns.ID), LocalPort: id, LocalStack: true}
	if err := h.dp.SetPort(id, info); err != nil {
		return fmt.Errorf("configure local-stack port %d of netns %d: %w", id, ns.ID, err)
	}
	h.reg.addNetns(ns, id)
	h.log.Debug("namespace added", "netns", ns.ID, "path", ns.Path, "localPort", id)
	return nil
}

func (h *eventHandler) acquire(k netif.ID) (uint16, error) {
	id, err := h.alloc.Acquire(k)
	if errors.Is(err, ports.ErrExhausted) {
		h.metrics.portsExhausted.Inc()
	}
	return id, err
}

func (h *eventHandler) removeNetns(ns ifacewatch.Namespace) error {
	u, ok := h.reg.unlinkNetns(ns.ID)
	if !ok {
		return nil
	}
	var errs []error
	// The watcher removes interfaces first; anything left is removed here.
	for _, iface := range u.ifaces {
		errs = append(errs, h.removeIface(ns, iface))
	}
	// The local-stack port goes last: its drops are reported first, and the
	// topology keeps naming it until the collectors have its last reports.
	h.sweeper.sweep("port", datapath.SweepOptions{Ports: []uint16{u.local}})
	h.reg.retirePort(u.local, &u.localView)
	info := datapath.PortInfo{ID: netif.LocalStack(ns.ID), LocalPort: u.local, LocalStack: true}
	errs = append(errs, h.dp.DeletePort(u.local, info))
	h.reported.reset(u.local)
	if _, err := h.alloc.ReleaseNetns(ns.ID); err != nil {
		errs = append(errs, err)
	}
	h.log.Debug("namespace removed", "netns", ns.ID, "path", ns.Path)
	return errors.Join(errs...)
}

func (h *eventHandler) upsertIface(ns ifacewatch.Namespace, iface *ifacewatch.Interface) error {
	old, err := h.reg.updateIface(ns.ID, iface)
	if err != nil {
		return err
	}
	if old != nil {
		h.notifyIfacesChanged()
		// A rename, address or state change keeps the identity and the port.
		if old.MasterIndex != iface.MasterIndex || !bytes.Equal(old.MAC, iface.MAC) {
			return h.reconfigureBridgePorts(ns, iface)
		}
		return nil
	}

	// An interface without a port ID yet was never seen by an earlier run.
	_, known := h.alloc.Lookup(iface.ID)
	id, err := h.acquire(iface.ID)
	if err != nil {
		return fmt.Errorf("port for %s (ifindex %d) in netns %d: %w", iface.Name, iface.ID.Ifindex, ns.ID, err)
	}
	info, err := h.reg.addIface(ns.ID, id, iface)
	if err != nil {
		return err
	}
	h.notifyIfacesChanged()

	err = h.dp.SetPort(id, info)
	if err != nil {
		err = fmt.Errorf("configure port %d (%s in netns %d): %w", id, iface.Name, ns.ID, err)
	} else {
		err = h.attach(ns, iface, id, !known)
	}
	mode := ""
	if err == nil {
		mode = h.att.Mode().String()
	}
	h.reg.attachDone(id, mode)
	if err != nil {
		return err
	}
	h.log.Debug("interface attached", "netns", ns.ID, "iface", iface.Name, "ifindex", iface.ID.Ifindex, "port", id)
	if iface.Kind == "bridge" {
		return h.reconfigureBridgePorts(ns, iface)
	}
	return nil
}

// reconfigureBridgePorts refreshes the datapath's view of changed and of the
// members of changed when it is a bridge.
func (h *eventHandler) reconfigureBridgePorts(ns ifacewatch.Namespace, changed *ifacewatch.Interface) error {
	var errs []error
	for _, u := range h.reg.bridgeUpdates(ns.ID, changed.ID) {
		errs = append(errs, h.dp.SetPort(u.id, u.info))
	}
	return errors.Join(errs...)
}

func target(ns ifacewatch.Namespace, iface *ifacewatch.Interface) tc.Target {
	path := ns.Path
	if ns.Host {
		path = ""
	}
	return tc.Target{ID: iface.ID, NetnsPath: path, Name: iface.Name}
}

// attach builds a dispatcher per direction and attaches it, both directions
// at once (a TCX attachment waits for a kernel RCU grace period while it
// holds RTNL; the two hooks' waits overlap). A vanished interface is counted
// and logged at debug level: its removal event follows. noEarlierRun: see
// tc.Target.
func (h *eventHandler) attach(ns ifacewatch.Namespace, iface *ifacewatch.Interface, id uint16, noEarlierRun bool) error {
	t := target(ns, iface)
	t.NoEarlierRun = noEarlierRun
	var errs [len(netif.Directions)]error
	var wg sync.WaitGroup
	for i, dir := range netif.Directions {
		wg.Go(func() { errs[i] = h.attachHook(ns, iface, id, t, dir) })
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

// attachHook attaches the dispatcher of one direction.
func (h *eventHandler) attachHook(ns ifacewatch.Namespace, iface *ifacewatch.Interface, id uint16, t tc.Target, dir netif.Direction) error {
	prog, err := h.dp.Dispatcher(id, dir)
	if err != nil {
		h.metrics.attachErrors.WithLabelValues("load").Inc()
		return fmt.Errorf("dispatcher for %s in netns %d: %w", iface.Name, ns.ID, err)
	}
	pl, err := h.att.Place(t, dir, prog)
	prog.Close() // the attachment holds its own reference
	if err == nil && !pl.First() {
		h.log.Warn("another tool's tc filter runs ahead of ours and may hide packets from it (a filter at priority 1)",
			"netns", ns.ID, "iface", iface.Name, "direction", dir.String(), "priority", pl.Priority, "ahead", pl.Ahead)
	}
	switch {
	case errors.Is(err, tc.ErrInterfaceGone):
		h.metrics.attachErrors.WithLabelValues("gone").Inc()
		h.log.Debug("interface gone while attaching", "netns", ns.ID, "iface", iface.Name, "err", err)
		return nil
	case err != nil:
		h.metrics.attachErrors.WithLabelValues("attach").Inc()
		return fmt.Errorf("attach %s %s in netns %d: %w", dir, iface.Name, ns.ID, err)
	}
	return nil
}

func (h *eventHandler) removeIface(ns ifacewatch.Namespace, iface *ifacewatch.Interface) error {
	allocated, found := h.alloc.Lookup(iface.ID)
	id, local, ok := h.reg.removeIface(ns.ID, iface.ID, allocated, found)
	if !ok {
		return nil
	}
	info := datapath.PortInfo{ID: iface.ID, LocalPort: local}

	var errs []error
	t := target(ns, iface)
	for _, dir := range netif.Directions {
		if err := h.att.Detach(t, dir); err != nil && !errors.Is(err, tc.ErrInterfaceGone) {
			errs = append(errs, err)
		}
	}
	// Nothing counts on the port any more: report what it holds before the
	// port and its counters go.
	h.sweeper.sweep("port", datapath.SweepOptions{Ports: []uint16{id}})
	errs = append(errs, h.dp.DeletePort(id, info))
	h.reported.reset(id)
	errs = append(errs, h.alloc.Release(iface.ID))
	h.log.Debug("interface removed", "netns", ns.ID, "iface", iface.Name, "port", id)
	return errors.Join(errs...)
}
