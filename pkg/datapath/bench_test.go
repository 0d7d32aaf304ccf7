package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// Benchmarks (root): go test -run '^$' -bench . -benchtime 1x ./pkg/datapath/
//
// BenchmarkPacket measures ns/packet through BPF_PROG_TEST_RUN on the real
// entry path (dispatcher → tail call → main program) against the
// do-nothing program in the same run, for both flow-state designs. Each
// figure is the median of benchRounds rounds; "spread" is max-min of the
// per-round differences. Single-flow cases use the kernel's repeat loop
// (warm caches). Multi-flow and new-flow cases need a different packet per
// run, so they run one packet per syscall, baseline included: they carry
// the cold instruction cache and branch predictors of a syscall per packet
// and are upper bounds. The single-flow cases also time the programs of
// beforeCommit (loadBefore) in the same rounds, on the same frames and CPU:
// before-over-baseline-ns/pkt, and after-minus-before-ns/pkt, the current
// programs' figure less the before ones', round by round.

const benchRounds = 7

// benchMaxFlows leaves the LRU tables room for the largest scenario, so
// established flows are not evicted (the "reports" metric shows it).
const benchMaxFlows = 262144

type benchScenario struct {
	name  string
	flows int
	frame func(i int) []byte
}

func benchUDP4(i int) []byte {
	return concat(ethHdr(etherIPv4), ipv4Hdr(protoUDP, addr4(0xc6120000+uint32(i>>16)), addr4(0xc6130000+uint32(i&0xffff)), nil, 0, false),
		udpHdr(uint16(10000+i%50000), 53), make([]byte, 64))
}

func benchTCP4(i int) []byte {
	return concat(ethHdr(etherIPv4), ipv4Hdr(protoTCP, addr4(0xc6120001), addr4(0xc6130001+uint32(i)), nil, 0, false),
		tcpHdr(40000, 443), make([]byte, 64))
}

func benchUDP6(i int) []byte {
	dst := netip.MustParseAddr("fd00::").As16()
	binary.BigEndian.PutUint32(dst[12:], uint32(i))
	return concat(ethHdr(etherIPv6), ipv6Hdr(protoUDP, netip.MustParseAddr("fd00::1"), netip.AddrFrom16(dst)),
		udpHdr(5000, 53), make([]byte, 64))
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

type benchEnv struct {
	d    *Datapath
	ns   *netnstest.NS
	noop *ebpf.Program
	disp map[netif.Direction]*ebpf.Program
	// indirect are dispatchers with an indirect tail call (--tail-call
	// indirect), measured beside the default direct ones in disp.
	indirect map[netif.Direction]*ebpf.Program
	// before are dispatchers into the programs of beforeCommit, on the
	// same ports (withBefore).
	before   map[netif.Direction]*ebpf.Program
	beforeDp *Datapath
}

func newBenchEnv(b *testing.B, shared bool, maxFlows uint32) *benchEnv {
	b.Helper()
	requireFlowTable(b, shared)
	return newBenchEnvWith(b, Config{ReportInterval: time.Hour, perCPUFlows: !shared, MaxFlows: maxFlows,
		ReportBufferBytes: 4 << 20})
}

// newBenchEnvWith loads the datapath with cfg, a local-stack port 1 and
// port 2 in a namespace of its own, and their dispatchers.
func newBenchEnvWith(b *testing.B, cfg Config) *benchEnv {
	b.Helper()
	d := loadDatapath(b, cfg)
	ns := netnstest.New(b, netnstest.Dir(b), netnstest.Prefix(b))
	must2(b, d.SetPort(1, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode)}, LocalStack: true}))
	must2(b, d.SetPort(2, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 2}, LocalPort: 1}))
	e := &benchEnv{d: d, ns: ns, noop: d.objs.NsintTcNoop, disp: map[netif.Direction]*ebpf.Program{}, indirect: map[netif.Direction]*ebpf.Program{}}
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		p, err := d.Dispatcher(2, dir)
		must2(b, err)
		b.Cleanup(func() { p.Close() })
		e.disp[dir] = p
		p, err = d.dispatcher(2, dir, false)
		must2(b, err)
		b.Cleanup(func() { p.Close() })
		e.indirect[dir] = p
	}
	drainReports(b, d)
	return e
}

