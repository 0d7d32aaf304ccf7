package datapath

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// TestDispatcherCost: a dispatcher must stay a handful of verified
// instructions, so that attaching to thousands of interfaces costs no
// re-verification of the main program.
func TestDispatcherCost(t *testing.T) {
	d := loadDatapath(t, Config{})
	must(t, d.SetPort(5, PortInfo{ID: netif.ID{Netns: netif.Netns(4026531840), Ifindex: 2}}))
	prog, err := d.Dispatcher(5, netif.Egress)
	must(t, err)
	defer prog.Close()
	if _, err := d.Dispatcher(6, netif.Ingress); err == nil {
		t.Error("dispatcher for a port without SetPort: no error")
	}
	if _, err := d.Dispatcher(0, netif.Ingress); err == nil {
		t.Error("dispatcher for port 0: no error")
	}
	dispInsns := verifiedInsns(t, prog)
	in, _ := d.Programs()
	mainInsns := verifiedInsns(t, in)
	t.Logf("verified instructions: dispatcher %d, main ingress %d", dispInsns, mainInsns)
	if dispInsns > 32 {
		t.Errorf("dispatcher needed %d verified instructions, want at most 32", dispInsns)
	}
}

func verifiedInsns(t *testing.T, p *ebpf.Program) uint32 {
	t.Helper()
	switch err := haveVerifiedInsns(); {
	case errors.Is(err, ebpf.ErrNotSupported):
		t.Skipf("skipping: %v (the dispatcher's cost is measured where the kernel reports it)", err)
	case err != nil:
		t.Fatal(err)
	}
	info, err := p.Info()
	must(t, err)
	n, ok := info.VerifiedInstructions()
	if !ok {
		t.Fatalf("%v: no verified_insns in its bpf_prog_info, though the kernel has the field", p)
	}
	return n
}

// haveVerifiedInsns probes whether bpf_prog_info reports verified_insns
// (5.16+; 5.10 has no such field) with a trivial program.
var haveVerifiedInsns = sync.OnceValue(func() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "nsint_probe", Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return fmt.Errorf("verified_insns probe: load program: %w", err)
	}
	defer prog.Close()
	info, err := prog.Info()
	if err != nil {
		return fmt.Errorf("verified_insns probe: program info: %w", err)
	}
	if _, ok := info.VerifiedInstructions(); !ok {
		return fmt.Errorf("kernel without verified_insns in bpf_prog_info (5.16+): %w", ebpf.ErrNotSupported)
	}
	return nil
})

// TestNoIdentity: the main program entered without a dispatcher (zero
// identity in every CPU's state) passes the packet on and reports nothing.
func TestNoIdentity(t *testing.T) {
	h := newHarness(t, Config{})
	in, _ := h.d.Programs()
	for cpu := range mustPossibleCPUs(t) {
		must(t, h.d.objs.CpuState.Put(uint32(cpu), &bpf.NsintCpuState{}))
	}
	frame := udpFrame("198.18.0.1", "198.18.0.2", 1, 2, 10)
	var ret uint32
	must(t, h.ns.Do(func() error {
		var err error
		ret, err = in.Run(&ebpf.RunOptions{Data: frame})
		return err
	}))
	if ret != tcActUnspec {
		t.Fatalf("verdict %d, want -1", int32(ret))
	}
	h.none("main program without identity")
	st, err := h.d.Stats()
	must(t, err)
	if st.NoIdentity == 0 {
		t.Error("no-identity counter did not move")
	}
}

func mustPossibleCPUs(t *testing.T) int {
	t.Helper()
	n, err := ebpf.PossibleCPU()
	must(t, err)
	return n
}

// TestEventLayout: the Go event type matches the C struct in the object's
// BTF (bpf2go generates it; this catches a stale generation).
func TestEventLayout(t *testing.T) {
	spec, err := bpf.LoadNsint()
	must(t, err)
	var ev *btf.Struct
	if err := spec.Types.TypeByName("event", &ev); err != nil {
		t.Fatal(err)
	}
	if int(ev.Size) != eventSize {
		t.Fatalf("C struct event is %d bytes, Go %d", ev.Size, eventSize)
	}
	var goEv bpf.NsintEvent
	for _, m := range ev.Members {
		if m.Name == "cap_len" && uint32(m.Offset.Bytes()) != uint32(unsafe.Offsetof(goEv.CapLen)) {
			t.Fatalf("cap_len at %d in C, %d in Go", m.Offset.Bytes(), unsafe.Offsetof(goEv.CapLen))
		}
	}
}
