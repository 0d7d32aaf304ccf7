package ifacewatch

import (
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

var (
	// errNotMounted: the file exists but is not (yet) an nsfs bind mount.
	errNotMounted = errors.New("not an nsfs mount")
	// errNotNetns: an nsfs file of another namespace type.
	errNotNetns = errors.New("not a network namespace")
)

// isNsfs reports whether path is an nsfs file, that is, the bind mount of a
// namespace has happened. ip netns add, CRI-O and containerd create the file
// first and mount over it a moment later.
func isNsfs(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == unix.NSFS_MAGIC, nil
}

// openNetns opens the network namespace file at path and returns its fd and
// identity. It fails with errNotMounted while the bind mount is missing.
func openNetns(path string) (int, NetnsID, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("open netns %s: %w", path, err)
	}
	id, err := checkNetnsFd(fd)
	if err != nil {
		unix.Close(fd)
		return -1, 0, fmt.Errorf("netns %s: %w", path, err)
	}
	return fd, id, nil
}

// checkNetnsFd verifies that fd is an nsfs file of a network namespace (the
// fd, not the path, so a mount racing with the open cannot fool us) and
// returns its inode.
func checkNetnsFd(fd int) (NetnsID, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return 0, fmt.Errorf("fstatfs: %w", err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return 0, errNotMounted
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return 0, fmt.Errorf("NS_GET_NSTYPE: %w", err)
	}
	if typ != unix.CLONE_NEWNET {
		return 0, errNotNetns
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("fstat: %w", err)
	}
	return NetnsID(st.Ino), nil
}

// hostNetnsPath names the namespace of the process (its main thread).
const hostNetnsPath = "/proc/self/ns/net"

// inNetns runs fn on a fresh OS thread switched into the network namespace
// nsfd. The thread is only handed back to the Go scheduler when switching back
// worked; otherwise its goroutine exits still locked and Go discards the thread.
func inNetns(nsfd int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(self)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(self, unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(fnErr, fmt.Errorf("restore netns: %w", err))
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- fnErr
	}()
	return <-errc
}
