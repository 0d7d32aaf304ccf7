package datapath

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf"
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
