package netns

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotNsfs is the error for a file that is not on nsfs: no namespace is
	// bound to it (yet, or any more).
	ErrNotNsfs = errors.New("not an nsfs file (no namespace bound to it)")
	// ErrNotNetwork is the error for an nsfs file of another kind of
	// namespace (mount, UTS, ...).
	ErrNotNetwork = errors.New("not a network namespace")
)

// NS is an open network namespace file. It keeps the namespace alive until
// Close. The zero value is not usable; get one from Open.
type NS struct {
	path  string
	fd    int
	inode uint64
}

// Open opens the network namespace file at path (a bind mount such as
// /var/run/netns/X, or /proc/<pid>/ns/net). Its errors name the path and wrap
// the cause: os.ErrNotExist for a missing file, ErrNotNsfs while no namespace
// is bound to it, ErrNotNetwork for a namespace of another kind.
func Open(path string) (*NS, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	inode, err := check(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns %s: %w", path, err)
	}
	return &NS{path: path, fd: fd, inode: inode}, nil
}

// check verifies that fd is an nsfs file of a network namespace and returns
// its inode.
func check(fd int) (uint64, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err != nil {
		return 0, fmt.Errorf("fstatfs: %w", err)
	}
	if sfs.Type != unix.NSFS_MAGIC {
		return 0, ErrNotNsfs
	}
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err != nil {
		return 0, fmt.Errorf("NS_GET_NSTYPE: %w", err)
	}
	if typ != unix.CLONE_NEWNET {
		return 0, ErrNotNetwork
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, fmt.Errorf("fstat: %w", err)
	}
	return st.Ino, nil
}

// IsNsfs reports whether the file at path is on nsfs, that is, whether a
// namespace (of any kind) is bound to it, without opening it. It is the cheap
// test for "has the bind mount happened yet"; Open is the one to trust.
func IsNsfs(path string) (bool, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return false, fmt.Errorf("statfs %s: %w", path, err)
	}
	return sfs.Type == unix.NSFS_MAGIC, nil
}

// Path returns the path the namespace was opened from.
func (n *NS) Path() string { return n.path }

// Inode returns the namespace's identity: its nsfs inode number.
func (n *NS) Inode() uint64 { return n.inode }

// Fd returns the open file descriptor, for calls that take a namespace by fd
// (moving a link, RTM_GETNSID). It stays owned by n.
func (n *NS) Fd() int { return n.fd }

// Close releases the file descriptor. Closing twice is harmless.
func (n *NS) Close() error {
	if n.fd < 0 {
		return nil
	}
	err := unix.Close(n.fd)
	n.fd = -1
	if err != nil {
		return fmt.Errorf("close netns %s: %w", n.path, err)
	}
	return nil
}
