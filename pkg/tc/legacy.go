package tc

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

// placeAttempts bounds how often attachLegacy re-reads a hook when another
// tool took the priority it chose in the meantime.
const placeAttempts = 3

func filterName(dir netif.Direction) string { return "nsint-" + dir.String() }

func clsactParent(dir netif.Direction) uint32 {
	if dir == netif.Egress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// netlinkHandle opens a netlink socket inside the namespace; the socket keeps
// talking to that namespace after the thread has switched back.
func (n *nsRef) netlinkHandle() (*netlink.Handle, error) {
	var h *netlink.Handle
	err := n.do(func() error {
		var err error
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink handle in netns %s: %w", n.path, err)
	}
	return h, nil
}

// attachLegacy makes sure a clsact qdisc exists (creating it only when
// absent) and puts our filter ahead of every other filter on the hook (see
// hook.plan), replacing our earlier one in place when it is still there.
func (a *Attacher) attachLegacy(ns *nsRef, t Target, dir netif.Direction, prog *ebpf.Program) (Placement, error) {
	h, err := ns.netlinkHandle()
	if err != nil {
		return Placement{}, err
	}
	defer h.Close()
	lnk, err := h.LinkByIndex(int(t.Ifindex))
	if err != nil {
		return Placement{}, classify(fmt.Errorf("find link: %w", err))
	}
	clsact := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: int(t.Ifindex),
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	// Exclusive create: an existing clsact (ours or anyone's) is left as is.
	if err := h.QdiscAdd(clsact); err != nil && !errors.Is(err, unix.EEXIST) {
		return Placement{}, classify(fmt.Errorf("add clsact qdisc: %w", err))
	}
	for attempt := 1; ; attempt++ {
		filters, err := h.FilterList(lnk, clsactParent(dir))
		if err != nil {
			return Placement{}, classify(fmt.Errorf("list filters: %w", err))
		}
		hk := readHook(filters, dir, a.cfg.Handle)
		p, err := hk.plan(a.cfg.Priority)
		if err != nil {
			return Placement{}, err
		}
		taken, err := a.applyLegacy(h, t.Ifindex, dir, prog, p)
		if taken && attempt < placeAttempts {
			continue
		}
		if err != nil {
			return Placement{}, err
		}
		return Placement{
			Replaced: len(hk.ours) > 0,
			Moved:    len(hk.ours) > 0 && p.keep == nil,
			Priority: p.prio,
			Ahead:    p.ahead,
		}, nil
	}
}

// applyLegacy carries out p. Our filters never count a packet twice: a
// filter of ours that is to be retired runs the pass program before ours at
// p.prio runs prog, and is deleted after. The one moment in between (two
// netlink requests back to back) is the only time the hook goes unobserved,
// and only when ours moves. taken reports that the new filter could not be
// added at p.prio (another tool took it since the hook was read); nothing
// has changed then.
func (a *Attacher) applyLegacy(h *netlink.Handle, ifindex netif.Ifindex, dir netif.Direction, prog *ebpf.Program, p legacyPlan) (taken bool, err error) {
	var pass *ebpf.Program
	if len(p.retire) > 0 {
		if pass, err = a.passProgram(0); err != nil {
			return false, err
		}
	}
	target := p.keep
	if target == nil {
		target = &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{
			LinkIndex: int(ifindex),
			Parent:    clsactParent(dir),
			Handle:    a.cfg.Handle,
			Priority:  p.prio,
			Protocol:  unix.ETH_P_ALL,
		}}
		first := prog
		if pass != nil {
			first = pass
		}
		if err := h.FilterAdd(ourFilter(target, dir, first)); err != nil {
			err = classify(fmt.Errorf("add filter at priority %d: %w", p.prio, err))
			return errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINVAL), err
		}
		if pass == nil {
			return false, nil
		}
	}
	for _, f := range p.retire {
		if err := h.FilterReplace(ourFilter(f, dir, pass)); err != nil {
			return false, classify(fmt.Errorf("quiet our filter at priority %d: %w", f.Priority, err))
		}
	}
	if err := h.FilterReplace(ourFilter(target, dir, prog)); err != nil {
		return false, classify(fmt.Errorf("replace filter at priority %d: %w", target.Priority, err))
	}
	var errs []error
	for _, f := range p.retire {
		if err := deleteFilter(h, f); err != nil {
			errs = append(errs, fmt.Errorf("delete our filter at priority %d: %w", f.Priority, err))
		}
	}
	return false, classify(errors.Join(errs...))
}

// ourFilter is f (its hook, priority, protocol and handle) as ours running
// prog.
func ourFilter(f *netlink.BpfFilter, dir netif.Direction, prog *ebpf.Program) *netlink.BpfFilter {
	return &netlink.BpfFilter{FilterAttrs: f.FilterAttrs, Fd: prog.FD(), Name: filterName(dir), DirectAction: true}
}

func deleteFilter(h *netlink.Handle, f *netlink.BpfFilter) error {
	err := h.FilterDel(&netlink.BpfFilter{FilterAttrs: f.FilterAttrs, Fd: -1})
	if isNoDevice(err) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return err
}

// detachLegacy deletes our filters from the hook, if present, and leaves the
// qdisc and every other filter alone.
func (a *Attacher) detachLegacy(ns *nsRef, t Target, dir netif.Direction) error {
	h, err := ns.netlinkHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	lnk, err := h.LinkByIndex(int(t.Ifindex))
	if isNoDevice(err) {
		return nil // our filter went with the device
	}
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	_, err = removeOurFilters(h, lnk, dir, a.cfg.Handle)
	return err
}

// removeOurFilters deletes the filters of ours on one hook of lnk, at
// whatever priority they are.
func removeOurFilters(h *netlink.Handle, lnk netlink.Link, dir netif.Direction, handle uint32) (int, error) {
	filters, err := h.FilterList(lnk, clsactParent(dir))
	if isNoDevice(err) || errors.Is(err, unix.EINVAL) {
		return 0, nil // device gone, or no clsact: nothing of ours there
	}
	if err != nil {
		return 0, fmt.Errorf("list %s filters on %s: %w", dir, lnk.Attrs().Name, err)
	}
	removed := 0
	var errs []error
	for _, f := range readHook(filters, dir, handle).ours {
		if err := deleteFilter(h, f); err != nil {
			errs = append(errs, fmt.Errorf("delete %s filter at priority %d on %s: %w", dir, f.Priority, lnk.Attrs().Name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