// withBefore loads the programs of beforeCommit with the same
// configuration and ports as e's, and their dispatchers.
func (e *benchEnv) withBefore(b *testing.B) {
	b.Helper()
	d := loadBefore(b, e.d.cfg)
	for id := uint16(1); id <= 2; id++ {
		var pc bpf.NsintPortConfig
		must2(b, e.d.objs.PortConfigs.Lookup(uint32(id), &pc))
		must2(b, d.objs.PortConfigs.Put(uint32(id), &pc))
	}
	e.before, e.beforeDp = map[netif.Direction]*ebpf.Program{}, d
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		p, err := d.Dispatcher(2, dir)
		must2(b, err)
		b.Cleanup(func() { p.Close() })
		e.before[dir] = p
	}
	drainReports(b, d)
}

// requireFlows fails the benchmark unless d's flow table holds n flows: a
// program that never got to its flow table would time well.
func requireFlows(b *testing.B, d *Datapath, n int) {
	b.Helper()
	var got int
	var prev any // nil: the first key
	for {
		var k bpf.NsintFlowKey
		err := d.objs.Flows.NextKey(prev, &k)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		must2(b, err)
		got, prev = got+1, &k
	}
	if got != n {
		b.Fatalf("flow table holds %d flows, want %d", got, n)
	}
}

func must2(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// timeRunsOn runs prog on every frame (repeat times each) inside the bench
// namespace on cpu and returns the kernel-measured mean ns per packet.
func (e *benchEnv) timeRunsOn(b *testing.B, cpu int, prog *ebpf.Program, frames [][]byte, repeat int) (float64, error) {
	var total time.Duration
	err := e.ns.Do(func() error {
		var orig, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			return err
		}
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return err
		}
		defer unix.SchedSetaffinity(0, &orig)
		for _, f := range frames {
			ret, d, err := prog.Benchmark(f, repeat, nil)
			if err != nil {
				return err
			}
			if ret != tcActUnspec {
				return fmt.Errorf("verdict %d", int32(ret))
			}
			total += d
		}
		return nil
	})
	return float64(total.Nanoseconds()) / float64(len(frames)), err
}

// timeContended runs the same frames on CPUs 0 and 1 at once (one heavy
// flow spread over two queues) and returns the mean ns per packet.
func (e *benchEnv) timeContended(b *testing.B, prog *ebpf.Program, frames [][]byte, repeat int) float64 {
	b.Helper()
	type res struct {
		ns  float64
		err error
	}
	ch := make(chan res, 2)
	for cpu := range 2 {
		go func() {
			ns, err := e.timeRunsOn(b, cpu, prog, frames, repeat)
			ch <- res{ns, err}
		}()
	}
	var sum float64
	for range 2 {
		r := <-ch
		must2(b, r.err)
		sum += r.ns
	}
	return sum / 2
}

// timeRuns is timeRunsOn CPU 0, failing the benchmark on error.
func (e *benchEnv) timeRuns(b *testing.B, prog *ebpf.Program, frames [][]byte, repeat int) float64 {
	b.Helper()
	ns, err := e.timeRunsOn(b, 0, prog, frames, repeat)
	must2(b, err)
	return ns
}

// benchResult holds per-round figures, ns per packet.
type benchResult struct {
	total, base []float64
	// before is the programs of beforeCommit over their baseline in the
	// same rounds, when they were measured.
	before []float64
}

// alternate times base then total on frames (repeat runs each) in each of
// benchRounds rounds, with timing (timeRuns or timeContended).
func alternate(b *testing.B, timing func(*testing.B, *ebpf.Program, [][]byte, int) float64,
	base, total *ebpf.Program, frames [][]byte, repeat int) benchResult {
	var res benchResult
	for range benchRounds {
		res.base = append(res.base, timing(b, base, frames, repeat))
		res.total = append(res.total, timing(b, total, frames, repeat))
	}
	return res
}

