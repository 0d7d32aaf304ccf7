package tc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

const tcxPinSubdir = "tcx"

// pinPath is <PinDir>/tcx/<netns-inode>/<ifindex>_<direction>.
func pinPath(pinDir string, netns netif.Netns, ifindex netif.Ifindex, dir netif.Direction) string {
	return filepath.Join(pinDir, tcxPinSubdir, strconv.FormatUint(uint64(netns), 10),
		strconv.FormatUint(uint64(ifindex), 10)+"_"+dir.String())
}

// attachTCX gives prog to our pinned link when it is still attached to this
// interface (updateTCX), and otherwise replaces the stale pin with a new link
// at the head of the hook, ahead of every program already there.
func (a *Attacher) attachTCX(ns *nsRef, t Target, dir netif.Direction, prog *ebpf.Program) (Placement, error) {
	pin := pinPath(a.cfg.PinDir, ns.inode, t.Ifindex, dir)
	old, err := link.LoadPinnedLink(pin, nil)
	switch {
	case err == nil:
		if id, live := liveLinkID(old, t.Ifindex, dir); live {
			defer old.Close()
			moved, err := a.updateTCX(ns, old, id, pin, t.Ifindex, dir, prog)
			if err != nil {
				return Placement{}, err
			}
			return Placement{Replaced: true, Moved: moved}, nil
		}
		if err := dropLink(old); err != nil {
			return Placement{}, fmt.Errorf("drop stale tcx link %s: %w", pin, err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return Placement{}, fmt.Errorf("load pinned tcx link %s: %w", pin, err)
	}

	if err := os.MkdirAll(filepath.Dir(pin), 0o700); err != nil {
		return Placement{}, fmt.Errorf("create pin dir: %w", err)
	}
	var l link.Link
	err = ns.do(func() error {
		// The kernel resolves the ifindex in the calling thread's namespace.
		var err error
		l, err = link.AttachTCX(link.TCXOptions{
			Interface: int(t.Ifindex),
			Program:   prog,
			Attach:    tcxAttachType(dir),
			Anchor:    link.Head(),
		})
		return err
	})
	if err != nil {
		return Placement{}, classify(fmt.Errorf("attach tcx: %w", err))
	}
	// Closing our only descriptor detaches the link, so a failed pin leaves
	// nothing attached that no one owns.
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return Placement{}, fmt.Errorf("pin tcx link at %s: %w", pin, err)
	}
	return Placement{}, nil
}

// liveLinkID returns the ID of l when it is a live TCX link on ifindex in
// dir. A link whose device was deleted is defunct and reports ifindex 0.
func liveLinkID(l link.Link, ifindex netif.Ifindex, dir netif.Direction) (link.ID, bool) {
	info, err := l.Info()
	if err != nil {
		return 0, false
	}
	tcx := info.TCX()
	live := tcx != nil && tcx.Ifindex != 0 && tcx.Ifindex == uint32(ifindex) &&
		ebpf.AttachType(tcx.AttachType) == tcxAttachType(dir)
	return info.ID, live
}

// dropLink detaches a pinned link of ours, removes its pin and closes it.
func dropLink(l link.Link) error {
	defer l.Close()
	// A defunct link has nothing left to detach from.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return l.Unpin()
}

// removePin detaches and unpins our link for the hook, if there is one, and
// removes the namespace's pin directory once it is empty.
func (a *Attacher) removePin(netns netif.Netns, ifindex netif.Ifindex, dir netif.Direction) error {
	if a.cfg.PinDir == "" {
		return nil
	}
	pin := pinPath(a.cfg.PinDir, netns, ifindex, dir)
	l, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pinned tcx link %s: %w", pin, err)
	}
	if err := dropLink(l); err != nil {
		return fmt.Errorf("remove tcx link %s: %w", pin, err)
	}
	removeIfEmpty(filepath.Dir(pin))
	return nil
}

// removeIfEmpty removes dir when nothing is left in it.
func removeIfEmpty(dir string) {
	os.Remove(dir) // ENOTEMPTY leaves it, which is what we want
}
