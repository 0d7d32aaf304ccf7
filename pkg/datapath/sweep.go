package datapath

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
)

// The C enums the sweep uses (nsint_types.h, nsint_sweep.h), typed as the
// fields and the result that hold them, and the batch sizes.
const (
	sweepKindFlow = uint8(bpf.NsintNsintSweepKindNSINT_SWEEP_FLOW)
	sweepKindDrop = uint8(bpf.NsintNsintSweepKindNSINT_SWEEP_DROP)

	sweepFlagSlots    = uint32(bpf.NsintNsintSweepFlagsNSINT_SWEEP_SLOTS)
	sweepFlagForceAll = uint32(bpf.NsintNsintSweepFlagsNSINT_SWEEP_FORCE_ALL)

	sweepDone = uint32(bpf.NsintNsintSweepResultNSINT_SWEEP_DONE)
	sweepBusy = uint32(bpf.NsintNsintSweepResultNSINT_SWEEP_BUSY)

	sweepBatch = 256  // NSINT_SWEEP_BATCH
	scanBatch  = 4096 // NSINT_SCAN_BATCH
)

// sweepBusyRetries bounds how often one CPU's sweep is retried while a TC
// program of that CPU is mid-packet: each try lasts well under a
// microsecond on that CPU, so even a CPU busy with traffic lets one through
// within a few tries.
const sweepBusyRetries = 1000

// ErrSweepBusy is returned when a CPU's TC programs were mid-packet at every
// try of a sweep.
var ErrSweepBusy = errors.New("CPU kept busy by packets")

// SweepOptions says which counts a sweep takes besides those whose report is
// due.
type SweepOptions struct {
	// Ports are taken whatever their flows' state: they are going away.
	Ports []uint16
	// All takes every flow's counts: the agent is stopping.
	All bool
}

func (o SweepOptions) forced(port uint16) bool {
	if o.All {
		return true
	}
	for _, p := range o.Ports {
		if p == port {
			return true
		}
	}
	return false
}

// sweepBuffers are the flow table batches a sweep reads into, kept from one
// sweep to the next (guarded by Datapath.sweepMu).
type sweepBuffers struct {
	keys []bpf.NsintFlowKey
	vals []bpf.NsintFlowState
}

// SweepStats say what one sweep did.
type SweepStats struct {
	CPUs    int // CPUs whose slots were emptied
	Flows   int // flow entries looked at
	Due     int // entries handed to the kernel to take
	Reports int // reports the sweep produced (emit calls)
	Retries int // runs repeated because a CPU was mid-packet
}

// Sweep reports counts that no packet will report: it empties every
// online CPU's last-flow slots into their flows' entries, then takes the
// counts of every flow whose report is due — quiet for the report interval,
// or ended by a TCP FIN or RST — and of the drops the rate limit folded,
// and calls emit with one Event per report (Reason ReasonIdle, ReasonEnd,
// or ReasonFlush when opts forced it; ev.Data is nil: no packet to show).
// The kernel takes the counts (nsint_sweep.h), so a sweep racing the
// programs never counts a packet twice or loses one. Sweeps are serialised;
// emit must not call Sweep.
func (d *Datapath) Sweep(opts SweepOptions, emit func(*Event)) (SweepStats, error) {
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	var st SweepStats
	cpus, err := onlineCPUs()
	if err != nil {
		return st, err
	}
	for _, cpu := range cpus {
		if err := d.runSweep(cpu, bpf.NsintSweepCtl{Flags: sweepFlagSlots}, &st); err != nil {
			return st, err
		}
		st.CPUs++
	}
	var flows []bpf.NsintSweepItem
	if d.scanInKernel && len(opts.Ports) <= 1 {
		if err := d.scanFlows(opts, &st, emit); err != nil {
			return st, err
		}
	} else if flows, err = d.dueFlows(opts, &st); err != nil {
		return st, err
	}
	drops, err := d.dueDrops(opts)
	if err != nil {
		return st, err
	}
	items := append(flows, drops...)
	st.Due += len(items)
	// On the per-CPU table each CPU holds its own share of a flow.
	runOn := cpus[:1]
	if !d.sharedFlows {
		runOn = cpus
	}
	var ev Event
	for len(items) > 0 {
		n := min(len(items), sweepBatch)
		batch := items[:n]
		items = items[n:]
		if err := d.putSweepItems(batch); err != nil {
			return st, err
		}
		for _, cpu := range runOn {
			if err := d.runSweep(cpu, bpf.NsintSweepCtl{Count: uint32(n)}, &st); err != nil {
				return st, err
			}
			out, err := d.readSweepItems(n)
			if err != nil {
				return st, err
			}
			for i := range out {
				if out[i].Taken == 0 {
					continue
				}
				d.sweepEvent(&out[i], opts, &ev)
				st.Reports++
				emit(&ev)
			}
		}
	}
	return st, nil
}

