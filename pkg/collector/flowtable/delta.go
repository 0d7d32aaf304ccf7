package flowtable

import (
	"maps"
	"net/netip"

	"github.com/nsint/nsint/pkg/netif"
)

// Delta is what one row gained between two calls of TakeDeltas: the
// increments of its counters, so that a store summing every Delta of a row
// gets the row's totals. FirstSeen is the row's first observation, LastSeen
// its latest one.
type Delta struct {
	PortRef
	Direction        netif.Direction
	EtherType        uint16
	VLAN             uint16
	Proto            uint8 // meaningful when Src is valid (an IP flow)
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Reports          uint64
	Packets          uint64
	Bytes            uint64
	Drops            uint64
	DropReasons      map[uint8]uint64 // increments by INT drop reason; nil when Drops is 0
	FirstSeenNs      int64            // Unix nanoseconds
	LastSeenNs       int64            // Unix nanoseconds
}

// exported is what a row's counters were when it was last taken by
// TakeDeltas.
type exported struct {
	reports, packets, bytes, drops uint64
	dropReasons                    map[uint8]uint64
}

// dirty reports whether the row changed since it was last taken. Every Add
// increments reports, so a changed row has more reports than it had then.
func (e *entry) dirty() bool { return e.reports != e.exp.reports }

// delta fills d with the row's increments since it was last taken.
func (e *entry) delta(d *Delta) {
	src, dst := e.key.addrs()
	*d = Delta{
		PortRef: portRef(e.port), Direction: e.key.dir, EtherType: e.key.etherType, VLAN: e.vlan,
		Proto: e.key.proto, Src: src, Dst: dst, SrcPort: e.key.srcPort, DstPort: e.key.dstPort,
		Reports: e.reports - e.exp.reports, Packets: e.packets - e.exp.packets,
		Bytes: e.bytes - e.exp.bytes, Drops: e.drops - e.exp.drops,
		FirstSeenNs: e.first, LastSeenNs: e.last,
	}
	if d.Drops != 0 {
		d.DropReasons = make(map[uint8]uint64, len(e.dropReasons))
		for code, n := range e.dropReasons {
			if inc := n - e.exp.dropReasons[code]; inc != 0 {
				d.DropReasons[code] = inc
			}
		}
	}
}

// markTaken records the row's counters as taken.
func (e *entry) markTaken() {
	reasons := e.exp.dropReasons
	e.exp = exported{reports: e.reports, packets: e.packets, bytes: e.bytes, drops: e.drops}
	if len(e.dropReasons) > 0 {
		if reasons == nil {
			reasons = make(map[uint8]uint64, len(e.dropReasons))
		}
		maps.Copy(reasons, e.dropReasons)
	}
	e.exp.dropReasons = reasons
}

// DeltaStats are the counters of delta tracking.
type DeltaStats struct {
	Changed int // rows changed since they were last taken, kept ones of evicted rows included
	// Lost counts rows evicted with increments not yet taken that could not be
	// kept (the kept list was full); Lost* are what those increments held.
	Lost, LostPackets, LostBytes, LostDrops uint64
}

// TrackDeltas makes the table keep the untaken increments of up to max
// evicted rows for the next TakeDeltas (without it, or beyond max, they are
// counted as lost). A table that is never asked for deltas need not call it.
func (t *Table) TrackDeltas(max int) {
	t.mu.Lock()
	t.keepEvicted = max
	t.mu.Unlock()
}

// TakeDeltas calls fn with the increments of at most max rows that changed
// since they were last taken (kept evicted rows first, then the most recently
// seen), marks them taken, and returns how many it took; max < 1 means no
// limit. Rows it leaves keep accumulating and come in a later call. fn runs
// under the table's lock (it must not call the table) and must not keep d.
func (t *Table) TakeDeltas(max int, fn func(d *Delta)) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for len(t.evicted) > 0 && (max < 1 || n < max) {
		fn(&t.evicted[0])
		t.evicted[0] = Delta{}
		t.evicted = t.evicted[1:]
		n++
	}
	if len(t.evicted) == 0 {
		t.evicted = nil // let the backing array go
	}
	var d Delta
	// Walking from the most recently seen row, stop once every changed row
	// has been found: there are t.changed of them.
	for e, left := t.lru.next, t.changed; e != &t.lru && left > 0 && (max < 1 || n < max); e = e.next {
		if !e.dirty() {
			continue
		}
		e.delta(&d)
		fn(&d)
		e.markTaken()
		left--
		t.changed--
		n++
	}
	return n
}

// DeltaStats returns the delta tracking counters.
func (t *Table) DeltaStats() DeltaStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.lost
	s.Changed = t.changed + len(t.evicted)
	return s
}

// evictingLocked accounts for the untaken increments of row e, about to be
// evicted: kept for TakeDeltas while there is room, else counted as lost.
func (t *Table) evictingLocked(e *entry) {
	if !e.dirty() {
		return
	}
	t.changed--
	if len(t.evicted) < t.keepEvicted {
		var d Delta
		e.delta(&d)
		t.evicted = append(t.evicted, d)
		return
	}
	t.lost.Lost++
	t.lost.LostPackets += e.packets - e.exp.packets
	t.lost.LostBytes += e.bytes - e.exp.bytes
	t.lost.LostDrops += e.drops - e.exp.drops
}
