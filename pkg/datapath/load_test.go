package datapath

import (
	"testing"

	"github.com/cilium/ebpf"

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
	if !d.DropReasonSupported() {
		t.Error("kernel BTF has a reason argument on kfree_skb, probe says no")
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
	spec, err := newSpec(cfg, kfreeSkbInfo{consumed: ^uint32(0)})
	must(t, err)
	for name := range spec.Programs {
		if name != bpf.NsintProgNsintKfreeSkb {
			delete(spec.Programs, name)
		}
	}
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load drop hook without reason: %v", err)
	}
	coll.Close()
}
