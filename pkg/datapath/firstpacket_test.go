package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// TestFirstPacket: a flow's first packet is reported on its own and leaves
// no entry in the flow table; its second stores the flow, counted there and
// not reported before its refresh; every packet is in exactly one report.
func TestFirstPacket(t *testing.T) {
	for _, shared := range []bool{false, true} {
		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			t.Run(tableName(shared)+"/"+dir.String(), func(t *testing.T) {
				requireFlowTable(t, shared)
				h := newHarness(t, Config{ReportInterval: time.Hour, perCPUFlows: !shared})
				const singles = 100
				for i := range singles {
					fr := udpFrame("198.18.0.1", "198.18.0.2", uint16(4000+i), 53, i%9)
					h.run(hPortA, dir, fr, nil)
					if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 || ev.Bytes != uint64(len(fr)) {
						t.Fatalf("one-packet flow %d: %s with %d packets %d bytes, want new with 1, %d", i, ev.Reason, ev.Packets, ev.Bytes, len(fr))
					}
				}
				if n := flowEntries(t, h); n != 0 {
					t.Errorf("%d one-packet flows left %d flow entries, want none", singles, n)
				}

				fr := udpFrame("198.18.0.1", "198.18.0.2", 5000, 5001, 30)
				h.run(hPortA, dir, fr, nil)
				if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
					t.Fatalf("first of five: %s with %d packets, want new with 1", ev.Reason, ev.Packets)
				}
				h.runN(hPortA, dir, fr, nil, 4)
				h.none("the second to fifth packets, before their refresh")
				if n := flowEntries(t, h); n != 1 {
					t.Errorf("a flow of five packets: %d flow entries, want 1", n)
				}
				packets, bytes := totals(h.sweep(SweepOptions{All: true}))
				if packets != 4 || bytes != 4*uint64(len(fr)) {
					t.Errorf("the sweep reported %d packets %d bytes, want the 4 after the first, %d bytes", packets, bytes, 4*len(fr))
				}
				st, err := h.d.Stats()
				must(t, err)
				if st.FirstPackets != singles+1 || st.FlowUpdateErrors != 0 {
					t.Errorf("stats: %d first packets, %d update errors; want %d, 0", st.FirstPackets, st.FlowUpdateErrors, singles+1)
				}
			})
		}
	}
}

// TestFirstMarkTaken: two flows whose marks share a slot, alternating, each
// take the slot from the other: every packet is reported on its own and
// none is stored, nor lost. A flow whose next packet finds its mark is then
// stored.
func TestFirstMarkTaken(t *testing.T) {
	h := newHarness(t, Config{ReportInterval: time.Hour})
	a := udpFrame("198.18.0.1", "198.18.0.2", 6000, 7000, 10)
	slotA, hashA := firstMark(t, h, a)
	var b []byte
	for sport := 6001; b == nil; sport++ {
		if sport > 0xffff {
			t.Fatal("no source port puts a flow in the slot of the first")
		}
		fr := udpFrame("198.18.0.1", "198.18.0.2", uint16(sport), 7000, 20)
		if slot, hash := firstMark(t, h, fr); slot == slotA && hash != hashA {
			b = fr
		}
	}

	h.run(hPortA, netif.Ingress, a, nil)
	var m bpf.NsintFirstMark
	must(t, h.d.objs.FirstMarks.Lookup(slotA, &m))
	if m.Hash != hashA {
		t.Fatalf("slot %d holds mark %#x after the first packet, want %#x (the test's copy of flow_mark is wrong)", slotA, m.Hash, hashA)
	}
	h.next()
	for range 3 {
		for _, fr := range [][]byte{b, a} {
			h.run(hPortA, netif.Ingress, fr, nil)
			if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
				t.Fatalf("alternating flows: %s with %d packets, want each packet new with 1", ev.Reason, ev.Packets)
			}
		}
	}
	if n := flowEntries(t, h); n != 0 {
		t.Errorf("alternating flows: %d flow entries, want none", n)
	}
	h.run(hPortA, netif.Ingress, a, nil) // finds its mark: stored
	h.none("a's packet after its own")
	var reported uint64
	for _, ev := range h.sweep(SweepOptions{All: true}) {
		reported += ev.Bytes
	}
	if want := uint64(len(a)); reported != want {
		t.Errorf("the sweep reported %d bytes, want a's last packet, %d", reported, want)
	}
	if st, err := h.d.Stats(); err != nil || st.FirstPackets != 7 {
		t.Errorf("stats: %d first packets (%v), want 7", st.FirstPackets, err)
	}
}

