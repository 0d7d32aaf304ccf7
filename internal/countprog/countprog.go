// Package countprog loads the smallest useful TC program for tests and
// benchmarks: a SchedCLS program that counts the packets it sees in a one-slot
// array map and returns a fixed verdict. It stands in for nsint's own program
// where only attachment matters, and for another tool's program where
// coexistence does. It attaches nothing; the caller decides where it goes.
package countprog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// Verdicts of SchedCLS programs (TC_ACT_* and TCX_*).
const (
	Next = -1 // TC_ACT_UNSPEC, TCX_NEXT: the next filter or program decides
	OK   = 0  // TC_ACT_OK, TCX_PASS: the packet goes on, and the chain ends here
)

// Counter is a loaded counting program and its map.
type Counter struct {
	Prog *ebpf.Program
	Map  *ebpf.Map // one uint64 at key 0: the packets seen
}

// Load loads a counting program named name that returns verdict for every
// packet. Close releases it.
func Load(name string, verdict int32) (*Counter, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return nil, fmt.Errorf("create the map of %s: %w", name, err)
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    name,
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.StoreImm(asm.RFP, -4, 0, asm.Word), // key = 0
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord), // atomic: several CPUs may run it at once
			asm.Mov.Imm(asm.R0, verdict).WithSymbol("out"),
			asm.Return(),
		},
	})
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("load %s: %w", name, err)
	}
	return &Counter{Prog: prog, Map: m}, nil
}

// Count returns the packets the program has seen.
func (c *Counter) Count() (uint64, error) {
	var v []byte
	if err := c.Map.Lookup(uint32(0), &v); err != nil {
		return 0, fmt.Errorf("read the counter of %s: %w", c.Prog, err)
	}
	return binary.NativeEndian.Uint64(v), nil
}

// Close releases the program and its map. An attachment that holds the
// program keeps it alive until it is removed.
func (c *Counter) Close() error {
	return errors.Join(c.Prog.Close(), c.Map.Close())
}
