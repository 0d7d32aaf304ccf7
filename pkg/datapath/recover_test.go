package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/watchlist"
)

// testGenerationRoot mounts a BPF filesystem of the test's own and returns
// a generation root on it; the mount goes at cleanup.
func testGenerationRoot(tb testing.TB) string {
	tb.Helper()
	netnstest.RequireRoot(tb)
	dir := tb.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		tb.Fatalf("mount bpffs at %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			tb.Errorf("unmount bpffs %s: %v", dir, err)
		}
	})
	return filepath.Join(dir, "nsint", "gen")
}

// harnessIn is newHarness in an existing namespace: a second datapath, with
// the same ports, as the next agent start would configure them.
func harnessIn(tb testing.TB, cfg Config, ns *netnstest.NS) *harness {
	tb.Helper()
	d := loadDatapath(tb, cfg)
	r, err := d.NewReader()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	h := &harness{root: tb, tb: tb, d: d, r: r, ns: ns, disp: map[dispKey]*ebpf.Program{}, local: hLocalPort}
	h.setPort(hLocalPort, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode)}, LocalStack: true})
	h.setPort(hPortA, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 100}, LocalPort: hLocalPort})
	h.setPort(hPortB, PortInfo{ID: netif.ID{Netns: netif.Netns(ns.Inode), Ifindex: 101}, LocalPort: hLocalPort})
	return h
}

// pin pins h's datapath under root and returns the generation's directory.
func (h *harness) pin(root string) string {
	h.tb.Helper()
	dir, err := h.d.Pin(root)
	if err != nil {
		h.tb.Fatal(err)
	}
	return dir
}

// kill ends h's datapath as kill -9 would: no sweep, reader and maps
// closed, pins kept. Dispatchers the test holds stay "attached".
func (h *harness) kill() {
	h.tb.Helper()
	h.r.Close()
	if err := h.d.Close(); err != nil {
		h.tb.Fatal(err)
	}
}