// TestSecondPacket: a flow's second packet stores its entry and is
// reported at once exactly when any later packet would be: the flow ended
// (at this packet or the first) or its refresh is due. Otherwise it is
// counted in the entry and the sweep carries it. A SYN after an end opens
// the flow again: counted, not reported. Each case and direction is a flow
// of its own in one datapath per table and report interval (a load takes
// seconds under the VM suites' emulation), so what it checks of the table,
// the port's counters and the stats is what its two packets changed.
func TestSecondPacket(t *testing.T) {
	const syn, ack, fin, rst = tcpSYN, tcpACK, tcpFIN, tcpRST
	const due = 100 * time.Millisecond
	cases := []struct {
		name          string
		first, second byte // TCP flags; 0: a UDP flow
		wait          bool // the refresh is due at the second packet
		reported      bool // at once, as want
		want          Reason
	}{
		{name: "counted"},
		{name: "tcp-counted", first: syn, second: ack},
		{name: "ends", first: syn, second: fin | ack, reported: true, want: ReasonEnd},
		{name: "after-end", first: rst, second: ack, reported: true, want: ReasonEnd},
		{name: "reopened", first: rst, second: syn},
		{name: "refresh-due", wait: true, reported: true, want: ReasonRefresh},
	}
	for _, shared := range []bool{false, true} {
		t.Run(tableName(shared), func(t *testing.T) {
			requireFlowTable(t, shared)
			byInterval := map[time.Duration]*harness{
				time.Hour: newHarness(t, Config{ReportInterval: time.Hour, perCPUFlows: !shared}),
				due:       newHarness(t, Config{ReportInterval: due, perCPUFlows: !shared}),
			}
			for i, c := range cases {
				for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
					t.Run(c.name+"/"+dir.String(), func(t *testing.T) {
						interval := time.Hour
						if c.wait {
							interval = due
						}
						h := byInterval[interval]
						h.tb = t
						sport := uint16(3400 + i)
						frame := func(flags byte) []byte {
							if c.first == 0 {
								return udpFrame("198.18.0.1", "198.18.0.2", sport, 53, 40)
							}
							return tcpFrame("198.18.0.1", "198.18.0.2", sport, 80, flags)
						}
						entries0, counters0 := flowEntries(t, h), h.dirCounters(hPortA, dir)
						st0, err := h.d.Stats()
						must(t, err)

						h.run(hPortA, dir, frame(c.first), nil)
						if ev := h.next(); ev.Reason != ReasonNew || ev.Packets != 1 {
							t.Fatalf("first packet: %s with %d packets, want new with 1", ev.Reason, ev.Packets)
						}
						if c.wait {
							time.Sleep(interval + 50*time.Millisecond)
						}
						second := frame(c.second)
						h.run(hPortA, dir, second, nil)
						var swept uint64 = 1
						if c.reported {
							if ev := h.next(); ev.Reason != c.want || ev.Packets != 1 || ev.Bytes != uint64(len(second)) {
								t.Fatalf("second packet: %s with %d packets %d bytes, want %s with 1, %d", ev.Reason, ev.Packets, ev.Bytes, c.want, len(second))
							}
							swept = 0
						}
						h.none("after the second packet")
						if n := flowEntries(t, h) - entries0; n != 1 {
							t.Errorf("%d flow entries more after two packets, want 1", n)
						}
						// The earlier flows' counts went out in their own sweeps.
						packets, bytes := totals(h.sweep(SweepOptions{All: true}))
						if packets != swept || bytes != swept*uint64(len(second)) {
							t.Errorf("the sweep reported %d packets %d bytes, want %d, %d", packets, bytes, swept, swept*uint64(len(second)))
						}
						if n := h.dirCounters(hPortA, dir).Packets - counters0.Packets; n != 2 {
							t.Errorf("port counters: %d packets more, want 2", n)
						}
						st, err := h.d.Stats()
						must(t, err)
						if first, errs := st.FirstPackets-st0.FirstPackets, st.FlowUpdateErrors-st0.FlowUpdateErrors; first != 1 || errs != 0 {
							t.Errorf("stats: %d first packets, %d update errors more; want 1, 0", first, errs)
						}
					})
				}
			}
		})
	}
}

