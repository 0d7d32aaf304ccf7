package datapath

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// sweep runs one sweep and returns its events.
func (h *harness) sweep(opts SweepOptions) []Event {
	h.tb.Helper()
	var evs []Event
	if _, err := h.d.Sweep(opts, func(ev *Event) { evs = append(evs, *ev) }); err != nil {
		h.tb.Fatal(err)
	}
	return evs
}

// TestSweepQuietFlow: the packets a flow's last-flow slot and entry hold
// when it goes quiet come out in one idle report once its interval has
// passed, and only once; before that a sweep takes nothing.
func TestSweepQuietFlow(t *testing.T) {
	const interval = 200 * time.Millisecond
	for _, v := range sweepVariants {
		t.Run(v.name, func(t *testing.T) {
			requireFlowTable(t, v.shared)
			h := newHarness(t, v.config(Config{ReportInterval: interval}))
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				frame := udpFrame("198.18.0.1", "198.18.0.2", 1100+uint16(dir), 2000, 100)
				n := uint64(len(frame))
				h.run(hPortA, dir, frame, nil)
				if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
					t.Fatalf("%s first packet: %s with %d packets, want new with 1", dir, ev.Reason, ev.Packets)
				}
				h.runN(hPortA, dir, frame, nil, 5)
				h.run(hPortA, dir, frame, &skbCtx{GsoSegs: 4})
				if evs := h.sweep(SweepOptions{}); len(evs) != 0 {
					t.Fatalf("%s: a sweep inside the interval reported %+v", dir, evs)
				}
				time.Sleep(interval + 50*time.Millisecond)
				evs := h.sweep(SweepOptions{})
				if len(evs) != 1 {
					t.Fatalf("%s: the sweep after the interval made %d reports, want 1: %+v", dir, len(evs), evs)
				}
				ev := evs[0]
				wantIn, wantOut := uint16(hPortA), uint16(hLocalPort)
				if dir == netif.Egress {
					wantIn, wantOut = hLocalPort, hPortA
				}
				// 5 frames and one GSO packet of 4 segments: 3 more copies
				// of its headers on the wire.
				wantBytes := 6*n + 3*(14+20+8)
				if ev.Type != FlowEvent || ev.Reason != ReasonIdle || ev.Packets != 5+4 || ev.Bytes != wantBytes ||
					ev.Port != hPortA || ev.Direction != dir || ev.InPort != wantIn || ev.OutPort != wantOut ||
					ev.SrcPort != 1100+uint16(dir) || ev.DstPort != 2000 || ev.Proto != protoUDP ||
					ev.Src.String() != "198.18.0.1" || ev.Dst.String() != "198.18.0.2" {
					t.Errorf("%s idle report %+v; want idle, %d packets, %d bytes, port %d %d→%d", dir, ev, 9, wantBytes, hPortA, wantIn, wantOut)
				}
				if evs := h.sweep(SweepOptions{}); len(evs) != 0 {
					t.Errorf("%s: a second sweep reported again: %+v", dir, evs)
				}
				h.none(dir.String() + " after the sweeps")
			}
			st, err := h.d.Stats()
			must(t, err)
			if inKernel := v.shared && !v.userSpaceScan && haveForEachMapElem() == nil; inKernel != (st.SweepScanned > 0) {
				t.Errorf("the kernel scanned %d flow entries; want a scan %v", st.SweepScanned, inKernel)
			}
		})
	}
}

func tableName(shared bool) string {
	if shared {
		return "shared"
	}
	return "percpu"
}

// sweepVariant is one way a sweep finds what is due: on the per-CPU table
// (user space reads it), on the shared table scanned in the kernel (where
// bpf_for_each_map_elem exists), and on the shared table read from user
// space.
type sweepVariant struct {
	name          string
	shared        bool
	userSpaceScan bool
}

var sweepVariants = []sweepVariant{{"percpu", false, false}, {"shared", true, false}, {"shared-userscan", true, true}}

func (v sweepVariant) config(c Config) Config {
	c.perCPUFlows = !v.shared
	c.userSpaceScan = v.userSpaceScan
	return c
}