// drain returns every pending event.
func (h *harness) drain() []Event {
	h.tb.Helper()
	var evs []Event
	for {
		ev, ok := h.poll()
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
}

// flowID names a flow at a hook in the test's tallies.
type flowID struct {
	dir              netif.Direction
	port             uint16
	sport, dport     uint16
	in, out          uint16
	packets, dropped bool
}

func (f flowID) String() string {
	return fmt.Sprintf("%s port %d %d→%d (ports %d→%d)", f.dir, f.port, f.sport, f.dport, f.in, f.out)
}

type tally struct{ packets, bytes uint64 }

// TestRecoverAfterKill: a datapath counts flows in both directions — some
// packets left in the last-flow slots, some in the entries, a forwarded
// ingress flow, a transit egress flow, an unwatched flow, drops the rate
// limit folded — and is then dropped without a sweep, as by kill -9; its
// dispatchers go on counting. A second datapath pinned in the same place
// recovers: the events carry exactly the packets, bytes and drops no report
// carried, with the ports the kernel would have named; the old ports'
// counters are the new ones' baseline; the old generation is gone and its
// dispatchers count no more.
func TestRecoverAfterKill(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			root := testGenerationRoot(t)
			cfg := Config{ReportInterval: time.Hour, DropReportInterval: time.Hour, perCPUFlows: !shared}
			h1 := newHarness(t, cfg)
			dir1 := h1.pin(root)
			netnsVethPair(t, h1, h1.ns.Name[:8]) // 198.18.10.0/24 is forwarded
			watched := []watchlist.Rule{{Proto: protoUDP, DstPort: watchlist.PortRange{Lo: 2000, Hi: 2999}}}
			must(t, h1.d.SetWatchlist(watched))
			hook, err := h1.d.AttachDropHook()
			must(t, err)

			frame := func(src, dst string, sport, dport uint16) []byte {
				return udpFrame(src, dst, sport, dport, 40+int(sport%7))
			}
			local := func(sport, dport uint16) []byte { return frame("198.18.0.1", "198.18.0.2", sport, dport) }
			var (
				fwd      = frame("198.18.9.1", "198.18.10.2", 1005, 2005)
				unwatchd = local(1007, 5555)
				f1, f2   = local(1001, 2001), local(1002, 2002)
				f3, f4   = local(1003, 2003), local(1004, 2004)
			)
			// netif.Ingress: a forwarded flow (its entry holds 2, reported at
			// egress), an unwatched one, then f1 (1 reported, 5 left in its
			// entry when f2 flushes the slot) and f2 (1 reported, 1 in the
			// entry its second packet made, 2 in the slot).
			h1.runN(hPortA, netif.Ingress, fwd, nil, 3)
			h1.runN(hPortA, netif.Ingress, unwatchd, nil, 5)
			h1.run(hPortA, netif.Ingress, f1, nil)
			h1.runN(hPortA, netif.Ingress, f1, nil, 5)
			h1.run(hPortA, netif.Ingress, f2, nil)
			h1.runN(hPortA, netif.Ingress, f2, nil, 3)
			// netif.Egress: the forwarded flow in transit from A (1 reported, 2
			// in its entry: transit is never in a slot), f3 (1 + 4 in its
			// entry), f4 (1 + 2 in the slot).
			transit := haveTestRunIngressIfindex() == nil
			if transit {
				h1.runN(hPortB, netif.Egress, fwd, &skbCtx{IngressIfindex: 100}, 3)
			}
			h1.run(hPortB, netif.Egress, f3, nil)
			h1.runN(hPortB, netif.Egress, f3, nil, 4)
			h1.run(hPortB, netif.Egress, f4, nil)
			h1.runN(hPortB, netif.Egress, f4, nil, 2)
			// Drops: UDP to a closed port on loopback, the local-stack
			// port's; the first is reported, the shared table folds the
			// next four.
			sendUDP(t, h1.ns, "127.0.0.1:9", 5)

			want := map[flowID]tally{}
			wantFlow := func(dir netif.Direction, port uint16, fr []byte, in, out uint16, packets uint64) {
				f := flowID{dir: dir, port: port, sport: sportOf(fr), dport: dportOf(fr), in: in, out: out, packets: true}
				want[f] = tally{packets, packets * uint64(len(fr))}
			}
			wantFlow(netif.Ingress, hPortA, f1, hPortA, hLocalPort, 5)
			wantFlow(netif.Ingress, hPortA, f2, hPortA, hLocalPort, 3+1) // one more after the kill
			wantFlow(netif.Egress, hPortB, f3, hLocalPort, hPortB, 4)
			wantFlow(netif.Egress, hPortB, f4, hLocalPort, hPortB, 2)
			loopback := netip.MustParseAddr("127.0.0.1")
			dropKey := flowID{dir: netif.Ingress, port: hLocalPort, sport: testSrcPort, dport: 9, in: hLocalPort, dropped: true}
			if shared {
				want[dropKey] = tally{packets: 4}
			}

			// What the first agent reported before it died.
			reported := map[flowID]uint64{}
			for _, ev := range h1.drain() {
				reported[eventFlowID(ev)] += ev.Packets
			}
			if transit {
				// The transit flow's hop latency grows with every packet
				// (its ingress time is the forwarded flow's): where the
				// test runs slowly (an emulated CPU) it can cross into the
				// next log2 bucket and be reported at once. What was not
				// reported is what recovery owes.
				id := flowID{dir: netif.Egress, port: hPortB, sport: sportOf(fwd), dport: dportOf(fwd), in: hPortA, out: hPortB, packets: true}
				if n := reported[id]; n == 0 || n > 3 {
					t.Fatalf("transit packets reported before the kill: %d, want 1 to 3 of 3", n)
				} else if n < 3 {
					wantFlow(netif.Egress, hPortB, fwd, hPortA, hPortB, 3-n)
				}
			}
			if n := reported[dropKey]; (shared && n != 1) || (!shared && n != 5) {
				t.Fatalf("drops reported before the kill: %d, want 1 (shared table: the rest folded) or 5 (per-CPU: none folded)", n)
			}
			ports := []uint16{hLocalPort, hPortA, hPortB}
			before, err := h1.d.PortCountersOf(ports)
			must(t, err)

			hook.Close()
			h1.kill()
			// The old dispatchers still count: the pinned tail-call table
			// keeps the old programs.
			h1.run(hPortA, netif.Ingress, f2, nil)
			before[1].Ingress.add(1, uint64(len(f2)), 0)

			h2 := harnessIn(t, cfg, h1.ns)
			dir2 := h2.pin(root)
			gens, bad, err := h2.d.OpenGenerations(root)
			must(t, err)
			if len(gens) != 1 || gens[0].ID() != filepath.Base(dir1) || len(bad) != 0 {
				t.Fatalf("generations %v (unreadable %v), want just %s", genIDs(gens), bad, filepath.Base(dir1))
			}
			oldSlots, err := ebpf.LoadPinnedMap(filepath.Join(dir1, bpf.NsintMapCpuState), nil)
			must(t, err)
			defer oldSlots.Close()

			got := map[flowID]tally{}
			var evs []Event
			st, err := h2.d.Recover(gens, func(ev *Event) { evs = append(evs, *ev) })
			must(t, err)
			for _, ev := range evs {
				wantReason := ReasonFlush
				if ev.Type == DropEvent {
					wantReason = ReasonDrop
				}
				if ev.Reason != wantReason || ev.Data != nil || ev.Proto != protoUDP {
					t.Errorf("recovered event %+v: want reason %s, no data, CPU -1, UDP", ev, wantReason)
				}
				if ev.Type == DropEvent && (ev.Src != loopback || ev.Dst != loopback) {
					t.Errorf("recovered drop %+v: want 127.0.0.1 → 127.0.0.1", ev)
				}
				f := eventFlowID(ev)
				g := got[f]
				g.packets += ev.Packets
				g.bytes += ev.Bytes
				got[f] = g
			}
			for f, w := range want {
				if got[f] != w {
					t.Errorf("recovered %s: %+v, want %+v", f, got[f], w)
				}
			}
			for f, g := range got {
				if _, ok := want[f]; !ok {
					t.Errorf("recovered %s: %+v, want nothing", f, g)
				}
			}
			var wantPackets, wantDrops uint64
			for f, w := range want {
				if f.dropped {
					wantDrops += w.packets
				} else {
					wantPackets += w.packets
				}
			}
			if st.Generations != 1 || st.Failed != 0 || st.Packets != wantPackets || st.Drops != wantDrops ||
				st.FlowReports+st.DropReports != len(evs) || st.BaselinePorts != 3 {
				t.Errorf("recover stats %+v; want 1 generation, %d packets, %d drops, %d events, 3 ports carried on",
					st, wantPackets, wantDrops, len(evs))
			}

			// The old counters are the new ports' baseline.
			after, err := h2.d.PortCountersOf(ports)
			must(t, err)
			for i, id := range ports {
				if after[i] != before[i] {
					t.Errorf("port %d counters after recovery %+v, want the old ones %+v", id, after[i], before[i])
				}
			}

			// The old generation is gone, the new one stays; the old
			// dispatchers count no more.
			if _, err := os.Stat(dir1); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("old generation %s still there: %v", dir1, err)
			}
			if _, err := os.Lstat(filepath.Join(dir2, layoutPin)); err != nil {
				t.Errorf("new generation: %v", err)
			}
			h1.run(hPortA, netif.Ingress, f2, nil)
			var cs bpf.NsintCpuState
			must(t, oldSlots.Lookup(uint32(0), &cs))
			if n := cs.Flow[cIngress].Packets; n != 2+1 {
				t.Errorf("old slot of f2 holds %d packets after the recovery, want 3: the old dispatcher still counts", n)
			}
			if gens, bad, err := h2.d.OpenGenerations(root); err != nil || len(gens)+len(bad) != 0 {
				t.Errorf("generations after the recovery: %v, %v, %v; want none", genIDs(gens), bad, err)
			}
		})
	}
}