// TestSecondPacketJoins: in the shared table, a second packet whose flow
// another CPU stored meanwhile (the insert finds an entry) is counted in
// that entry, with what it already held, and the insert's EEXIST is no
// error (kernels before 6.4 return it with the upper half zero). The entry
// is made here by hand: with its last report time 0 the lookup passes it
// over as it would miss another CPU's entry made a moment later, and the
// insert finds it. Its refresh is then due (time 0 is more than the
// interval ago), so the packet's report carries both.
func TestSecondPacketJoins(t *testing.T) {
	requireFlowTable(t, true)
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		t.Run(dir.String(), func(t *testing.T) {
			h := newHarness(t, Config{ReportInterval: 5 * time.Second})
			fr := udpFrame("198.18.0.1", "198.18.0.2", 3500, 53, 10)
			h.run(hPortA, dir, fr, nil)
			h.next()
			key := flowKeyOf(t, fr, hPortA, dir)
			const held, heldBytes = 7, 700
			must(t, h.d.objs.Flows.Put(&key, &bpf.NsintFlowState{Packets: held, Bytes: heldBytes, Watched: 1}))
			h.run(hPortA, dir, fr, nil)
			packets, bytes := totals(append(h.drain(), h.sweep(SweepOptions{All: true})...))
			if want := uint64(heldBytes + len(fr)); packets != held+1 || bytes != want {
				t.Errorf("reported %d packets %d bytes, want the entry's %d and the packet: %d, %d", packets, bytes, held, held+1, want)
			}
			if st, err := h.d.Stats(); err != nil || st.FlowUpdateErrors != 0 || st.FirstPackets != 1 {
				t.Errorf("stats: %d update errors, %d first packets (%v); want 0, 1", st.FlowUpdateErrors, st.FirstPackets, err)
			}
		})
	}
}

// totals adds up the packets and bytes of reports.
func totals(evs []Event) (packets, bytes uint64) {
	for _, ev := range evs {
		packets += ev.Packets
		bytes += ev.Bytes
	}
	return packets, bytes
}

// firstMark is what flow_mark computes for the flow of frame at port A's
// ingress: the slot of first_marks and the hash a mark holds.
func firstMark(t *testing.T, h *harness, frame []byte) (slot, hash uint32) {
	t.Helper()
	k := flowKeyOf(t, frame, hPortA, netif.Ingress)
	var buf bytes.Buffer
	must(t, binary.Write(&buf, binary.NativeEndian, &k))
	if buf.Len() != int(h.d.objs.Flows.KeySize()) {
		t.Fatalf("flow key of %d bytes, the map's are %d", buf.Len(), h.d.objs.Flows.KeySize())
	}
	hv := uint32(0x9e3779b9)
	for w := buf.Bytes(); len(w) >= 4; w = w[4:] {
		hv = (hv ^ binary.NativeEndian.Uint32(w)) * 0x85ebca6b
	}
	hv ^= hv >> 15
	return (hv >> 16) & (h.d.objs.FirstMarks.MaxEntries() - 1), hv | 1
}

// flowEntries counts the flow table's entries.
func flowEntries(t *testing.T, h *harness) int {
	t.Helper()
	n := 0
	var k bpf.NsintFlowKey
	var prev any // nil: the first key
	for {
		err := h.d.objs.Flows.NextKey(prev, &k)
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return n
		}
		must(t, err)
		n++
		prev = k
	}
}
