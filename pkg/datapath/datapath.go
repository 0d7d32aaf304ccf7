package datapath

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
)

// Datapath is the loaded, verified set of nsint programs and maps.
type Datapath struct {
	cfg     Config
	objs    bpf.NsintObjects
	dropped kfreeSkbInfo
	// sharedFlows: the flow table is one LRU hash, not per CPU.
	sharedFlows bool
	// scanInKernel: Sweep finds due flows with nsint_sweep_scan instead of
	// reading the whole table (shared table, bpf_for_each_map_elem).
	scanInKernel bool
	// bootOffset converts ktime (CLOCK_MONOTONIC ns) to Unix ns.
	bootOffset int64

	watchMu    sync.Mutex
	readerOpen atomic.Bool

	// sweepMu serialises sweeps: they share the work list maps and
	// sweepBuf.
	sweepMu  sync.Mutex
	sweepBuf sweepBuffers

	countersMu sync.Mutex
	// countersFloor: the last figures PortCountersOf returned, by port.
	countersFloor map[uint16]Counters
	// baseline: what earlier generations counted, by port (baseline.go).
	baseline map[uint16]Counters
	// gen is where Pin pinned this datapath's state; nil before.
	gen *ownGeneration
}

// Load loads and verifies the programs once, with cfg's constants and map
// sizes, and wires the dispatcher tail-call table. It does not attach
// anything, the drop hook included. On kernels that charge BPF memory to
// RLIMIT_MEMLOCK instead of the memory cgroup (before 5.11) it lifts the
// process's memlock limit, which needs CAP_SYS_RESOURCE; elsewhere it leaves
// the limit alone.
func Load(cfg Config) (*Datapath, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := allowMemlock(); err != nil {
		return nil, err
	}
	drops, err := kernelDrops()
	if err != nil {
		return nil, err
	}
	kinfo := drops.kfree
	shared, err := sharedFlowTable(cfg)
	if err != nil {
		return nil, err
	}
	forEach, err := has(haveForEachMapElem)
	if err != nil {
		return nil, err
	}
	spec, err := newSpec(cfg, kinfo, shared)
	if err != nil {
		return nil, err
	}
	d := &Datapath{cfg: cfg, dropped: kinfo, sharedFlows: shared, countersFloor: map[uint16]Counters{},
		scanInKernel: shared && forEach && !cfg.userSpaceScan}
	if err := spec.LoadAndAssign(&d.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load nsint programs: %+v", verr)
		}
		return nil, fmt.Errorf("load nsint programs: %w", err)
	}
	if err := d.objs.TcProgs.Put(uint32(cIngress), d.objs.NsintTcIngress); err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("tail-call table: ingress program: %w", err)
	}
	if err := d.objs.TcProgs.Put(uint32(cEgress), d.objs.NsintTcEgress); err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("tail-call table: egress program: %w", err)
	}
	if err := d.fillDropClasses(kinfo.names); err != nil {
		d.objs.Close()
		return nil, err
	}
	d.bootOffset = bootOffset()
	return d, nil
}

