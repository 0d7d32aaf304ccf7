package tc

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Placement says where Place left our program on its hook.
type Placement struct {
	// Replaced: an attachment of ours was there already (this run's or an
	// earlier one's) and now runs the program.
	Replaced bool
	// Moved: that attachment had another tool's filter or program ahead of
	// it (or, legacy, sat in the kernel's automatic priority range) and was
	// moved to the head of the hook.
	Moved bool
	// Priority is the priority of our legacy filter; 0 in TCX mode.
	Priority uint16
	// Ahead counts the other tools' legacy filter priorities that may run
	// before ours. It is 0 unless one sits at priority 1, where nothing can
	// go ahead of it; always 0 in TCX mode, where ours is at the head.
	Ahead int
}

// First tells whether ours runs before anything of anyone else's on the
// hook, so that no one else's verdict can hide a packet from it.
func (p Placement) First() bool { return p.Ahead == 0 }

// passProgram returns the Attacher's pass-through program number n (0 or
// 1): a SchedCLS program that only returns TC_ACT_UNSPEC (TCX_NEXT). An
// attachment of ours runs one while ours moves to the head, so that no
// packet is counted by two programs of ours; a TCX move needs both, since a
// TCX hook holds a program only once. They are loaded on first use and
// closed by Close.
func (a *Attacher) passProgram(n int) (*ebpf.Program, error) {
	a.passMu.Lock()
	defer a.passMu.Unlock()
	if a.closed.Load() {
		return nil, ErrClosed
	}
	if a.pass[n] != nil {
		return a.pass[n], nil
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    fmt.Sprintf("nsint_pass%d", n),
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, -1),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load pass-through program: %w", err)
	}
	a.pass[n] = prog
	return prog, nil
}
