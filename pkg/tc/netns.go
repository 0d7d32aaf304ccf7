package tc

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ownNetnsPath names the agent's own network namespace.
const ownNetnsPath = "/proc/self/ns/net"

// nsRef is an open network namespace, held only for the duration of one call.
type nsRef struct {
	path  string
	fd    netns.NsHandle
	inode uint64
}

// openNetns opens the namespace at path ("" = our own). A file that is gone,
// no longer a namespace, or now a different namespace than want (when want
// is not 0) is reported as ErrInterfaceGone.
func openNetns(path string, want uint64) (*nsRef, error) {
	if path == "" {
		path = ownNetnsPath
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		err = fmt.Errorf("open netns %s: %w", path, err)
		if errors.Is(err, unix.ENOENT) {
			return nil, markGone(err)
		}
		return nil, err
	}
	var fs unix.Statfs_t
	var st unix.Stat_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("statfs netns %s: %w", path, err)
	}
	if fs.Type != unix.NSFS_MAGIC {
		unix.Close(fd)
		return nil, markGone(fmt.Errorf("netns %s: not bound to a namespace", path))
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("stat netns %s: %w", path, err)
	}
	if want != 0 && st.Ino != want {
		unix.Close(fd)
		return nil, markGone(fmt.Errorf("netns %s: is namespace %d now, not %d", path, st.Ino, want))
	}
	return &nsRef{path: path, fd: netns.NsHandle(fd), inode: st.Ino}, nil
}

func (n *nsRef) close() { n.fd.Close() }

// do runs fn on a locked OS thread switched into the namespace. A thread
// that cannot be switched back stays locked, so the Go runtime discards it
// instead of running other goroutines in the wrong namespace.
func (n *nsRef) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(n.fd); err != nil {
			// setns failed, so the thread is still where it was.
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", n.path, err)
			return
		}
		fnErr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("restore netns after %s: %w", n.path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