// TestSweepForcedPort: a sweep for a port going away takes its flows'
// counts at once, leaving other ports' flows to their interval.
func TestSweepForcedPort(t *testing.T) {
	for _, v := range sweepVariants {
		t.Run(v.name, func(t *testing.T) {
			requireFlowTable(t, v.shared)
			h := newHarness(t, v.config(Config{ReportInterval: time.Hour}))
			a := udpFrame("198.18.0.1", "198.18.0.2", 1200, 2000, 10)
			b := udpFrame("198.18.0.1", "198.18.0.2", 1201, 2000, 10)
			h.runN(hPortA, netif.Egress, a, nil, 3)
			h.runN(hPortB, netif.Egress, b, nil, 7)
			h.next()
			h.next()
			evs := h.sweep(SweepOptions{Ports: []uint16{hPortB}})
			if len(evs) != 1 || evs[0].Port != hPortB || evs[0].Reason != ReasonFlush || evs[0].Packets != 6 {
				t.Fatalf("sweep of port %d: %+v; want one flush report of port %d with 6 packets", hPortB, evs, hPortB)
			}
			evs = h.sweep(SweepOptions{All: true})
			if len(evs) != 1 || evs[0].Port != hPortA || evs[0].Packets != 2 {
				t.Fatalf("sweep of all: %+v; want one report of port %d with 2 packets", evs, hPortA)
			}
		})
	}
}

// TestTCPEnd: a FIN or RST is reported with the packets before it at once,
// and so is every later packet of the connection until a SYN starts it
// afresh; a sweep then finds nothing left.
func TestTCPEnd(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			h := newHarness(t, Config{ReportInterval: time.Hour, perCPUFlows: !shared})
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				seg := func(flags byte) []byte {
					return tcpFrame("198.18.0.1", "198.18.0.2", 3300+uint16(dir), 80, flags)
				}
				const syn, ack, fin, rst = tcpSYN, tcpACK, tcpFIN, tcpRST
				h.run(hPortA, dir, seg(syn), nil)
				h.next()
				h.runN(hPortA, dir, seg(ack), nil, 10)
				h.none(dir.String() + " established")
				h.run(hPortA, dir, seg(fin|ack), nil)
				ev := h.next()
				if ev.Reason != ReasonEnd || ev.Packets != 11 {
					t.Fatalf("%s FIN: %s with %d packets, want end with 11", dir, ev.Reason, ev.Packets)
				}
				h.run(hPortA, dir, seg(ack), nil)
				if ev := h.next(); ev.Reason != ReasonEnd || ev.Packets != 1 {
					t.Fatalf("%s ACK after FIN: %s with %d packets, want end with 1", dir, ev.Reason, ev.Packets)
				}
				h.run(hPortA, dir, seg(rst), nil)
				if ev := h.next(); ev.Reason != ReasonEnd || ev.Packets != 1 {
					t.Fatalf("%s RST: %s with %d packets, want end with 1", dir, ev.Reason, ev.Packets)
				}
				// A SYN opens the 5-tuple again: counted, reported on its
				// interval, not at once.
				h.run(hPortA, dir, seg(syn), nil)
				h.runN(hPortA, dir, seg(ack), nil, 3)
				h.none(dir.String() + " reopened")
				if evs := h.sweep(SweepOptions{}); len(evs) != 0 {
					t.Errorf("%s: sweep after the reopening reported %+v", dir, evs)
				}
				if evs := h.sweep(SweepOptions{All: true}); len(evs) != 1 || evs[0].Packets != 4 {
					t.Errorf("%s: final sweep %+v, want one report of 4 packets", dir, evs)
				}
			}
		})
	}
}