func eventFlowID(ev Event) flowID {
	return flowID{dir: ev.Direction, port: ev.Port, sport: ev.SrcPort, dport: ev.DstPort, in: ev.InPort, out: ev.OutPort,
		packets: ev.Type == FlowEvent, dropped: ev.Type == DropEvent}
}

func sportOf(frame []byte) uint16 { return uint16(frame[14+20])<<8 | uint16(frame[14+21]) }
func dportOf(frame []byte) uint16 { return uint16(frame[14+22])<<8 | uint16(frame[14+23]) }

func genIDs(gens []*Generation) []string {
	var ids []string
	for _, g := range gens {
		ids = append(ids, g.ID())
	}
	return ids
}

// TestRecoverQuiesces: packets go through an old dispatcher on another CPU
// all the while a recovery runs. What the recovery reports must be what the
// old maps hold once it is done: it reads them only once nothing counts
// into them any more, so no packet is counted after it was read.
func TestRecoverQuiesces(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("skipping: needs two CPUs")
	}
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			root := testGenerationRoot(t)
			cfg := Config{ReportInterval: time.Hour, perCPUFlows: !shared}
			h1 := newHarness(t, cfg)
			dir1 := h1.pin(root)
			frame := udpFrame("198.18.0.1", "198.18.0.2", 1500, 2500, 64)
			h1.run(hPortA, netif.Ingress, frame, nil)
			h1.drain()
			prog := h1.dispatcher(hPortA, netif.Ingress)
			h1.kill()

			h2 := harnessIn(t, cfg, h1.ns)
			h2.pin(root)
			gens, _, err := h2.d.OpenGenerations(root)
			must(t, err)
			oldFlows, err := ebpf.LoadPinnedMap(filepath.Join(dir1, bpf.NsintMapFlows), nil)
			must(t, err)
			defer oldFlows.Close()
			oldSlots, err := ebpf.LoadPinnedMap(filepath.Join(dir1, bpf.NsintMapCpuState), nil)
			must(t, err)
			defer oldSlots.Close()

			var runs atomic.Uint64
			stop := make(chan struct{})
			done := make(chan error, 1)
			go func() {
				for {
					select {
					case <-stop:
						done <- nil
						return
					default:
					}
					if err := runOnCPU(h1.ns, 1, prog, frame, 100); err != nil {
						done <- err
						return
					}
					runs.Add(1)
				}
			}()
			for runs.Load() < 5 {
				time.Sleep(time.Millisecond)
			}
			// On the per-CPU table the flow is new on CPU 1: its report
			// waits in the old ring, which Recover reads too.
			var recovered, queued uint64
			_, err = h2.d.Recover(gens, func(ev *Event) {
				recovered += ev.Packets
				if ev.Reason != ReasonFlush {
					queued += ev.Packets
				}
			})
			before := runs.Load()
			for runs.Load() < before+5 { // traffic went on after the recovery
				time.Sleep(time.Millisecond)
			}
			close(stop)
			must(t, <-done)
			must(t, err)

			var left uint64
			key := flowKeyOf(t, frame, hPortA, netif.Ingress)
			if shared {
				var v bpf.NsintFlowState
				must(t, oldFlows.Lookup(&key, &v))
				left = v.Packets
			} else {
				var per []bpf.NsintFlowState
				must(t, oldFlows.Lookup(&key, &per))
				for _, v := range per {
					left += v.Packets
				}
			}
			var cs bpf.NsintCpuState
			for cpu := range int(oldSlots.MaxEntries()) {
				must(t, oldSlots.Lookup(uint32(cpu), &cs))
				left += cs.Flow[cIngress].Packets
			}
			t.Logf("%d runs of 100 packets; recovered %d (%d from the ring)", runs.Load(), recovered, queued)
			if recovered == 0 || recovered-queued != left {
				t.Errorf("recovered %d packets (%d from the ring), the old maps hold %d unreported: counted after they were read", recovered, queued, left)
			}
		})
	}
}

