package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/agent"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// TestBenchPipeline measures the agent's user-space report path on one core:
// report ring read and decode (datapath.Reader) → the agent's own event →
// report step (agent.ReportPath: the report, its nsint_reports_total and
// reported-packets counters) → INT v2.0 encode (exporter.Enqueue) →
// sendmmsg to a loopback collector (exporter.Run), the exporter configured
// as the agent configures it. The kernel fills the report ring first
// (BPF_PROG_TEST_RUN of the real programs, one new flow per packet, so one
// report each); the timed part drains it. Each round gives reports per
// second (wall and per CPU-second) and allocations per report; the figures
// are their medians and quartiles. make bench runs it under `taskset -c 1`
// with GOMAXPROCS 1. NSINT_BENCH_ROUNDS sets the rounds (default 5),
// NSINT_BENCH_PIPELINE_REPORTS the reports per round (default 100 000).
func TestBenchPipeline(t *testing.T) {
	requireBench(t)
	perRound := envInt("NSINT_BENCH_PIPELINE_REPORTS", 100000)
	rounds := envInt("NSINT_BENCH_ROUNDS", 5)
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		t.Fatal(err)
	}

	d, err := datapath.Load(datapath.Config{ReportInterval: time.Hour, MaxFlows: 1 << 20,
		ReportBufferBytes: 64 << 20})
	if err != nil {
		t.Fatalf("load datapath: %v", err)
	}
	defer d.Close()
	ns := netnstest.New(t, netnstest.Dir(t), netnstest.Prefix(t))
	if err := d.SetPort(1, datapath.PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode)}, LocalStack: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.SetPort(2, datapath.PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 2}, LocalPort: 1}); err != nil {
		t.Fatal(err)
	}
	disp, err := d.Dispatcher(2, netif.Ingress)
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
	cfg, err := config.Parse([]string{"--collector", sink.LocalAddr().String(), "--report-format", "v2.0",
		"--switch-id", "1", "--host-netns=false"}, nil, io.Discard)
	if err != nil {
		t.Fatalf("agent configuration: %v", err)
	}
	// The exporter as the agent's Run makes it: its default queue, so a
	// full queue makes the reader wait for the sender, as in the agent.
	exp, err := exporter.New(exporter.Config{Collectors: cfg.Collectors, Format: intreport.V20})
	if err != nil {
		t.Fatal(err)
	}
	defer exp.Close()
	path, err := agent.NewReportPath(cfg, exp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { exp.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var rates, allocs, perCPUs []float64
	var queueDrops uint64
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
	var ev datapath.Event
	// A report is done when sent, or dropped on a full queue (counted).
	done := func() uint64 { s := exp.Stats(); return s.Collectors[0].Sent + s.QueueDrops }
	statsAllocs := testing.AllocsPerRun(100, func() { done() })
	// Round 0 warms up (first-use costs of the runtime and the rings) and is
	// not recorded.
	for round := range rounds + 1 {
		if err := fillRing(ns, disp, round*perRound, perRound); err != nil {
			t.Fatal(err)
		}
		base := done()
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
			path.Export(&ev)
			if i%64 == 63 {
				runtime.Gosched() // hand the core to the sender, as a blocking read would
			}
		}
		polls := 0
		for done()-base < uint64(perRound) {
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
		rate, alloc := float64(perRound)/elapsed.Seconds(), float64(mallocs)/float64(perRound)
		perCPU := float64(perRound) / cpu.Seconds()
		t.Logf("round %d: %.0f reports/s (wall), %.0f reports per CPU-second, %.4f allocs/report, load %.2f",
			round, rate, perCPU, alloc, loadAvg1())
		if round == 0 {
			queueDrops = exp.Stats().QueueDrops
			continue
		}
		rates, allocs, perCPUs = append(rates, rate), append(allocs, alloc), append(perCPUs, perCPU)
	}
	// While the sender runs a full queue waits, as in the agent: a drop
	// here (the sender not running) would make a rate of reports not sent.
	queueDrops = exp.Stats().QueueDrops - queueDrops
	if queueDrops != 0 {
		t.Errorf("%d reports dropped on a full export queue in the timed rounds: the rate is not of sent reports", queueDrops)
	}
	st, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RingFull != 0 || rd.Malformed() != 0 {
		t.Errorf("reports the ring had no room for %d, malformed %d: want 0", st.RingFull, rd.Malformed())
	}
	figures := singles(map[string]float64{"pipeline_cpus": float64(cpus.Count()),
		"pipeline_queue_drops": float64(queueDrops), "pipeline_loadavg": loadAvg1()})
	figures["pipeline_reports_per_sec"] = Summarize(rates)
	figures["pipeline_reports_per_cpu_sec"] = Summarize(perCPUs)
	figures["pipeline_allocs_per_report"] = Summarize(allocs)
	record(t, figures)
}

// fillRing runs n new-flow UDP/IPv4 packets through prog in ns, one per
// BPF_PROG_TEST_RUN, each producing one report in the report ring.
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

// processCPU is the user + system CPU time of this process so far. Pinned
// to one core, reports per CPU-second is the rate that core would sustain
// if nothing else ran on it.
func processCPU() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
