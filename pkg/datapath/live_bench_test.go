package datapath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// BenchmarkLive measures ns/packet on real packets in steady state: UDP
// datagrams sent through veth pairs between two namespaces, an egress
// dispatcher and the do-nothing program both attached to the sender's end,
// with the kernel's BPF run-time statistics (BPF_ENABLE_STATS, held only for
// the benchmark) giving each program's time per run. Unlike BenchmarkPacket
// (BPF_PROG_TEST_RUN, one syscall per packet for changing flows) every packet
// here can be a new flow without a system call of its own in the measure,
// and the caches are as cold as the network stack leaves them:
//
//	new-flow         each datagram goes to another destination port: every
//	                 packet is a flow's first, reported on its own (a flow
//	                 is stored at its second packet: flow_mark_first)
//	two-packet-flow  each destination port gets two datagrams in a row: a
//	                 flow's first packet and the second that stores it (the
//	                 flow-table insert), per packet
//	established      one flow, reported once per hour
//
// The flow table and the first packets' marks are emptied before each
// round of the new-flow cases, so that no packet finds its flow stored, or
// its first packet marked, in an earlier round.
//
// The flow tables have the agent's default size (DefaultMaxFlows entries)
// but for one pair's: a new flow's lookup misses in the table's bucket
// array, whose size follows the table's, so the bigtable pair runs the
// defaults with benchMaxFlows entries (--max-flows 262144) to show what a
// larger table costs. The report rings have 4 MiB per CPU, 16 times the
// default: with the default, the reader (on the other CPU of a 2-CPU
// machine, where the receiving end's softirq runs too) fell behind a burst
// of 20 000 new flows often enough for the ring to refuse reports.
//
// Five pairs run side by side, each on its own veth: the shared flow table
// with the direct tail call (the defaults), the shared table with the
// indirect tail call (--tail-call indirect, see dispatcherSpec), the
// per-CPU flow table (kernels before 5.12) with the direct one, the
// defaults with the larger table, and the defaults with the programs of
// beforeCommit (loadBefore). No report may be refused for want of room in
// the ring (its counts would go into the flow table, an insert the figure
// is not about): the benchmark fails if one is. Rounds
// interleave pairs and cases, in reverse order every other round so that a
// steady drift favours none; the figure is the median over rounds of
// (dispatcher - do-nothing) ns per run, spread max - min. The before pair
// is reported on the defaults' line (before-over-baseline-ns/pkt,
// after-minus-before-ns/pkt: the difference round by round).
//
//	go test -run '^$' -bench Live -benchtime 1x ./pkg/datapath/
func BenchmarkLive(b *testing.B) {
	netnstest.RequireRoot(b)
	requireFlowTable(b, true)
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	b.Cleanup(func() { stats.Close() })

	dir, pfx := netnstest.Dir(b), netnstest.Prefix(b)
	src := netnstest.New(b, dir, pfx+"-s")
	dst := netnstest.New(b, dir, pfx+"-d")
	type variant struct{ perCPU, bigTable, before bool }
	loaded := map[variant]*Datapath{}
	for _, v := range []variant{{}, {perCPU: true}, {bigTable: true}, {before: true}} {
		cfg := Config{ReportInterval: time.Hour, ReportBufferBytes: 4 << 20, perCPUFlows: v.perCPU}
		if v.bigTable {
			cfg.MaxFlows = benchMaxFlows
		}
		var d *Datapath
		if v.before {
			d = loadBefore(b, cfg)
		} else {
			d = loadDatapath(b, cfg)
		}
		must2(b, d.SetPort(1, PortInfo{ID: netif.ID{Netns: netif.Netns(src.Inode)}, LocalStack: true}))
		drainReports(b, d)
		loaded[v] = d
	}
	type pair struct {
		name       string
		disp, noop *ebpf.Program
		flows      *ebpf.Map // the pair's flow table
		marks      *ebpf.Map // its first_marks; nil in beforeCommit's
		res        map[string]*benchResult
		dst        [4]byte
		nextPort   int
	}
	var pairs []*pair
	for i, c := range []struct {
		name   string
		v      variant
		direct bool
	}{
		{"shared/direct", variant{}, true}, {"shared/indirect-tailcall", variant{}, false},
		{"percpu/direct", variant{perCPU: true}, true}, {"bigtable/direct", variant{bigTable: true}, true},
		{"before", variant{before: true}, true},
	} {
		d := loaded[c.v]
		dev := fmt.Sprintf("l%d", i)
		netnstest.Veth(b, src, dev, dst, dev)
		netnstest.AddAddr(b, src, dev, fmt.Sprintf("198.18.%d.1/24", 231+i))
		netnstest.AddAddr(b, dst, dev, fmt.Sprintf("198.18.%d.2/24", 231+i))
		ifindex := linkIndex(b, src, dev)
		port := uint16(2 + i)
		must2(b, d.SetPort(port, PortInfo{ID: netif.ID{Netns: netif.Netns(src.Inode), Ifindex: netif.Ifindex(ifindex)}, LocalPort: 1}))
		disp, err := d.dispatcher(port, netif.Egress, c.direct)
		must2(b, err)
		b.Cleanup(func() { disp.Close() })
		attachTCX(b, src, ifindex, netif.Egress, disp)
		attachTCX(b, src, ifindex, netif.Egress, d.objs.NsintTcNoop) // runs after ours
		pairs = append(pairs, &pair{name: c.name, disp: disp, noop: d.objs.NsintTcNoop, flows: d.objs.Flows, marks: d.objs.FirstMarks, dst: [4]byte{198, 18, byte(231 + i), 2},
			res: map[string]*benchResult{"new-flow": {}, "two-packet-flow": {}, "established": {}}})
	}
	// Nobody listens at the other end: the datagrams die there, and the
	// ICMP errors that answer them are rate limited.
	fd := udpSocket(b, src)
	payload := make([]byte, 64)

	const perRound = 20000
	for round := range benchRounds + 1 {
		order := slices.Clone(pairs)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			for _, c := range liveCases {
				if c != "established" {
					// Round 3 would come back to round 0's ports: every
					// flow of a round must be missing from the table,
					// and its first packet from the marks.
					emptyMap(b, p.flows)
					if p.marks != nil {
						zeroArray(b, p.marks)
					}
				}
				d0, n0 := progStats(b, p.disp)
				b0, m0 := progStats(b, p.noop)
				for i := range perRound {
					port := 9
					if c == "new-flow" || (c == "two-packet-flow" && i%2 == 0) {
						p.nextPort++
					}
					if c != "established" {
						port = 1024 + p.nextPort%60000
					}
					sendTo(b, fd, payload, p.dst, port)
				}
				d1, n1 := progStats(b, p.disp)
				b1, m1 := progStats(b, p.noop)
				if n1-n0 < perRound {
					b.Fatalf("%s ran %d times for %d datagrams", p.name, n1-n0, perRound)
				}
				if round == 0 {
					continue // warm-up: flow table, caches, first reports
				}
				// A do-nothing program runs on every pair of its
				// datapath: its count includes the other pairs' packets
				// of this case (none: cases and pairs take turns), so
				// per-run time is fair.
				r := p.res[c]
				r.total = append(r.total, float64(d1-d0)/float64(n1-n0))
				r.base = append(r.base, float64(b1-b0)/float64(m1-m0))
			}
		}
	}
	for v, d := range loaded {
		if v.before {
			continue // its stats have the layout of its own commit
		}
		if st, err := d.Stats(); err != nil || st.RingFull != 0 {
			b.Fatalf("datapath %+v: %d reports refused by a full ring (%v): the figures would include their flows' inserts", v, st.RingFull, err)
		}
	}
	// The before pair (last) goes on the defaults' lines (first).
	defaults, before := pairs[0], pairs[len(pairs)-1]
	for _, c := range liveCases {
		r := before.res[c]
		for i := range r.total {
			defaults.res[c].before = append(defaults.res[c].before, r.total[i]-r.base[i])
		}
	}
	for _, p := range pairs[:len(pairs)-1] {
		for _, c := range liveCases {
			b.Run(p.name+"/egress/"+c, func(b *testing.B) { p.res[c].report(b) })
		}
	}
}