// flowKeyOf is the flow key the programs make of a UDP/IPv4 frame.
func flowKeyOf(t *testing.T, frame []byte, port uint16, dir netif.Direction) bpf.NsintFlowKey {
	t.Helper()
	var k bpf.NsintFlowKey
	k.T.Family, k.T.Proto = 4, protoUDP
	// Addresses are kept in network order, read as native-endian words.
	k.T.Saddr[0] = binary.NativeEndian.Uint32(frame[14+12:])
	k.T.Daddr[0] = binary.NativeEndian.Uint32(frame[14+16:])
	k.T.Sport, k.T.Dport = sportOf(frame), dportOf(frame)
	c, _ := cDirection(dir)
	k.Port, k.Dir = port, uint8(c)
	return k
}

// TestRecoverChain: three loads in a row, each killed: the third's port
// counters add up what the first two counted (the second carried the
// first's on in its pinned baseline). A port the second load does not have
// (its interface went away) gets no report and no baseline. DeletePort
// clears a port's baseline, the pinned one too, so a fourth load does not
// bring it back.
func TestRecoverChain(t *testing.T) {
	root := testGenerationRoot(t)
	cfg := Config{ReportInterval: time.Hour}
	f := udpFrame("198.18.0.1", "198.18.0.2", 1600, 2600, 80)
	g := udpFrame("198.18.0.1", "198.18.0.2", 1601, 2601, 90)
	ports := []uint16{hPortA, hPortB}
	recoverAll := func(h *harness) (RecoverStats, uint64) {
		t.Helper()
		gens, bad, err := h.d.OpenGenerations(root)
		must(t, err)
		if len(gens) != 1 || len(bad) != 0 {
			t.Fatalf("generations %v, unreadable %v; want one", genIDs(gens), bad)
		}
		var packets uint64
		st, err := h.d.Recover(gens, func(ev *Event) { packets += ev.Packets })
		must(t, err)
		return st, packets
	}

	h1 := newHarness(t, cfg)
	h1.pin(root)
	h1.runN(hPortA, netif.Ingress, f, nil, 6) // 1 reported, 5 left
	h1.runN(hPortB, netif.Egress, g, nil, 3)  // 1 reported, 2 left
	h1.drain()                                // the reports read
	first, err := h1.d.PortCountersOf(ports)
	must(t, err)
	h1.kill()

	h2 := harnessIn(t, cfg, h1.ns)
	must(t, h2.d.DeletePort(hPortB, PortInfo{ID: netif.ID{Netns: netif.Netns(h1.ns.Inode), Ifindex: 101}, LocalPort: hLocalPort}))
	h2.pin(root)
	st, packets := recoverAll(h2)
	if packets != 5 || st.PortGonePackets != 2 || st.BaselinePorts != 1 || st.BaselineSkipped != 1 {
		t.Errorf("second load recovered %d packets, stats %+v; want 5 packets, 2 of a port gone, one port carried on, one skipped", packets, st)
	}
	h2.runN(hPortA, netif.Ingress, f, nil, 4) // new there: 1 reported, 3 left
	h2.drain()
	second, err := h2.d.PortCounters(hPortA)
	must(t, err)
	if want := first[0].Ingress.Packets + 4; second.Ingress.Packets != want {
		t.Fatalf("second load: port A ingress %d packets, want %d", second.Ingress.Packets, want)
	}
	h2.kill()

	h3 := harnessIn(t, cfg, h1.ns)
	dir3 := h3.pin(root)
	if _, packets := recoverAll(h3); packets != 3 {
		t.Errorf("third load recovered %d packets, want 3", packets)
	}
	third, err := h3.d.PortCounters(hPortA)
	must(t, err)
	if third != second {
		t.Errorf("third load: port A counters %+v, want the first two loads' %+v", third, second)
	}

	infoA := PortInfo{ID: netif.ID{Netns: netif.Netns(h1.ns.Inode), Ifindex: 100}, LocalPort: hLocalPort}
	must(t, h3.d.DeletePort(hPortA, infoA))
	h3.setPort(hPortA, infoA)
	if c, err := h3.d.PortCounters(hPortA); err != nil || c != (Counters{}) {
		t.Errorf("port A after DeletePort and SetPort: %+v, %v; want zero", c, err)
	}
	pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir3, baselinePin), nil)
	must(t, err)
	var b portBaseline
	must(t, pinned.Lookup(uint32(hPortA), &b))
	pinned.Close()
	if b != (portBaseline{}) {
		t.Errorf("pinned baseline of port A after DeletePort: %+v, want zero", b)
	}
	h3.kill()
	h4 := harnessIn(t, cfg, h1.ns)
	recoverAll(h4)
	if c, err := h4.d.PortCounters(hPortA); err != nil || c != (Counters{}) {
		t.Errorf("fourth load: port A %+v, %v; want zero (deleted in the third)", c, err)
	}
}

