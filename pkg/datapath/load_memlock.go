package datapath

import (
	"fmt"

	"github.com/cilium/ebpf/rlimit"
)

// allowMemlock lifts RLIMIT_MEMLOCK where the kernel charges maps and
// programs to it (before 5.11: the default 64 KiB or 8 MiB does not hold our
// maps). rlimit probes memcg accounting once, at package init, by creating a
// map under a zero limit; with memcg accounting this is a no-op. Not a
// version check.
func allowMemlock() error {
	if err := rlimit.RemoveMemlock(); err != nil {
		return fmt.Errorf("lift memlock limit for bpf maps (kernel without memcg accounting of bpf memory): %w", err)
	}
	return nil
}