// alternateBefore is alternate with the before programs timed in each
// round too: base first, then before and total, whose order swaps from one
// round to the next so that a steady drift favours neither.
func alternateBefore(b *testing.B, base, total, before *ebpf.Program, frames [][]byte, repeat int,
	timing func(*testing.B, *ebpf.Program, [][]byte, int) float64) benchResult {
	var res benchResult
	for round := range benchRounds {
		t0 := timing(b, base, frames, repeat)
		var tb, tt float64
		if round%2 == 0 {
			tb = timing(b, before, frames, repeat)
			tt = timing(b, total, frames, repeat)
		} else {
			tt = timing(b, total, frames, repeat)
			tb = timing(b, before, frames, repeat)
		}
		res.base = append(res.base, t0)
		res.total = append(res.total, tt)
		res.before = append(res.before, tb-t0)
	}
	return res
}

func (r benchResult) report(b *testing.B) {
	over := make([]float64, len(r.total))
	for i := range over {
		over[i] = r.total[i] - r.base[i]
	}
	b.ReportMetric(median(r.total), "ns/op")
	b.ReportMetric(median(r.base), "baseline-ns/pkt")
	b.ReportMetric(median(over), "over-baseline-ns/pkt")
	b.ReportMetric(spreadOf(over), "spread-ns")
	if len(r.before) == 0 {
		return
	}
	diff := make([]float64, len(over))
	for i := range diff {
		diff[i] = over[i] - r.before[i]
	}
	b.ReportMetric(median(r.before), "before-over-baseline-ns/pkt")
	b.ReportMetric(spreadOf(r.before), "before-spread-ns")
	b.ReportMetric(median(diff), "after-minus-before-ns/pkt")
	b.ReportMetric(spreadOf(diff), "after-minus-before-spread-ns")
	b.ReportMetric(quantile(diff, 0.25), "after-minus-before-q1-ns")
	b.ReportMetric(quantile(diff, 0.75), "after-minus-before-q3-ns")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// quantile is the q-quantile of v, interpolated between ranks.
func quantile(v []float64, q float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[i] + (pos-float64(i))*(s[i+1]-s[i])
}

// spreadOf is max - min.
func spreadOf(v []float64) float64 { return slices.Max(v) - slices.Min(v) }

func BenchmarkPacket(b *testing.B) {
	netnstest.RequireRoot(b)
	scenarios := []benchScenario{
		{"udp", 1, benchUDP4},
		{"tcp", 1, benchTCP4},
		{"ipv6", 1, benchUDP6},
		{"flows-1000", 1000, benchUDP4},
		{"flows-100000", 100000, benchUDP4},
	}
	for _, design := range []string{"percpu", "shared"} {
		b.Run(design, func(b *testing.B) {
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				for _, sc := range scenarios {
					b.Run(dir.String()+"/"+sc.name, func(b *testing.B) {
						e := newBenchEnv(b, design == "shared", benchMaxFlows)
						frames := make([][]byte, sc.flows)
						for i := range frames {
							frames[i] = sc.frame(i)
						}
						// create the flows: a flow is stored at its second packet
						e.timeRuns(b, e.disp[dir], frames, 2)
						requireFlows(b, e.d, sc.flows)
						before, err := e.d.Stats()
						must2(b, err)
						var res benchResult
						if sc.flows == 1 {
							e.withBefore(b)
							e.timeRuns(b, e.before[dir], frames, 1)
							requireFlows(b, e.beforeDp, sc.flows)
							res = alternateBefore(b, e.noop, e.disp[dir], e.before[dir], frames, 200000, e.timeRuns)
						} else {
							res = alternate(b, e.timeRuns, e.noop, e.disp[dir], frames, 1)
						}
						after, err := e.d.Stats()
						must2(b, err)
						res.report(b)
						// Established flows must not report (interval 1 h):
						// reports here would mean evictions.
						b.ReportMetric(float64(after.Reports-before.Reports), "reports")
					})
				}
			}
			// The indirect tail call against the direct one (the default),
			// interleaved in the same rounds: what cheaper loading costs
			// per packet.
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				b.Run(dir.String()+"/udp-indirect-vs-direct", func(b *testing.B) {
					e := newBenchEnv(b, design == "shared", benchMaxFlows)
					frames := [][]byte{benchUDP4(0)}
					e.timeRuns(b, e.disp[dir], frames, 2) // store the flow
					res := alternate(b, e.timeRuns, e.disp[dir], e.indirect[dir], frames, 200000)
					res.report(b) // "baseline" here is the direct tail call
				})
			}
			// One flow on two CPUs at once: where a shared table pays for
			// cache-line bouncing and atomics.
			if ncpu, _ := ebpf.PossibleCPU(); ncpu >= 2 {
				for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
					b.Run(dir.String()+"/udp-2cpu", func(b *testing.B) {
						e := newBenchEnv(b, design == "shared", benchMaxFlows)
						frames := [][]byte{benchUDP4(0)}
						e.timeContended(b, e.disp[dir], frames, 1)
						alternate(b, e.timeContended, e.noop, e.disp[dir], frames, 200000).report(b)
					})
				}
			}
			// New flows: every packet is a flow's first, reported on its
			// own.
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				b.Run(dir.String()+"/new-flow", func(b *testing.B) {
					e := newBenchEnv(b, design == "shared", benchMaxFlows)
					const perRound = 10000
					var res benchResult
					for round := range benchRounds {
						frames := make([][]byte, perRound)
						for i := range frames {
							frames[i] = benchUDP4(round*perRound + i)
						}
						res.base = append(res.base, e.timeRuns(b, e.noop, frames, 1))
						res.total = append(res.total, e.timeRuns(b, e.disp[dir], frames, 1))
					}
					res.report(b)
				})
			}
		})
	}
}