// TestSweepRace: packets of one flow are counted in both directions while
// sweeps run all the time, on both flow tables, with a refresh due every
// few hundred microseconds, so that the programs' own reports, their
// last-flow slots and the sweep's takes interleave in every order. First
// the traffic runs on CPU 1 while the sweep runs from CPU 0 (every sweep of
// CPU 1 is an interrupt that may land inside a program), then on both CPUs
// with the sweep anywhere (sometimes on the CPU it sweeps). After the
// traffic and a last sweep, the reports carry every packet exactly once.
func TestSweepRace(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("skipping: needs two CPUs")
	}
	const interval = 300 * time.Microsecond
	for _, v := range sweepVariants {
		t.Run(v.name, func(t *testing.T) {
			requireFlowTable(t, v.shared)
			h := newHarness(t, v.config(Config{ReportInterval: interval, ReportBufferBytes: 16 << 20, preciseClock: true}))
			// A test run interrupted by a signal (the Go runtime's
			// preemption) is run again whole: the kernel's run count
			// of the dispatchers says how many packets there were.
			stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
			must(t, err)
			defer stats.Close()
			var swept, sweeps, retries atomic.Uint64
			sweepUntil := func(stop <-chan struct{}, pin int) error {
				if pin >= 0 {
					runtime.LockOSThread()
					defer runtime.UnlockOSThread()
					var set unix.CPUSet
					set.Set(pin)
					if err := unix.SchedSetaffinity(0, &set); err != nil {
						return err
					}
				}
				for {
					select {
					case <-stop:
						return nil
					default:
					}
					st, err := h.d.Sweep(SweepOptions{}, func(ev *Event) { swept.Add(ev.Packets) })
					if err != nil {
						return err
					}
					sweeps.Add(1)
					retries.Add(uint64(st.Retries))
				}
			}
			for _, phase := range []struct {
				name     string
				cpus     []int
				sweepPin int
			}{{"traffic on CPU 1, sweep from CPU 0", []int{1}, 0}, {"traffic on both CPUs", []int{0, 1}, -1}} {
				stop := make(chan struct{})
				sweepErr := make(chan error, 1)
				go func() { sweepErr <- sweepUntil(stop, phase.sweepPin) }()
				const rounds, perRun = 20, 20000
				for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
					frame := udpFrame("198.18.0.1", "198.18.0.2", 3400+uint16(dir), 4000, 64)
					prog := h.dispatcher(hPortA, dir)
					errs := make(chan error, len(phase.cpus))
					for _, cpu := range phase.cpus {
						go func() {
							for range rounds {
								if err := runOnCPU(h.ns, cpu, prog, frame, perRun); err != nil {
									errs <- err
									return
								}
							}
							errs <- nil
						}()
					}
					for range phase.cpus {
						if err := <-errs; err != nil {
							t.Fatalf("%s, %s: %v", phase.name, dir, err)
						}
					}
				}
				close(stop)
				if err := <-sweepErr; err != nil {
					t.Fatalf("%s: %v", phase.name, err)
				}
			}
			var sent uint64
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				st, err := h.dispatcher(hPortA, dir).Stats()
				must(t, err)
				sent += st.RunCount
			}
			time.Sleep(2 * interval)
			var reported uint64
			for _, ev := range h.sweep(SweepOptions{All: true}) {
				reported += ev.Packets
			}
			for {
				ev, ok := h.poll()
				if !ok {
					break
				}
				reported += ev.Packets
			}
			dstats, err := h.d.Stats()
			must(t, err)
			total := reported + swept.Load()
			t.Logf("%d sweeps (%d retried: a CPU mid-packet) took %d packets; %d packets bypassed a sweep; reports %d; sent %d",
				sweeps.Load(), retries.Load(), swept.Load(), dstats.SweepBypassed, reported, sent)
			if total != sent {
				t.Errorf("reports carry %d packets, want %d", total, sent)
			}
		})
	}
}

// TestSweepBytesAlone: an entry left with bytes and no packets — a take ran
// between another CPU's two adds of one packet, whose packet went out in
// that report — is reported by the sweep, bytes alone, not dropped.
func TestSweepBytesAlone(t *testing.T) {
	for _, v := range sweepVariants {
		t.Run(v.name, func(t *testing.T) {
			requireFlowTable(t, v.shared)
			h := newHarness(t, v.config(Config{ReportInterval: time.Hour}))
			frame := udpFrame("198.18.0.1", "198.18.0.2", 1300, 2300, 60)
			h.run(hPortA, netif.Egress, frame, nil)
			if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
				t.Fatalf("first packet: %s with %d packets, want new with 1", ev.Reason, ev.Packets)
			}
			h.run(hPortA, netif.Egress, frame, nil) // stores the flow
			h.none("second packet")
			key := flowKeyOf(t, frame, hPortA, netif.Egress)
			const left = 66
			if v.shared {
				var st bpf.NsintFlowState
				must(t, h.d.objs.Flows.Lookup(&key, &st))
				st.Packets, st.Bytes = 0, left
				must(t, h.d.objs.Flows.Put(&key, &st))
			} else {
				var per []bpf.NsintFlowState
				must(t, h.d.objs.Flows.Lookup(&key, &per))
				for cpu := range per {
					if per[cpu].LastReportNs != 0 {
						per[cpu].Packets, per[cpu].Bytes = 0, left
					}
				}
				must(t, h.d.objs.Flows.Put(&key, per))
			}
			evs := h.sweep(SweepOptions{All: true})
			var packets, bytes uint64
			for _, ev := range evs {
				packets += ev.Packets
				bytes += ev.Bytes
			}
			if len(evs) != 1 || packets != 0 || bytes != left {
				t.Errorf("the sweep reported %+v; want one report of %d bytes, no packet", evs, left)
			}
		})
	}
}

