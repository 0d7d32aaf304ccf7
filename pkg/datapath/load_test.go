package datapath

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/nsint/nsint/bpf"

	"github.com/nsint/nsint/internal/netnstest"
)

// loadDatapath loads a Datapath for a test and closes it at cleanup.
func loadDatapath(tb testing.TB, cfg Config) *Datapath {
	tb.Helper()
	netnstest.RequireRoot(tb)
	d, err := Load(cfg)
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Errorf("close datapath: %v", err)
		}
	})
	return d
}

func TestLoad(t *testing.T) {
	d := loadDatapath(t, Config{})
	if want := tracepointRecordHasReason(t); d.DropReasonSupported() != want {
		t.Errorf("drop reason supported %v, but the kfree_skb trace record has a reason field: %v",
			d.DropReasonSupported(), want)
	}
	err := HaveDropReason()
	if have := err == nil; (err != nil && !errors.Is(err, ebpf.ErrNotSupported)) || have != d.DropReasonSupported() {
		t.Errorf("HaveDropReason() = %v, %v; the loaded datapath says %v", have, err, d.DropReasonSupported())
	}
	in, eg := d.Programs()
	for name, prog := range map[string]interface{ FD() int }{"ingress": in, "egress": eg} {
		if prog.FD() < 0 {
			t.Errorf("%s program not loaded", name)
		}
	}
}

// TestDropHookWithoutReason loads the drop hook as for a kernel whose
// kfree_skb has no reason argument (before 5.17): the constant prunes the
// access, the program still verifies.
func TestDropHookWithoutReason(t *testing.T) {
	netnstest.RequireRoot(t)
	cfg, err := Config{MaxFlows: 1024, MaxPorts: 16}.withDefaults()
	must(t, err)
	shared, err := sharedFlowTable(cfg)
	must(t, err)
	spec, err := newSpec(cfg, kfreeSkbInfo{consumed: ^uint32(0)}, shared)
	must(t, err)
	for name := range spec.Programs {
		if name != bpf.NsintProgNsintKfreeSkb {
			delete(spec.Programs, name)
		}
	}
	must(t, allowMemlock())
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load drop hook without reason: %v", err)
	}
	coll.Close()
}

// tracepointRecordHasReason tells, from kernel BTF, whether the kfree_skb
// trace event's record (what tracefs's format file lists) has a reason field:
// evidence of the drop reason independent of the probe's reading of the
// tracepoint's function prototype.
func tracepointRecordHasReason(tb testing.TB) bool {
	tb.Helper()
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		tb.Fatalf("load kernel btf: %v", err)
	}
	var rec *btf.Struct
	if err := kernel.TypeByName("trace_event_raw_kfree_skb", &rec); err != nil {
		tb.Fatalf("kernel btf: struct trace_event_raw_kfree_skb: %v", err)
	}
	for _, m := range rec.Members {
		if m.Name == "reason" {
			return true
		}
	}
	return false
}

// TestVerifierHeadroom loads the TC programs in each configuration the
// loader can choose (shared or per-CPU flow table; coarse or precise
// decision clock, the precise one for tests) and fails when the verifier
// processed more than 80 % of its 1 000 000-instruction budget for one of
// them. The verifier gives up at the budget, and how far it walks depends
// on the kernel: 6.1's walks the egress program up to four times as far as
// 6.18's (2026-12-06: at most 599 092 instructions, per-CPU table and
// precise clock, against 137 239–153 691 on 6.18; before the reports were
// written as one literal, 804 641 with the shared table). A change that
// multiplies the verifier's states fails here first, with every
// configuration's count in the log, rather than as a program too large
// for some kernel. Kernels before 5.16 do not tell the count: skipped.
func TestVerifierHeadroom(t *testing.T) {
	const budget, limit = 1_000_000, 800_000
	requireVerifiedInstructions(t)
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"shared/coarse", Config{}},
		{"shared/precise", Config{preciseClock: true}},
		{"percpu/coarse", Config{perCPUFlows: true}},
		{"percpu/precise", Config{perCPUFlows: true, preciseClock: true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := loadDatapath(t, c.cfg)
			in, eg := d.Programs()
			for _, p := range []struct {
				hook string
				prog *ebpf.Program
			}{{"ingress", in}, {"egress", eg}} {
				info, err := p.prog.Info()
				must(t, err)
				n, ok := info.VerifiedInstructions()
				if !ok {
					t.Fatalf("%s program: no verified_insns in its bpf_prog_info, which a two-instruction program had", p.hook)
				}
				t.Logf("%s %s: %d instructions processed, %.1f %% of the verifier's budget", c.name, p.hook, n, 100*float64(n)/budget)
				if n > limit {
					t.Errorf("%s program: the verifier processed %d instructions, above %d (80 %% of its budget): too close to \"program too large\"", p.hook, n, limit)
				}
			}
		})
	}
}

// requireVerifiedInstructions skips the test on kernels whose bpf_prog_info
// has no verified_insns (before 5.16), asking a two-instruction program
// rather than loading a datapath (seconds under the VM suites' emulation).
func requireVerifiedInstructions(t *testing.T) {
	t.Helper()
	netnstest.RequireRoot(t)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
		License:      "GPL",
	})
	must(t, err)
	defer prog.Close()
	info, err := prog.Info()
	must(t, err)
	if _, ok := info.VerifiedInstructions(); !ok {
		t.Skip("kernel without verified_insns in bpf_prog_info (5.16+)")
	}
}
