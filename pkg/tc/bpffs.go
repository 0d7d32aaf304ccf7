package tc

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MountBPFFS mounts a BPF filesystem at dir, creating dir, unless dir is
// already on one. mounted tells whether it mounted (the caller then unmounts
// when it is done with it, if it wants to).
func MountBPFFS(dir string) (mounted bool, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create bpffs mount point %s: %w", dir, err)
	}
	on, err := onBPFFS(dir)
	if err != nil {
		return false, err
	}
	if on {
		return false, nil
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		return false, fmt.Errorf("mount bpffs at %s: %w", dir, err)
	}
	return true, nil
}

func onBPFFS(dir string) (bool, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return false, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return fs.Type == unix.BPF_FS_MAGIC, nil
}
