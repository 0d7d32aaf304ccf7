package datapath

import (
	"bytes"
	_ "embed"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/internal/netnstest"
)

// beforeCommit is the commit whose programs the benchmarks time beside the
// current ones: main before the sweep (the busy flag, the sweeping check,
// TCP FIN/RST, GSO wire bytes).
const beforeCommit = "06bce00"

// beforeObject is that commit's generated object, unchanged:
// git show 06bce00:bpf/nsint_bpfel.o.
//
//go:embed testdata/nsint_bpfel_06bce00.o
var beforeObject []byte

// loadBefore loads the programs of beforeCommit as that commit's Load did
// (its newSpec: the same map sizes and load-time constants; the drop hook
// left out, the benchmarks attach none) into a Datapath whose SetPort and
// dispatcher work on them: the dispatcher, the identity it writes and the
// port config are the same in both commits. Only what those and the
// benchmarks use is filled in; Stats and Sweep do not work on it.
func loadBefore(tb testing.TB, cfg Config) *Datapath {
	tb.Helper()
	netnstest.RequireRoot(tb)
	cfg, err := cfg.withDefaults()
	must2(tb, err)
	must2(tb, allowMemlock())
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(beforeObject))
	must2(tb, err)
	delete(spec.Programs, bpf.NsintProgNsintKfreeSkb)
	for _, name := range []string{bpf.NsintMapPortConfigs, bpf.NsintMapPortIds, bpf.NsintMapPortCounters} {
		spec.Maps[name].MaxEntries = cfg.MaxPorts
	}
	cpus, err := ebpf.PossibleCPU()
	must2(tb, err)
	spec.Maps[bpf.NsintMapFlows].MaxEntries = cfg.MaxFlows
	spec.Maps[bpf.NsintMapCpuState].MaxEntries = uint32(cpus)
	spec.Maps[bpf.NsintMapTransit].MaxEntries = cfg.MaxFlows
	spec.Maps[bpf.NsintMapDropFlows].MaxEntries = max(cfg.MaxFlows/4, 1024)
	shared, err := sharedFlowTable(cfg)
	must2(tb, err)
	if shared {
		spec.Maps[bpf.NsintMapFlows].Type = ebpf.LRUHash
	} else {
		disarmCmpxchg(spec)
	}
	// The layout of struct config is the same: the byte DropHasRxSk now
	// holds was padding.
	kc := bpf.NsintConfig{
		ReportIntervalNs:     uint64(cfg.ReportInterval),
		DropReportIntervalNs: uint64(cfg.DropReportInterval),
		TransitMaxAgeNs:      uint64(transitMaxAge),
		SnapLen:              uint32(cfg.SnapLen),
		DropConsumedReason:   ^uint32(0),
	}
	if shared {
		kc.FlowsShared = 1
	}
	if !cfg.preciseClock && haveCoarseClock() == nil {
		kc.CoarseClock = 1
	}
	must2(tb, spec.Variables[bpf.NsintVarCfg].Set(kc))
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		tb.Fatalf("load the programs of %s: %v", beforeCommit, err)
	}
	tb.Cleanup(coll.Close)

	d := &Datapath{cfg: cfg, sharedFlows: shared, countersFloor: map[uint16]Counters{}}
	m, p := coll.Maps, coll.Programs
	d.objs.CpuState, d.objs.TcProgs, d.objs.Events = m[bpf.NsintMapCpuState], m[bpf.NsintMapTcProgs], m[bpf.NsintMapEvents]
	d.objs.PortConfigs, d.objs.PortIds, d.objs.Flows = m[bpf.NsintMapPortConfigs], m[bpf.NsintMapPortIds], m[bpf.NsintMapFlows]
	d.objs.NsintTcIngress, d.objs.NsintTcEgress = p[bpf.NsintProgNsintTcIngress], p[bpf.NsintProgNsintTcEgress]
	d.objs.NsintTcNoop = p[bpf.NsintProgNsintTcNoop]
	must2(tb, d.objs.TcProgs.Put(uint32(cIngress), d.objs.NsintTcIngress))
	must2(tb, d.objs.TcProgs.Put(uint32(cEgress), d.objs.NsintTcEgress))
	return d
}
