package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestBenchPipeline measures the agent's user-space report path on one core:
// perf event read and decode (datapath.Reader) → INT v2.0 encode
// (exporter.Enqueue) → sendmmsg to a loopback collector (exporter.Run). The
// kernel fills the perf ring first (BPF_PROG_TEST_RUN of the real programs,
// one new flow per packet, so one report each); the timed part drains it.
// make bench runs it under `taskset -c 1` with GOMAXPROCS 1.
func TestBenchPipeline(t *testing.T) {
	requireBench(t)
	const perRound = 100000
	rounds := envInt("NSINT_BENCH_ROUNDS", 5)
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}

	d, err := datapath.Load(datapath.Config{ReportInterval: time.Hour, MaxFlows: 1 << 20,
		PerCPUBufferBytes: 64 << 20, WakeupEvents: 64})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer d.Close()
	ns := netnstest.New(t, netnstest.Dir(t), netnstest.Prefix(t))
	if err := d.SetPort(1, datapath.PortInfo{NetnsInode: ns.Inode, LocalStack: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPort(2, datapath.PortInfo{NetnsInode: ns.Inode, Ifindex: 2, LocalPort: 1}); err != nil {
		t.Fatal(err)
	}
	disp, err := d.Dispatcher(2, datapath.Ingress)
	if err != nil {
		t.Fatal(err)
	}
	defer disp.Close()
	rd, err := d.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	// The collector: bound on loopback, never read (the kernel drops what
	// overflows), so the figure is the agent's cost, not a receiver's.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	exp, err := exporter.New(exporter.Config{Collectors: []string{sink.LocalAddr().String()},
		Format: intreport.V20, QueueLen: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var rates, allocs, perCPUs []float64
	var fullRetries uint64
	// NSINT_BENCH_ALLOC_PROFILE=file records every allocation made during
	// the timed loops (a diagnostic: it slows them down).
	profile := os.Getenv("NSINT_BENCH_ALLOC_PROFILE")
	defer func() {
		if profile == "" {
			return
		}
		f, err := os.Create(profile)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			t.Error(err)
		}
	}()
	var rep intreport.Report
	var ev datapath.Event
	sent := func() uint64 { return exp.Stats().Collectors[0].Sent }
	statsAllocs := testing.AllocsPerRun(100, func() { sent() })
	// Round 0 warms up (first-use costs of the runtime and the rings) and is
	// not recorded.
	for round := range rounds + 1 {
		if err := fillRing(ns, disp, round*perRound, perRound); err != nil {
			t.Fatal(err)
		}
		base := sent()
		var ms0, ms1 runtime.MemStats
		if profile != "" {
			runtime.MemProfileRate = 1
		}
		runtime.ReadMemStats(&ms0)
		cpu0 := processCPU()
		start := time.Now()
		for i := 0; i < perRound; i++ {
			if err := rd.Read(&ev); err != nil {
				t.Fatalf("read event %d: %v", i, err)
			}
			toReport(&ev, &rep)
			for !exp.Enqueue(&rep) {
				runtime.Gosched() // never here with a 64k queue; counted anyway
			}
			if i%64 == 63 {
				runtime.Gosched() // hand the core to the sender, as a blocking read would
			}
		}
		polls := 0
		for sent()-base < perRound {
			polls++
			runtime.Gosched()
		}
		elapsed := time.Since(start)
		cpu := processCPU() - cpu0
		runtime.ReadMemStats(&ms1)
		// Polling Stats allocates (it copies the per-collector counters):
		// take the poller's share out of the pipeline's.
		pollAllocs := uint64(float64(polls+1) * statsAllocs)
		if profile != "" {
			runtime.MemProfileRate = 512 * 1024
		}
		mallocs := ms1.Mallocs - ms0.Mallocs
		mallocs -= min(mallocs, pollAllocs)
		rate, alloc := perRound/elapsed.Seconds(), float64(mallocs)/perRound
		perCPU := perRound / cpu.Seconds()
		t.Logf("round %d: %.0f reports/s (wall), %.0f reports per CPU-second, %.4f allocs/report, load %.2f",
			round, rate, perCPU, alloc, loadAvg1())
		if round == 0 {
			fullRetries = exp.Stats().QueueDrops
			continue
		}
		rates, allocs, perCPUs = append(rates, rate), append(allocs, alloc), append(perCPUs, perCPU)
	}
	// A full queue here is retried (the agent would drop and count): it
	// means the sender fell behind the reader on the shared core.
	fullRetries = exp.Stats().QueueDrops - fullRetries
	if rd.LostSamples() != 0 || rd.Malformed() != 0 {
		t.Errorf("lost samples %d, malformed %d: want 0", rd.LostSamples(), rd.Malformed())
	}
	record(t, map[string]float64{
		"pipeline_reports_per_sec": median(rates), "pipeline_reports_per_sec_spread": spread(rates),
		"pipeline_reports_per_sec_max": slices.Max(rates), "pipeline_reports_per_cpu_sec": median(perCPUs), "pipeline_reports_per_cpu_sec_spread": spread(perCPUs),
		"pipeline_allocs_per_report": median(allocs), "pipeline_allocs_per_report_spread": spread(allocs),
		"pipeline_cpus": float64(cpus.Count()), "pipeline_queue_full_retries": float64(fullRetries), "pipeline_loadavg": loadAvg1(),
	})
}

