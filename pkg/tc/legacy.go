package tc

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func filterName(dir Direction) string { return "nsint-" + dir.String() }

func clsactParent(dir Direction) uint32 {
	if dir == Egress {
		return netlink.HANDLE_MIN_EGRESS
	}
	return netlink.HANDLE_MIN_INGRESS
}

// isOurFilter requires kind, name, priority and handle all to be ours.
func isOurFilter(f netlink.Filter, dir Direction, prio uint16, handle uint32) bool {
	bf, ok := f.(*netlink.BpfFilter)
	return ok && bf.Name == filterName(dir) && bf.Priority == prio && bf.Handle == handle
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
// absent) and puts our filter at our priority and handle, replacing our
// earlier one in place.
func (a *Attacher) attachLegacy(ns *nsRef, t Target, dir Direction, prog *ebpf.Program) (replaced bool, err error) {
	h, err := ns.netlinkHandle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	lnk, err := h.LinkByIndex(t.Ifindex)
	if err != nil {
		return false, classify(fmt.Errorf("find link: %w", err))
	}
	clsact := &netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: t.Ifindex,
		Handle:    netlink.MakeHandle(0xffff, 0),
		Parent:    netlink.HANDLE_CLSACT,
	}}
	// Exclusive create: an existing clsact (ours or anyone's) is left as is.
	if err := h.QdiscAdd(clsact); err != nil && !errors.Is(err, unix.EEXIST) {
		return false, classify(fmt.Errorf("add clsact qdisc: %w", err))
	}
	filters, err := h.FilterList(lnk, clsactParent(dir))
	if err != nil {
		return false, classify(fmt.Errorf("list filters: %w", err))
	}
	for _, f := range filters {
		fa := f.Attrs()
		if fa.Priority != a.cfg.Priority || fa.Handle != a.cfg.Handle {
			continue
		}
		if !isOurFilter(f, dir, a.cfg.Priority, a.cfg.Handle) {
			return false, fmt.Errorf("%w: %s filter at priority %d handle %#x", ErrForeignFilter, f.Type(), fa.Priority, fa.Handle)
		}
		replaced = true
	}
	filter := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: t.Ifindex,
			Parent:    clsactParent(dir),
			Handle:    a.cfg.Handle,
			Priority:  a.cfg.Priority,
			Protocol:  unix.ETH_P_ALL,
		},
		Fd:           prog.FD(),
		Name:         filterName(dir),
		DirectAction: true,
	}
	if err := h.FilterReplace(filter); err != nil {
		return false, classify(fmt.Errorf("replace filter: %w", err))
	}
	return replaced, nil
}

// detachLegacy deletes our filter from the hook, if present, and leaves the
// qdisc and every other filter alone.
func (a *Attacher) detachLegacy(ns *nsRef, t Target, dir Direction) error {
	h, err := ns.netlinkHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	lnk, err := h.LinkByIndex(t.Ifindex)
	if isNoDevice(err) {
		return nil // our filter went with the device
	}
	if err != nil {
		return fmt.Errorf("find link: %w", err)
	}
	_, err = removeOurFilters(h, lnk, dir, a.cfg.Priority, a.cfg.Handle)
	return err
}

// removeOurFilters deletes the filters of ours on one hook of lnk.
func removeOurFilters(h *netlink.Handle, lnk netlink.Link, dir Direction, prio uint16, handle uint32) (int, error) {
	filters, err := h.FilterList(lnk, clsactParent(dir))
	if isNoDevice(err) || errors.Is(err, unix.EINVAL) {
		return 0, nil // device gone, or no clsact: nothing of ours there
	}
	if err != nil {
		return 0, fmt.Errorf("list %s filters on %s: %w", dir, lnk.Attrs().Name, err)
	}
	removed := 0
	var errs []error
	for _, f := range filters {
		if !isOurFilter(f, dir, prio, handle) {
			continue
		}
		del := &netlink.BpfFilter{FilterAttrs: *f.Attrs(), Fd: -1}
		if err := h.FilterDel(del); err != nil && !isNoDevice(err) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("delete %s filter on %s: %w", dir, lnk.Attrs().Name, err))
			continue
		}
		removed++
	}
	return removed, errors.Join(errs...)
}