// BenchmarkVerify measures what loading costs: one dispatcher (per
// interface and direction) against each main program (once per agent).
func BenchmarkVerify(b *testing.B) {
	netnstest.RequireRoot(b)
	d := loadDatapath(b, Config{MaxFlows: 1024, MaxPorts: 64})
	must2(b, d.SetPort(3, PortInfo{ID: netif.ID{Netns: netif.Netns(4026531840), Ifindex: 3}}))
	for _, direct := range []bool{true, false} {
		name := "dispatcher"
		if !direct {
			name = "dispatcher-indirect-tailcall"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				p, err := d.dispatcher(3, netif.Ingress, direct)
				must2(b, err)
				p.Close()
			}
		})
	}
	for _, name := range []string{bpf.NsintProgNsintTcIngress, bpf.NsintProgNsintTcEgress, bpf.NsintProgNsintKfreeSkb} {
		b.Run(name, func(b *testing.B) {
			spec, err := newSpec(d.cfg, d.dropped, d.sharedFlows)
			must2(b, err)
			// Reuse the loaded maps: only the program is verified.
			m := d.objs.NsintMaps
			repl := map[string]*ebpf.Map{
				bpf.NsintMapDropFlows: m.DropFlows, bpf.NsintMapEvents: m.Events,
				bpf.NsintMapFlows: m.Flows, bpf.NsintMapCpuState: m.CpuState, bpf.NsintMapPortConfigs: m.PortConfigs,
				bpf.NsintMapPortCounters: m.PortCounters, bpf.NsintMapPortIds: m.PortIds, bpf.NsintMapStats: m.Stats,
				bpf.NsintMapTcProgs: m.TcProgs, bpf.NsintMapTransit: m.Transit, bpf.NsintMapWatchMeta: m.WatchMeta,
				bpf.NsintMapWatchRules: m.WatchRules,
			}
			ps := spec.Programs[name]
			for b.Loop() {
				coll, err := ebpf.NewCollectionWithOptions(&ebpf.CollectionSpec{
					Maps: spec.Maps, Programs: map[string]*ebpf.ProgramSpec{name: ps}, Variables: spec.Variables, Types: spec.Types,
				}, ebpf.CollectionOptions{MapReplacements: repl})
				must2(b, err)
				coll.Close()
			}
		})
	}
}