// TestRecoverEvictedSlot: packets in a last-flow slot whose flow entry is
// gone are reported by no one, as when the kernel empties such a slot, but
// count for their port. On the per-CPU table the same holds for a slot
// whose CPU never counted the flow in its entry.
func TestRecoverEvictedSlot(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			root := testGenerationRoot(t)
			cfg := Config{ReportInterval: time.Hour, perCPUFlows: !shared}
			h1 := newHarness(t, cfg)
			dir1 := h1.pin(root)
			f := udpFrame("198.18.0.1", "198.18.0.2", 1700, 2700, 50)
			// 1 reported, 1 in the entry the second packet made, 2 in CPU
			// 0's slot
			h1.runN(hPortA, netif.Ingress, f, nil, 4)
			h1.drain()
			before, err := h1.d.PortCounters(hPortA)
			must(t, err)
			h1.kill()

			oldFlows, err := ebpf.LoadPinnedMap(filepath.Join(dir1, bpf.NsintMapFlows), nil)
			must(t, err)
			defer oldFlows.Close()
			oldSlots, err := ebpf.LoadPinnedMap(filepath.Join(dir1, bpf.NsintMapCpuState), nil)
			must(t, err)
			defer oldSlots.Close()
			key := flowKeyOf(t, f, hPortA, netif.Ingress)
			wantEvicted, wantEntry := uint64(2), uint64(0)
			if shared {
				must(t, oldFlows.Delete(&key))
			} else {
				// CPU 1's slot holds the flow, which CPU 1 never counted.
				var cs bpf.NsintCpuState
				must(t, oldSlots.Lookup(uint32(0), &cs))
				must(t, oldSlots.Put(uint32(1), &cs))
				must(t, oldSlots.Put(uint32(0), &bpf.NsintCpuState{}))
				wantEntry = 1 // CPU 0's part of the entry is there
			}

			h2 := harnessIn(t, cfg, h1.ns)
			gens, _, err := h2.d.OpenGenerations(root)
			must(t, err)
			var evs []Event
			st, err := h2.d.Recover(gens, func(ev *Event) { evs = append(evs, *ev) })
			must(t, err)
			var entry uint64
			for _, ev := range evs {
				entry += ev.Packets
			}
			if entry != wantEntry || st.EvictedPackets != wantEvicted {
				t.Errorf("recovered %+v, %d evicted packets; want %d packets reported, %d evicted", evs, st.EvictedPackets, wantEntry, wantEvicted)
			}
			after, err := h2.d.PortCounters(hPortA)
			must(t, err)
			if after != before {
				t.Errorf("port A %+v after recovery, want %+v", after, before)
			}
		})
	}
}