// newSpec returns the collection spec with cfg applied.
func newSpec(cfg Config, kinfo kfreeSkbInfo, shared bool) (*ebpf.CollectionSpec, error) {
	spec, err := bpf.LoadNsint()
	if err != nil {
		return nil, fmt.Errorf("read nsint object: %w", err)
	}
	for _, name := range []string{bpf.NsintMapPortConfigs, bpf.NsintMapPortIds, bpf.NsintMapPortCounters} {
		spec.Maps[name].MaxEntries = cfg.MaxPorts
	}
	spec.Maps[bpf.NsintMapFlows].MaxEntries = cfg.MaxFlows
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("possible CPUs: %w", err)
	}
	spec.Maps[bpf.NsintMapCpuState].MaxEntries = uint32(cpus)
	spec.Maps[bpf.NsintMapTransit].MaxEntries = cfg.MaxFlows
	spec.Maps[bpf.NsintMapDropFlows].MaxEntries = max(cfg.MaxFlows/4, 1024)
	spec.Maps[bpf.NsintMapEvents].MaxEntries = cfg.ringBytes(cpus)
	if shared {
		spec.Maps[bpf.NsintMapFlows].Type = ebpf.LRUHash
	} else {
		disarmCmpxchg(spec)
	}
	forEach, err := has(haveForEachMapElem)
	if err != nil {
		return nil, err
	}
	if !shared || !forEach {
		// The in-kernel scan (nsint_sweep_scan) walks the shared table with
		// bpf_for_each_map_elem: elsewhere a bare program stands in for it
		// (kernels before 5.13 refuse the callback anywhere in a program),
		// and Sweep reads the table from user space.
		spec.Programs[bpf.NsintProgNsintSweepScan].Instructions = asm.Instructions{
			asm.Mov.Imm(asm.R0, 0), asm.Return(),
		}
	}
	kc := bpf.NsintConfig{
		ReportIntervalNs:     uint64(cfg.ReportInterval),
		DropReportIntervalNs: uint64(cfg.DropReportInterval),
		TransitMaxAgeNs:      uint64(transitMaxAge),
		SnapLen:              uint32(cfg.SnapLen),
		DropConsumedReason:   kinfo.consumed,
		WakeupReports:        uint32(cfg.WakeupReports),
	}
	if kinfo.hasReason {
		kc.DropHasReason = 1
	}
	if kinfo.hasRxSk {
		kc.DropHasRxSk = 1
	}
	if shared {
		kc.FlowsShared = 1
	}
	coarse, err := has(haveCoarseClock)
	if err != nil {
		return nil, err
	}
	if !cfg.preciseClock && coarse {
		kc.CoarseClock = 1
	}
	if err := spec.Variables[bpf.NsintVarCfg].Set(kc); err != nil {
		return nil, fmt.Errorf("set load-time constants: %w", err)
	}
	return spec, nil
}

// sharedFlowTable tells which flow table cfg gets. The shared LRU hash is
// the default: one entry per flow (a flow that crosses several CPUs is
// reported once, with all its packets), memory that does not grow with the
// number of CPUs (the per-CPU table preallocates a value per CPU for every
// entry: 65 536 flows × 40 bytes × 96 CPUs is 240 MiB of kernel memory),
// and fewer cache lines per packet (docs/performance.md). Two CPUs due to
// refresh one flow at once must not both take its counts, so the programs
// claim a refresh with a compare-and-swap (BPF_CMPXCHG, 5.12+); kernels
// without it get the per-CPU table, where no other CPU writes an entry.
func sharedFlowTable(cfg Config) (bool, error) {
	if cfg.perCPUFlows {
		return false, nil
	}
	return has(HaveCmpxchg)
}

// disarmCmpxchg replaces each compare-and-swap and exchange in the programs
// by a move: without the shared table they sit in branches the verifier
// never visits (flows_shared is a load-time constant), but kernels before
// 5.12 reject these instructions anywhere in a program.
func disarmCmpxchg(spec *ebpf.CollectionSpec) {
	for _, p := range spec.Programs {
		for i, ins := range p.Instructions {
			if op := ins.OpCode.AtomicOp(); op == asm.CmpXchg || op == asm.Xchg {
				p.Instructions[i] = asm.Mov.Imm(asm.R0, 0).WithMetadata(ins.Metadata)
			}
		}
	}
}

// bootOffset measures once how far CLOCK_MONOTONIC (bpf_ktime_get_ns) is
// behind the wall clock.
func bootOffset() int64 {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return before.UnixNano() - ts.Nano()
}

// KtimeToTime converts a bpf_ktime_get_ns value to wall-clock time.
func (d *Datapath) KtimeToTime(ktime uint64) time.Time {
	return time.Unix(0, d.bootOffset+int64(ktime))
}

// possibleCPUs is the number of possible CPUs: the size of per-CPU values,
// and of cpu_state, which newSpec sized by it.
func (d *Datapath) possibleCPUs() int { return int(d.objs.CpuState.MaxEntries()) }

// Config returns the configuration in effect, defaults filled in.
func (d *Datapath) Config() Config { return d.cfg }

// SharedFlowTable tells whether the flow state is one shared LRU hash (the
// default where the kernel has BPF_CMPXCHG, 5.12+) rather than per CPU.
func (d *Datapath) SharedFlowTable() bool { return d.sharedFlows }

// DropReasonSupported tells whether the kernel's kfree_skb tracepoint gives
// a drop reason (5.17+); without it drop events carry reason 0.
func (d *Datapath) DropReasonSupported() bool { return d.dropped.hasReason }