// scanFlows has the kernel walk the flow table and take the counts of the
// flows whose report is due or forced (nsint_sweep_scan), a batch at a time,
// and emits a report for each.
func (d *Datapath) scanFlows(opts SweepOptions, st *SweepStats, emit func(*Event)) error {
	ctl := bpf.NsintSweepCtl{}
	if opts.All {
		ctl.Flags |= sweepFlagForceAll
	}
	if len(opts.Ports) == 1 {
		ctl.ForcePort = opts.Ports[0]
	}
	var ev Event
	for {
		if err := d.objs.SweepCtl.Put(uint32(0), &ctl); err != nil {
			return fmt.Errorf("sweep: write control: %w", err)
		}
		if _, err := d.objs.NsintSweepScan.Run(&ebpf.RunOptions{}); err != nil {
			return fmt.Errorf("sweep: scan the flow table: %w", err)
		}
		var out bpf.NsintSweepCtl
		if err := d.objs.SweepCtl.Lookup(uint32(0), &out); err != nil {
			return fmt.Errorf("sweep: read control: %w", err)
		}
		n := int(out.Count)
		st.Flows = int(out.Scanned)
		if n == 0 {
			return nil
		}
		items, err := d.readSweepItems(n)
		if err != nil {
			return err
		}
		st.Due += n
		for i := range items {
			d.sweepEvent(&items[i], opts, &ev)
			st.Reports++
			emit(&ev)
		}
		if n < scanBatch {
			return nil
		}
	}
}

// dueFlows lists the flows whose counts a sweep should try to take: those
// with counts not yet reported whose report is due or forced. The kernel
// checks again when it takes them.
func (d *Datapath) dueFlows(opts SweepOptions, st *SweepStats) ([]bpf.NsintSweepItem, error) {
	var due []bpf.NsintSweepItem
	now := uint64(monotonicNow())
	interval := uint64(d.cfg.ReportInterval)
	cpus := 1
	if !d.sharedFlows {
		cpus = d.possibleCPUs()
	}
	const batch = 4096
	if len(d.sweepBuf.keys) != batch || len(d.sweepBuf.vals) != batch*cpus {
		d.sweepBuf.keys = make([]bpf.NsintFlowKey, batch)
		d.sweepBuf.vals = make([]bpf.NsintFlowState, batch*cpus)
	}
	keys, vals := d.sweepBuf.keys, d.sweepBuf.vals
	var cursor ebpf.MapBatchCursor
	for {
		n, err := d.objs.Flows.BatchLookup(&cursor, keys, vals, nil)
		done := errors.Is(err, ebpf.ErrKeyNotExist)
		if err != nil && !done {
			return nil, fmt.Errorf("sweep: read flow table: %w", err)
		}
		st.Flows += n
		for i := range n {
			var pending, ended bool
			var last uint64
			for c := range cpus {
				v := &vals[i*cpus+c]
				// bytes alone: a take split another CPU's adds (emit_flow)
				if (v.Packets != 0 || v.Bytes != 0) && v.LastReportNs != 0 {
					pending = true
					ended = ended || v.Ended != 0
					last = max(last, v.LastReportNs)
				}
			}
			if !pending {
				continue
			}
			force := opts.forced(keys[i].Port)
			if !force && !ended && now < last+interval {
				continue
			}
			it := bpf.NsintSweepItem{Key: keys[i], Kind: sweepKindFlow}
			if force {
				it.Force = 1
			}
			due = append(due, it)
		}
		if done {
			return due, nil
		}
	}
}

// dueDrops lists the drop entries holding drops the rate limit folded that
// no later drop reported. Only the shared-table kernels fold drops.
func (d *Datapath) dueDrops(opts SweepOptions) ([]bpf.NsintSweepItem, error) {
	if !d.sharedFlows {
		return nil, nil
	}
	var due []bpf.NsintSweepItem
	now := uint64(monotonicNow())
	interval := uint64(d.cfg.DropReportInterval)
	const batch = 1024
	keys := make([]bpf.NsintDropKey, batch)
	vals := make([]bpf.NsintDropState, batch)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := d.objs.DropFlows.BatchLookup(&cursor, keys, vals, nil)
		done := errors.Is(err, ebpf.ErrKeyNotExist)
		if err != nil && !done {
			return nil, fmt.Errorf("sweep: read drop table: %w", err)
		}
		for i := range n {
			if vals[i].Drops == 0 {
				continue
			}
			force := opts.forced(keys[i].Fk.Port)
			if !force && now < vals[i].LastReportNs+interval {
				continue
			}
			it := bpf.NsintSweepItem{Key: keys[i].Fk, Reason: keys[i].Reason, Kind: sweepKindDrop}
			if force {
				it.Force = 1
			}
			due = append(due, it)
		}
		if done {
			return due, nil
		}
	}
}