// TestOpenGenerationsUnreadable: generations this build cannot read — of
// another layout, with a map of other sizes, without a pin — are reported
// and removed; a readable one is opened; what is not a generation is left.
func TestOpenGenerationsUnreadable(t *testing.T) {
	root := testGenerationRoot(t)
	cfg := Config{MaxFlows: 1024, MaxPorts: 16}
	pinned := func() string {
		t.Helper()
		d := loadDatapath(t, cfg)
		dir, err := d.Pin(root)
		must(t, err)
		return dir
	}
	otherLayout := pinned()
	must(t, os.Remove(filepath.Join(otherLayout, layoutPin)))
	must(t, os.Symlink("v0-0123456789abcdef", filepath.Join(otherLayout, layoutPin)))
	otherSizes := pinned()
	bogus, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	must(t, err)
	must(t, os.Remove(filepath.Join(otherSizes, bpf.NsintMapFlows)))
	must(t, bogus.Pin(filepath.Join(otherSizes, bpf.NsintMapFlows)))
	bogus.Close()
	noLayout := pinned()
	must(t, os.Remove(filepath.Join(noLayout, layoutPin)))
	noMap := pinned()
	must(t, os.Remove(filepath.Join(noMap, bpf.NsintMapDropFlows)))
	good := pinned()
	foreign := filepath.Join(root, "not-a-generation")
	must(t, os.Mkdir(foreign, 0o700))

	d := loadDatapath(t, cfg)
	gens, bad, err := d.OpenGenerations(root)
	must(t, err)
	defer func() {
		for _, g := range gens {
			g.Close()
		}
	}()
	if len(gens) != 1 || gens[0].ID() != filepath.Base(good) {
		t.Errorf("opened %v, want %s", genIDs(gens), filepath.Base(good))
	}
	want := map[string]error{
		filepath.Base(otherLayout): ErrGenerationIncompatible,
		filepath.Base(otherSizes):  ErrGenerationIncompatible,
		filepath.Base(noLayout):    ErrGenerationIncomplete,
		filepath.Base(noMap):       ErrGenerationIncomplete,
	}
	for _, u := range bad {
		if !errors.Is(u.Err, want[u.ID]) || u.RemoveErr != nil {
			t.Errorf("unreadable %s: %v (remove: %v), want %v", u.ID, u.Err, u.RemoveErr, want[u.ID])
		}
		delete(want, u.ID)
		if _, err := os.Lstat(filepath.Join(root, u.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("unreadable generation %s not removed: %v", u.ID, err)
		}
	}
	for id, err := range want {
		t.Errorf("generation %s not reported unreadable (%v)", id, err)
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("%s: %v; only generations may be removed", foreign, err)
	}

	n, err := RemoveGenerations(root)
	if err != nil || n != 1 {
		t.Errorf("RemoveGenerations: %d, %v; want 1", n, err)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.Base(good))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("generation left after RemoveGenerations: %v", err)
	}
}