// Programs returns the shared main TC programs (ingress, egress). They are
// owned by the Datapath; attach Dispatcher programs instead.
func (d *Datapath) Programs() (ingress, egress *ebpf.Program) {
	return d.objs.NsintTcIngress, d.objs.NsintTcEgress
}

// Close releases every map and program the Datapath loaded. Pinned state
// (Pin) stays for the next load.
func (d *Datapath) Close() error {
	var errs []error
	if err := d.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close nsint objects: %w", err))
	}
	d.countersMu.Lock()
	if d.gen != nil {
		if err := d.gen.baseline.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close map %s: %w", baselinePin, err))
		}
	}
	d.countersMu.Unlock()
	return errors.Join(errs...)
}

// Stats are the programs' own counters, summed over CPUs.
type Stats struct {
	Reports          uint64 // flow reports sent
	RingFull         uint64 // reports the ring had no room for (their counts stay in the kernel)
	Unparsed         uint64 // packets not reported: truncated or not IP
	NoIdentity       uint64 // main program entered without a dispatcher
	FlowUpdateErrors uint64 // flow state could not be inserted
	DropReports      uint64 // drop reports sent
	DropsSuppressed  uint64 // drops folded into a later report (rate limit)
	Unwatched        uint64 // report decisions the watchlist filtered out
	// CacheFlushLost counts last-flow slots whose counts found their flow's
	// entry gone (evicted) when flushed.
	CacheFlushLost uint64
	// NotDrops counts freed packets that are no drop of the interface:
	// delivered after all, or wanted by no one (docs/architecture.md).
	NotDrops uint64
	// SweepReports counts the reports Sweep took counts for.
	SweepReports uint64
	// SweepBypassed counts packets a TC program counted while the sweep it
	// interrupted held its CPU's slots.
	SweepBypassed uint64
	// SweepScanned counts the flow entries the in-kernel scan looked at.
	SweepScanned uint64
	// FirstPackets counts packets reported on their own as the first of a
	// flow not stored yet (a flow is stored from its second packet on).
	FirstPackets uint64
}

// statSlot is a Stats field and the slot of the stats map that counts it.
type statSlot struct {
	slot  bpf.NsintNsintStat
	field *uint64
}

// slots names the stats map slot (C enum nsint_stat) of each field of s.
func (s *Stats) slots() []statSlot {
	return []statSlot{
		{bpf.NsintNsintStatNSINT_STAT_REPORTS, &s.Reports},
		{bpf.NsintNsintStatNSINT_STAT_RING_FULL, &s.RingFull},
		{bpf.NsintNsintStatNSINT_STAT_UNPARSED, &s.Unparsed},
		{bpf.NsintNsintStatNSINT_STAT_NO_IDENTITY, &s.NoIdentity},
		{bpf.NsintNsintStatNSINT_STAT_FLOW_UPDATE_ERRORS, &s.FlowUpdateErrors},
		{bpf.NsintNsintStatNSINT_STAT_DROP_REPORTS, &s.DropReports},
		{bpf.NsintNsintStatNSINT_STAT_DROPS_SUPPRESSED, &s.DropsSuppressed},
		{bpf.NsintNsintStatNSINT_STAT_UNWATCHED, &s.Unwatched},
		{bpf.NsintNsintStatNSINT_STAT_CACHE_FLUSH_LOST, &s.CacheFlushLost},
		{bpf.NsintNsintStatNSINT_STAT_NOT_DROPS, &s.NotDrops},
		{bpf.NsintNsintStatNSINT_STAT_SWEEP_REPORTS, &s.SweepReports},
		{bpf.NsintNsintStatNSINT_STAT_SWEEP_BYPASSED, &s.SweepBypassed},
		{bpf.NsintNsintStatNSINT_STAT_SWEEP_SCANNED, &s.SweepScanned},
		{bpf.NsintNsintStatNSINT_STAT_FIRST_PACKETS, &s.FirstPackets},
	}
}

// Stats reads the programs' counters.
func (d *Datapath) Stats() (Stats, error) {
	var s Stats
	for _, f := range s.slots() {
		var per []uint64
		if err := d.objs.Stats.Lookup(uint32(f.slot), &per); err != nil {
			return Stats{}, fmt.Errorf("read stats slot %d: %w", f.slot, err)
		}
		for _, v := range per {
			*f.field += v
		}
	}
	return s, nil
}
