package tc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/pkg/netif"
)

// ownNetnsPath names the agent's own network namespace: the calling
// thread's, which is the process's as long as the caller is not inside a
// namespace switch (only locked threads leave it). /proc/self would name the
// main thread's, and the main thread runs goroutines too: one of them may be
// inside a switch at that moment.
const ownNetnsPath = "/proc/thread-self/ns/net"

// nsRef is an open network namespace, held only for the duration of one call.
type nsRef struct {
	ns    *netns.NS
	path  string
	inode netif.Netns
}

// openNetns opens the namespace at path ("" = our own). A file that is gone,
// no longer a namespace, or now a different namespace than want (when want
// is not 0) is reported as ErrInterfaceGone.
func openNetns(path string, want netif.Netns) (*nsRef, error) {
	if path == "" {
		path = ownNetnsPath
	}
	ns, err := netns.Open(path)
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, netns.ErrNotNsfs):
		return nil, markGone(err)
	case errors.Is(err, netns.ErrNotNetwork) && want != 0:
		return nil, markGone(err) // certainly not the namespace wanted
	case err != nil:
		return nil, err
	}
	if want != 0 && netif.Netns(ns.Inode()) != want {
		ns.Close()
		return nil, markGone(fmt.Errorf("netns %s: is namespace %d now, not %d", path, ns.Inode(), want))
	}
	return &nsRef{ns: ns, path: path, inode: netif.Netns(ns.Inode())}, nil
}

func (n *nsRef) close() { n.ns.Close() }

// do runs fn on a locked OS thread switched into the namespace (netns.NS.Do).
func (n *nsRef) do(fn func() error) error { return n.ns.Do(fn) }