// TestPinTwice: a datapath pins once.
func TestPinTwice(t *testing.T) {
	root := testGenerationRoot(t)
	d := loadDatapath(t, Config{MaxFlows: 1024, MaxPorts: 16})
	if _, err := d.Pin(root); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Pin(root); err == nil {
		t.Error("second Pin succeeded")
	}
}

// TestRecoverQueuedReports: an agent stops reading (its reader closed, as
// when it ends) while its programs go on reporting new flows, more than its
// report ring holds. The reports the ring took wait there; the ring refuses
// the rest, whose counts stay in their entries. The next datapath recovers
// both: every flow exactly once, with its packets and bytes — the queued
// ones as the kernel wrote them (reason new, packet bytes), the refused
// ones as a flush.
func TestRecoverQueuedReports(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			root := testGenerationRoot(t)
			// The smallest ring: a page per CPU.
			cfg := Config{ReportInterval: time.Hour, ReportBufferBytes: 4096, perCPUFlows: !shared}
			h1 := newHarness(t, cfg)
			h1.pin(root)
			h1.r.Close()
			recordSize := (8 + eventSize + int(DefaultSnapLen) + 7) &^ 7
			n := int(h1.d.objs.Events.MaxEntries())/recordSize + 20
			frames := map[uint16][]byte{}
			for i := range n {
				sport := uint16(3000 + i)
				frames[sport] = udpFrame("198.18.0.1", "198.18.0.2", sport, 2000, 40+i%7)
				h1.run(hPortA, netif.Ingress, frames[sport], nil)
			}
			st1, err := h1.d.Stats()
			must(t, err)
			if st1.RingFull == 0 || st1.Reports+st1.RingFull != uint64(n) {
				t.Fatalf("%d new flows: %d reports written, %d refused; want them all, some refused", n, st1.Reports, st1.RingFull)
			}
			h1.kill()

			h2 := harnessIn(t, cfg, h1.ns)
			h2.pin(root)
			gens, _, err := h2.d.OpenGenerations(root)
			must(t, err)
			got := map[uint16]tally{}
			queued := 0
			st, err := h2.d.Recover(gens, func(ev *Event) {
				fr := frames[ev.SrcPort]
				if ev.Type != FlowEvent || ev.Port != hPortA || ev.Direction != netif.Ingress || fr == nil {
					t.Errorf("recovered %+v: want a flow of port %d ingress from the test's ports", ev, hPortA)
					return
				}
				switch ev.Reason {
				case ReasonNew:
					queued++
					if !bytes.Equal(ev.Data, fr[:min(len(fr), int(DefaultSnapLen))]) || ev.Len != uint32(len(fr)) {
						t.Errorf("queued report of port %d carries %d of %d bytes, not the frame's", ev.SrcPort, len(ev.Data), ev.Len)
					}
				case ReasonFlush:
					if ev.Data != nil {
						t.Errorf("flush of port %d carries packet bytes", ev.SrcPort)
					}
				default:
					t.Errorf("recovered report of port %d: reason %s, want new (queued) or flush (refused)", ev.SrcPort, ev.Reason)
				}
				g := got[ev.SrcPort]
				g.packets += ev.Packets
				g.bytes += ev.Bytes
				got[ev.SrcPort] = g
			})
			must(t, err)
			for sport, fr := range frames {
				if w := (tally{1, uint64(len(fr))}); got[sport] != w {
					t.Errorf("flow from port %d: recovered %+v, want %+v", sport, got[sport], w)
				}
			}
			if uint64(queued) != st1.Reports || st.Queued != queued || st.FlowReports != n || st.Malformed != 0 {
				t.Errorf("recover stats %+v, %d queued reports; want %d queued of %d", st, queued, st1.Reports, n)
			}
		})
	}
}