// TestSlotFlushRemadeEntry: on the per-CPU table, a flow's entry evicted
// while this CPU's last-flow slot holds some of its packets, and made again
// by another CPU, has this CPU's part zeroed. The slot's packets, flushed
// there, would be overwritten by the flow's next store on this CPU and never
// reported: they are counted lost instead (slot_flush_lost), by the next
// packet's flush and by the sweep's alike, and the port's counters keep
// them. Nothing of them reaches a report, and no report carries a packet
// twice.
func TestSlotFlushRemadeEntry(t *testing.T) {
	for _, bySweep := range []bool{false, true} {
		name := "packet"
		if bySweep {
			name = "sweep"
		}
		t.Run(name, func(t *testing.T) {
			requireFlowTable(t, false)
			h := newHarness(t, Config{ReportInterval: time.Hour, perCPUFlows: true})
			cpus := h.d.possibleCPUs()
			if cpus < 2 {
				t.Skip("skipping: needs two possible CPUs")
			}
			f := udpFrame("198.18.0.1", "198.18.0.2", 1300, 2000, 10)
			// First (reported), second (stored), third (in CPU 0's slot).
			h.runN(hPortA, netif.Egress, f, nil, 3)
			if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
				t.Fatalf("first packet: %s with %d packets, want new with 1", ev.Reason, ev.Packets)
			}
			h.none("the second and third packets")

			// Evicted, and made again by CPU 1: CPU 0's part is zero.
			key := flowKeyOf(t, f, hPortA, netif.Egress)
			must(t, h.d.objs.Flows.Delete(key))
			vals := make([]bpf.NsintFlowState, cpus)
			vals[1] = bpf.NsintFlowState{LastReportNs: uint64(monotonicNow()), Packets: 5, Bytes: 5 * uint64(len(f)), OutPort: hPortA, Watched: 1}
			must(t, h.d.objs.Flows.Put(key, vals))

			g := udpFrame("198.18.0.1", "198.18.0.2", 1301, 2000, 10)
			if bySweep {
				h.sweep(SweepOptions{})
			} else {
				h.run(hPortA, netif.Egress, g, nil) // another flow: flushes f's slot
				h.next()
			}
			st, err := h.d.Stats()
			must(t, err)
			if st.CacheFlushLost != 1 {
				t.Errorf("slot_flush_lost %d after the flush into the remade entry, want 1", st.CacheFlushLost)
			}
			var got []bpf.NsintFlowState
			must(t, h.d.objs.Flows.Lookup(key, &got))
			if got[0].Packets != 0 || got[0].Bytes != 0 {
				t.Errorf("CPU 0's part of the remade entry holds %d packets %d bytes, want none: they would be overwritten unreported", got[0].Packets, got[0].Bytes)
			}

			// f's next packet on CPU 0 stores CPU 0's part afresh; the
			// final sweep carries it and CPU 1's five.
			h.run(hPortA, netif.Egress, f, nil)
			var packets uint64
			for _, ev := range h.sweep(SweepOptions{All: true}) {
				if ev.SrcPort == 1300 {
					packets += ev.Packets
				}
			}
			if packets != 1+5 {
				t.Errorf("the final sweep reported %d packets of the flow, want 6: its last on CPU 0 and the 5 of CPU 1", packets)
			}
			want := uint64(4)
			if !bySweep {
				want++ // g
			}
			if c := h.dirCounters(hPortA, netif.Egress); c.Packets != want {
				t.Errorf("port counters: %d packets, want %d: every packet, the lost slot's too", c.Packets, want)
			}
		})
	}
}
