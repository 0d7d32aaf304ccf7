package datapath

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

// agentSweepPeriod is how often the agent sweeps at the default report
// interval of 1 s (pkg/agent sweepPeriod: a quarter of the interval).
const agentSweepPeriod = 250 * time.Millisecond

// BenchmarkSweep measures what the export of counts no packet reports
// costs: Datapath.Sweep, on the shared flow table with the default
// configuration (report interval 1 s, 65 536 flows), flows inserted and
// counted by crafted frames through the dispatcher (BPF_PROG_TEST_RUN).
//
//	flows-<n>  n flows, each with counts since its last report. Each round
//	           counts one packet for every flow, sweeps (idle: none is due,
//	           as for flows between two of their refreshes: every CPU's
//	           slots emptied, the whole table read), waits out the interval
//	           and sweeps again (due: every flow went quiet, its counts are
//	           taken by the kernel in batches of 256, one report each).
//	active     1 000 flows that keep sending (a packet each every 10 ms, on
//	           CPU 1, first packets spread over an interval) while CPU 0
//	           sweeps every 250 ms: how many reports the sweep makes (the
//	           packets' own refreshes should make nearly all).
//
// Per sweep: ms is wall time; cpu_ms the calling thread's user + system
// time (CLOCK_THREAD_CPUTIME_ID: getrusage RUSAGE_THREAD without its
// tick granularity), the thread pinned to CPU 0, where Sweep
// runs the batches, so that their work is on its clock (the other CPUs'
// slot runs are IPIs it waits for); bpf_ms nsint_sweep's own run time on
// all CPUs (BPF run-time statistics). cpu_ms_per_s is the idle sweep's
// cpu_ms at the agent's 4 sweeps a second: what n active flows cost;
// cpu_us_per_due_flow is (due - idle) cpu_ms / n: what a flow that goes
// quiet adds, once. The emit callback does nothing: exporting a report is
// the pipeline's cost (bench/pipeline_test.go).
//
// Metric units are the results keys without their "sweep_" prefix; each
// is the median over benchRounds rounds, *_spread max - min.
//
//	go test -run '^$' -bench Sweep -benchtime 1x ./pkg/datapath/
func BenchmarkSweep(b *testing.B) {
	requireFlowTable(b, true)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	b.Cleanup(func() { stats.Close() })
	for _, n := range []int{1000, 65536} {
		// The kernel's scan (where it has bpf_for_each_map_elem), and the
		// table read from user space, as older kernels and the per-CPU
		// table do.
		b.Run(fmt.Sprintf("flows-%d", n), func(b *testing.B) { benchSweepFlows(b, n, false) })
		b.Run(fmt.Sprintf("flows-%d-userscan", n), func(b *testing.B) { benchSweepFlows(b, n, true) })
	}
	b.Run("active", benchSweepActive)
}

func benchSweepFlows(b *testing.B, n int, userSpaceScan bool) {
	e := newBenchEnvWith(b, Config{ReportBufferBytes: 4 << 20, userSpaceScan: userSpaceScan})
	frames := benchFrames(n)
	e.timeRuns(b, e.disp[netif.Ingress], frames, 2) // new flows, reported and stored
	lastReport := time.Now()
	requireFlows(b, e.d, n)
	interval := e.d.cfg.ReportInterval
	var idle, due []sweepCost
	for range benchRounds {
		e.timeRuns(b, e.disp[netif.Ingress], frames, 1)
		c, st := e.timeSweep(b)
		if st.Flows != n || st.Due != 0 {
			b.Fatalf("idle sweep: %+v; want %d flows, none due", st, n)
		}
		idle = append(idle, c)
		time.Sleep(time.Until(lastReport.Add(interval + 10*time.Millisecond)))
		c, st = e.timeSweep(b)
		lastReport = time.Now()
		if st.Due != n || st.Reports != n {
			b.Fatalf("sweep an interval later: %+v; want all %d flows due and reported", st, n)
		}
		due = append(due, c)
	}
	f := figures{}
	sfx := fmt.Sprintf("_flows%d", n)
	if userSpaceScan {
		sfx += "_userscan"
	}
	perSecond := float64(time.Second / agentSweepPeriod)
	for i := range idle {
		f.add("ms"+sfx+"_idle", idle[i].wall)
		f.add("cpu_ms"+sfx+"_idle", idle[i].cpu)
		f.add("bpf_ms"+sfx+"_idle", idle[i].bpf)
		f.add("ms"+sfx+"_due", due[i].wall)
		f.add("cpu_ms"+sfx+"_due", due[i].cpu)
		f.add("bpf_ms"+sfx+"_due", due[i].bpf)
		f.add("cpu_ms_per_s"+sfx, idle[i].cpu*perSecond)
		f.add("cpu_us_per_due_flow"+sfx, (due[i].cpu-idle[i].cpu)*1000/float64(n))
	}
	f.report(b)
}

