package tc

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nsint/nsint/pkg/netif"
)

// updateTCX gives prog to old, our live link (ID id) on the hook: in place
// while it runs first, which keeps its position; when another tool has put a
// program ahead of it since, by moving ours to the head (moveTCX).
func (a *Attacher) updateTCX(ns *nsRef, old link.Link, id link.ID, pin string, ifindex netif.Ifindex, dir netif.Direction, prog *ebpf.Program) (moved bool, err error) {
	err = ns.do(func() error {
		// The kernel resolves the ifindex in the calling thread's namespace.
		res, err := link.QueryPrograms(link.QueryOptions{Target: int(ifindex), Attach: tcxAttachType(dir)})
		if err != nil {
			return fmt.Errorf("query tcx programs: %w", err)
		}
		if len(res.Programs) > 0 {
			if head, ok := res.Programs[0].LinkID(); ok && head == id {
				if err := old.Update(prog); err != nil {
					return fmt.Errorf("update pinned tcx link %s: %w", pin, err)
				}
				return nil
			}
		}
		moved = true
		return a.moveTCX(old, pin, ifindex, dir, prog)
	})
	return moved, classify(err)
}

// moveTCX moves ours to the head of the hook without counting a packet
// twice: a new link at the head starts with a pass-through program, old
// goes quiet (with the other one), the new link gets prog and takes over
// old's pin, and old goes. Only between old going quiet and the new link
// getting prog, two bpf calls back to back, is the hook unobserved. On an
// error, old is left pinned and running prog, and the new link goes. It runs
// in the hook's namespace.
func (a *Attacher) moveTCX(old link.Link, pin string, ifindex netif.Ifindex, dir netif.Direction, prog *ebpf.Program) error {
	pass, err := a.passProgram(0)
	if err != nil {
		return err
	}
	quiet, err := a.passProgram(1)
	if err != nil {
		return err
	}
	head, err := link.AttachTCX(link.TCXOptions{
		Interface: int(ifindex),
		Program:   pass,
		Attach:    tcxAttachType(dir),
		Anchor:    link.Head(),
	})
	if err != nil {
		return fmt.Errorf("attach tcx at the head: %w", err)
	}
	// Until the pin holds it, our descriptor is its only reference: closing
	// it detaches the new link.
	defer head.Close()
	// undo quiets the new link before old runs prog again: never two.
	undo := func() error {
		return errors.Join(head.Update(pass), old.Update(prog))
	}
	if err := old.Update(quiet); err != nil {
		return errors.Join(fmt.Errorf("quiet tcx link %s: %w", pin, err), old.Update(prog))
	}
	if err := head.Update(prog); err != nil {
		return errors.Join(fmt.Errorf("update new tcx link: %w", err), undo())
	}
	if err := old.Unpin(); err != nil {
		return errors.Join(fmt.Errorf("unpin tcx link %s: %w", pin, err), undo())
	}
	if err := head.Pin(pin); err != nil {
		return errors.Join(fmt.Errorf("pin new tcx link at %s: %w", pin, err), old.Pin(pin), undo())
	}
	// Old, quiet and unpinned now, is detached when the caller closes our
	// descriptor, its last reference.
	return nil
}
