package tc

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

// Mode selects how programs are attached.
type Mode int

const (
	// ModeAuto uses TCX when the kernel has it and legacy tc otherwise.
	ModeAuto Mode = iota
	// ModeTCX forces TCX links (kernel 6.6+).
	ModeTCX
	// ModeLegacy forces clsact + cls_bpf filters.
	ModeLegacy
)

// String returns the flag spelling of m: "auto", "tcx" or "tc".
func (m Mode) String() string {
	switch m {
	case ModeAuto:
		return "auto"
	case ModeTCX:
		return "tcx"
	case ModeLegacy:
		return "tc"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses the --attach-mode flag: "auto", "tcx" or "tc".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "auto":
		return ModeAuto, nil
	case "tcx":
		return ModeTCX, nil
	case "tc":
		return ModeLegacy, nil
	}
	return 0, fmt.Errorf("attach mode %q: want auto, tcx or tc", s)
}

func tcxAttachType(dir netif.Direction) ebpf.AttachType {
	if dir == netif.Egress {
		return ebpf.AttachTCXEgress
	}
	return ebpf.AttachTCXIngress
}

// ResolveMode returns the mode New attaches with on this kernel: ModeAuto
// becomes ModeTCX where the kernel has TCX and ModeLegacy where it lacks it;
// ModeTCX needs TCX; ModeLegacy stays. A TCX probe that could not tell (EPERM)
// is an error, never taken for a kernel without TCX.
func ResolveMode(m Mode) (Mode, error) {
	switch m {
	case ModeAuto:
		err := HaveTCX()
		switch {
		case err == nil:
			return ModeTCX, nil
		case errors.Is(err, ebpf.ErrNotSupported):
			return ModeLegacy, nil
		}
		return 0, fmt.Errorf("attach mode auto: %w", err)
	case ModeTCX:
		if err := HaveTCX(); err != nil {
			return 0, fmt.Errorf("attach mode tcx: %w", err)
		}
		return ModeTCX, nil
	case ModeLegacy:
		return ModeLegacy, nil
	}
	return 0, fmt.Errorf("attach mode %v: unknown", m)
}

// HaveTCX probes for TCX links (6.6+): nil when the kernel has them, an
// error wrapping ebpf.ErrNotSupported that says so when it does not, another
// error when the probe could not tell (EPERM). The result is computed once
// per process.
func HaveTCX() error { return haveTCX() }

var haveTCX = sync.OnceValue(probeTCX)

// probeTCX attaches a trivial program to an ifindex that cannot exist: a
// kernel with TCX resolves the device and answers ENODEV.
func probeTCX() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "nsint_probe",
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, -1),
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("tcx probe: load program: %w", err)
	}
	defer prog.Close()
	l, err := link.AttachTCX(link.TCXOptions{
		Interface: math.MaxInt32,
		Program:   prog,
		Attach:    ebpf.AttachTCXIngress,
	})
	switch {
	case err == nil:
		l.Close()
		return errors.New("tcx probe: attach to a missing interface succeeded")
	case errors.Is(err, unix.ENODEV):
		return nil
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("kernel without TCX links: %w", err)
	}
	return fmt.Errorf("tcx probe: %w", err)
}
