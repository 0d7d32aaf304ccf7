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
				var packets, bytes uint64
				for _, ev := range h.sweep(SweepOptions{All: true}) {
					packets += ev.Packets
					bytes += ev.Bytes
				}
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