// liveCases are BenchmarkLive's cases, in the order each round runs them.
var liveCases = []string{"new-flow", "two-packet-flow", "established"}

// emptyMap deletes every entry of a hash map.
func emptyMap(tb testing.TB, m *ebpf.Map) {
	tb.Helper()
	var keys [][]byte
	var prev any // nil: the first key
	for {
		next := make([]byte, m.KeySize())
		err := m.NextKey(prev, &next)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		must2(tb, err)
		keys = append(keys, next)
		prev = next
	}
	for _, k := range keys {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			tb.Fatalf("empty %s: %v", m, err)
		}
	}
}

// zeroArray sets every element of an array map to zero.
func zeroArray(tb testing.TB, m *ebpf.Map) {
	tb.Helper()
	zero := make([]byte, m.ValueSize())
	for i := range m.MaxEntries() {
		if err := m.Put(i, zero); err != nil {
			tb.Fatalf("zero %s[%d]: %v", m, i, err)
		}
	}
}

func linkIndex(tb testing.TB, ns *netnstest.NS, name string) int {
	tb.Helper()
	l, err := ns.NetlinkHandle(tb).LinkByName(name)
	if err != nil {
		tb.Fatalf("find %s in %s: %v", name, ns.Name, err)
	}
	return l.Attrs().Index
}

// drainReports reads and discards reports so that the ring never refuses one
// for lack of room, until the benchmark ends. The programs of beforeCommit
// write to a perf event array: their reports are drained by a perf reader.
func drainReports(tb testing.TB, d *Datapath) {
	if d.objs.Events.Type() == ebpf.PerfEventArray {
		drainPerf(tb, d.objs.Events)
		return
	}
	r, err := d.NewReader()
	must2(tb, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ev Event
		for ctx.Err() == nil {
			if err := r.Read(&ev); errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	tb.Cleanup(func() { cancel(); r.Close(); <-done })
}

// drainPerf reads and discards the records of a perf event array, waking
// once per 64 of them as the benchmarks configured beforeCommit's reader.
func drainPerf(tb testing.TB, events *ebpf.Map) {
	pr, err := perf.NewReaderWithOptions(events, 4<<20, perf.ReaderOptions{WakeupEvents: 64})
	must2(tb, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var rec perf.Record
		for {
			if err := pr.ReadInto(&rec); errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	tb.Cleanup(func() { pr.Close(); <-done })
}

// udpSocket is an unconnected UDP socket opened inside ns.
func udpSocket(tb testing.TB, ns *netnstest.NS) int {
	tb.Helper()
	var fd int
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	must2(tb, err)
	tb.Cleanup(func() { unix.Close(fd) })
	return fd
}

// sendTo sends payload to addr:port.
func sendTo(tb testing.TB, fd int, payload []byte, addr [4]byte, port int) {
	if err := unix.Sendto(fd, payload, 0, &unix.SockaddrInet4{Port: port, Addr: addr}); err != nil {
		tb.Fatalf("send to %v port %d: %v", addr, port, err)
	}
}

// progStats returns the run time and run count the kernel has for prog.
func progStats(tb testing.TB, prog *ebpf.Program) (time.Duration, uint64) {
	st, err := prog.Stats()
	must2(tb, err)
	return st.Runtime, st.RunCount
}