func (d *Datapath) putSweepItems(items []bpf.NsintSweepItem) error {
	idx := make([]uint32, len(items))
	for i := range idx {
		idx[i] = uint32(i)
	}
	if _, err := d.objs.SweepItems.BatchUpdate(idx, items, nil); err != nil {
		return fmt.Errorf("sweep: write work list: %w", err)
	}
	return nil
}

func (d *Datapath) readSweepItems(n int) ([]bpf.NsintSweepItem, error) {
	idx := make([]uint32, n)
	out := make([]bpf.NsintSweepItem, n)
	var cursor ebpf.MapBatchCursor
	got, err := d.objs.SweepItems.BatchLookup(&cursor, idx, out, nil)
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, fmt.Errorf("sweep: read results: %w", err)
	}
	if got < n {
		return nil, fmt.Errorf("sweep: read %d results, want %d", got, n)
	}
	return out, nil
}

// runSweep runs nsint_sweep on cpu with ctl, retrying while a TC program of
// that CPU is mid-packet.
func (d *Datapath) runSweep(cpu int, ctl bpf.NsintSweepCtl, st *SweepStats) error {
	if err := d.objs.SweepCtl.Put(uint32(0), &ctl); err != nil {
		return fmt.Errorf("sweep: write control: %w", err)
	}
	opts := &ebpf.RunOptions{Flags: unix.BPF_F_TEST_RUN_ON_CPU, CPU: uint32(cpu)}
	for try := 0; ; try++ {
		ret, err := d.objs.NsintSweep.Run(opts)
		if errors.Is(err, unix.ENXIO) {
			return nil // the CPU went offline: nothing runs there
		}
		if err != nil {
			return fmt.Errorf("sweep: run on CPU %d: %w", cpu, err)
		}
		switch ret {
		case sweepDone:
			return nil
		case sweepBusy:
			if try >= sweepBusyRetries {
				return fmt.Errorf("sweep on CPU %d: %w", cpu, ErrSweepBusy)
			}
			st.Retries++
			if try%16 == 15 {
				time.Sleep(50 * time.Microsecond)
			}
		default:
			return fmt.Errorf("sweep: run on CPU %d: result %d", cpu, ret)
		}
	}
}

// sweepEvent turns one taken item into an Event.
func (d *Datapath) sweepEvent(it *bpf.NsintSweepItem, opts SweepOptions, ev *Event) {
	now := time.Now()
	*ev = Event{
		Type:      FlowEvent,
		Reason:    ReasonIdle,
		Direction: directionOf(it.Key.Dir),
		Port:      it.Key.Port,
		InPort:    it.InPort,
		OutPort:   it.OutPort,
		Proto:     it.Key.T.Proto,
		SrcPort:   it.Key.T.Sport,
		DstPort:   it.Key.T.Dport,
		InTime:    now,
		OutTime:   now,
		Packets:   it.Packets,
		Bytes:     it.Bytes,
	}
	ev.Src, ev.Dst = tupleAddrs(it.Key.T.Family, it.Key.T.Saddr, it.Key.T.Daddr)
	ev.NonFirstFragment = it.Flags&evfNonFirstFrag != 0
	switch {
	case it.Kind == sweepKindDrop:
		ev.Type, ev.Reason = DropEvent, ReasonDrop
		ev.Bytes = 0
		ev.DropReason = it.Reason
		ev.DropReasonKnown = it.Flags&evfNoDropReason == 0
	case it.Force != 0:
		ev.Reason = ReasonFlush
	case it.Flags&evfTCPEnd != 0:
		ev.Reason = ReasonEnd
	}
}

// onlineCPUs lists the CPUs that are online now.
func onlineCPUs() ([]int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	cpus, err := parseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("online CPUs: %w", err)
	}
	return cpus, nil
}

// parseCPUList parses the kernel's CPU list format: "0-3,5,7-8".
func parseCPUList(s string) ([]int, error) {
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
		}
		if last < first {
			return nil, fmt.Errorf("CPU list %q: range %s backwards", s, part)
		}
		for c := first; c <= last; c++ {
			cpus = append(cpus, c)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("CPU list %q: empty", s)
	}
	return cpus, nil
}

// monotonicNow is CLOCK_MONOTONIC in ns, the clock of the programs' times.
func monotonicNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano()
}