// fillRing runs n new-flow UDP/IPv4 packets through prog in ns, one per
// BPF_PROG_TEST_RUN, each producing one report in this CPU's perf ring.
func fillRing(ns *netnstest.NS, prog *ebpf.Program, first, n int) error {
	frame := make([]byte, 14+20+8+64)
	return ns.Do(func() error {
		for i := first; i < first+n; i++ {
			udp4Frame(frame, uint32(i))
			ret, err := prog.Run(&ebpf.RunOptions{Data: frame})
			if err != nil {
				return fmt.Errorf("test run packet %d: %w", i, err)
			}
			if int32(ret) != -1 {
				return fmt.Errorf("packet %d: verdict %d, want TC_ACT_UNSPEC", i, int32(ret))
			}
		}
		return nil
	})
}

// udp4Frame writes an Ethernet/IPv4/UDP frame of flow i into b: source
// 198.18.x.y:(10000+i%50000) → 198.19.0.1:53.
func udp4Frame(b []byte, i uint32) {
	clear(b)
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	ip[8], ip[9] = 64, 17
	binary.BigEndian.PutUint32(ip[12:], 0xc6120000|(i/50000)&0xffff)
	binary.BigEndian.PutUint32(ip[16:], 0xc6130001)
	var sum uint32
	for j := 0; j < 20; j += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[j:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], uint16(10000+i%50000))
	binary.BigEndian.PutUint16(udp[2:], 53)
	binary.BigEndian.PutUint16(udp[4:], uint16(len(b)-34))
}

// toReport is the agent's event → report mapping for flow reports
// (pkg/agent.toReport, which is unexported): same fields, no allocation.
func toReport(ev *datapath.Event, rep *intreport.Report) {
	*rep = intreport.Report{
		Kind: intreport.Flow, SwitchID: 1, IngressPort: ev.InPort, EgressPort: ev.OutPort,
		IngressTS: uint64(ev.InTime.UnixNano()), Packets: ev.Packets, Bytes: ev.Bytes,
		ObservationPort: ev.Port, Direction: intreport.DirectionIngress, Tracked: true, Inner: ev.Data,
	}
	if ev.Direction == datapath.Egress {
		rep.Direction = intreport.DirectionEgress
	}
	if ev.HasHopLatency {
		rep.EgressTS = uint64(ev.OutTime.UnixNano())
		rep.HopLatency = uint32(min(ev.HopLatency, time.Duration(math.MaxUint32)))
	}
}

// processCPU is the user + system CPU time of this process so far. Pinned
// to one core, reports per CPU-second is the rate that core would sustain
// if nothing else ran on it.
func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