func benchSweepActive(b *testing.B) {
	const n, gap = 1000, 10 * time.Millisecond
	e := newBenchEnvWith(b, Config{ReportBufferBytes: 4 << 20})
	frames := benchFrames(n)
	interval := e.d.cfg.ReportInterval
	// The sender: every gap, one packet of every flow started so far; flow
	// i starts at i*interval/n, so that refreshes fall due all the time,
	// not all at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := make(chan error, 1)
	go func() {
		t := time.NewTicker(gap)
		defer t.Stop()
		start := time.Now()
		for ctx.Err() == nil {
			started := min(n, int(time.Since(start)*time.Duration(n)/interval)+1)
			if _, err := e.timeRunsOn(b, 1, e.disp[netif.Ingress], frames[:started], 1); err != nil {
				sent <- err
				return
			}
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
		sent <- nil
	}()
	time.Sleep(2*interval + gap) // every flow started and refreshed once
	requireFlows(b, e.d, n)

	const perRound = 8 // sweeps: 2 s
	f := figures{}
	tick := time.NewTicker(agentSweepPeriod)
	defer tick.Stop()
	for range benchRounds {
		k0, err := e.d.Stats()
		must2(b, err)
		start := time.Now()
		var swept, retries int
		var cpu []float64
		for range perRound {
			<-tick.C
			c, st := e.timeSweep(b)
			swept += st.Reports
			retries += st.Retries
			cpu = append(cpu, c.cpu)
		}
		secs := time.Since(start).Seconds()
		k1, err := e.d.Stats()
		must2(b, err)
		f.add("extra_reports_per_s_active", float64(swept)/secs)
		f.add("kernel_reports_per_s_active", float64(k1.Reports-k0.Reports)/secs)
		f.add("retries_per_sweep_active", float64(retries)/perRound)
		f.add("cpu_ms_active", median(cpu))
	}
	cancel()
	must2(b, <-sent)
	f.report(b)
}

func benchFrames(n int) [][]byte {
	frames := make([][]byte, n)
	for i := range frames {
		frames[i] = benchUDP4(i)
	}
	return frames
}

// sweepCost is one sweep's cost in ms.
type sweepCost struct{ wall, cpu, bpf float64 }

// timeSweep runs one sweep on a thread pinned to CPU 0.
func (e *benchEnv) timeSweep(b *testing.B) (sweepCost, SweepStats) {
	b.Helper()
	var c sweepCost
	var st SweepStats
	bpf0, _ := progStats(b, e.d.objs.NsintSweep)
	err := onCPU(e.ns, 0, func() error {
		cpu0, err := threadCPU()
		if err != nil {
			return err
		}
		start := time.Now()
		st, err = e.d.Sweep(SweepOptions{}, func(*Event) {})
		c.wall = float64(time.Since(start).Nanoseconds()) / 1e6
		cpu1, cerr := threadCPU()
		c.cpu = float64(cpu1-cpu0) / 1e6
		return errors.Join(err, cerr)
	})
	must2(b, err)
	bpf1, _ := progStats(b, e.d.objs.NsintSweep)
	c.bpf = float64((bpf1 - bpf0).Nanoseconds()) / 1e6
	return c, st
}

// threadCPU is the calling thread's user + system time in ns: what
// getrusage(RUSAGE_THREAD) gives, without its tick granularity.
func threadCPU() (int64, error) {
	var ts unix.Timespec
	err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano(), err
}

// figures are per-round values by results key.
type figures map[string][]float64

func (f figures) add(key string, v float64) { f[key] = append(f[key], v) }

// report reports each figure's median and spread under its key.
func (f figures) report(b *testing.B) {
	for k, v := range f {
		b.ReportMetric(median(v), k)
		b.ReportMetric(spreadOf(v), k+"_spread")
	}
}
