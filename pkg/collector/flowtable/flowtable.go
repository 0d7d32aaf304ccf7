package flowtable

import (
	"net/netip"
	"sync"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/netif"
)

// Observation is what one report says about a flow at its ports: the packets
// and bytes that crossed them (the one packet a report carries, or with v2.0
// counters the flow's packets since its previous report), or, for a drop
// report, how many of the flow's packets were dropped.
type Observation struct {
	TimeNs     int64 // receive time, Unix nanoseconds
	Tuple      flowkey.Tuple
	Packets    uint64
	Bytes      uint64
	Drops      uint64 // packets dropped: the count a drop report stands for
	DropReason uint8  // INT drop reason code of Drops
	HasLatency bool
	LatencyNs  uint32
}

// Empty reports whether o counts nothing: no packets, bytes or drops. Add
// ignores such observations. Bytes alone are not empty: the agent reports
// the bytes of packets an earlier report carried when a count was taken
// between the two adds of one packet.
func (o *Observation) Empty() bool { return o.Packets == 0 && o.Bytes == 0 && o.Drops == 0 }

// rowKey identifies a row: a flow at one port in one direction. It has no
// padding and no pointers, so the map hashes and compares it as one block of
// memory.
type rowKey struct {
	src, dst  [16]byte
	switchID  uint32
	port      uint16
	srcPort   uint16
	dstPort   uint16
	etherType uint16
	proto     uint8
	dir       netif.Direction
	is4       bool
	ip        bool
}

func (k *rowKey) portKey() topology.Key { return topology.Key{SwitchID: k.switchID, Port: k.port} }

func (k *rowKey) addrs() (src, dst netip.Addr) {
	if !k.ip {
		return netip.Addr{}, netip.Addr{}
	}
	if k.is4 {
		return netip.AddrFrom4([4]byte(k.src[12:])), netip.AddrFrom4([4]byte(k.dst[12:]))
	}
	return netip.AddrFrom16(k.src), netip.AddrFrom16(k.dst)
}

type entry struct {
	key   rowKey
	port  *topology.Port
	vlan  uint16
	first int64
	last  int64
	counters
	exp        exported // counters when last taken by TakeDeltas
	prev, next *entry   // LRU list, most recent at head.next
}

// counters are shared by flows and per-interface totals.
type counters struct {
	reports, packets, bytes, drops uint64
	latMin, latMax                 uint32
	latSum, latN                   uint64
	dropReasons                    map[uint8]uint64
}

func (c *counters) add(o *Observation) {
	c.reports++
	c.packets += o.Packets
	c.bytes += o.Bytes
	if o.Drops != 0 {
		c.drops += o.Drops
		if c.dropReasons == nil {
			c.dropReasons = make(map[uint8]uint64, 2)
		}
		c.dropReasons[o.DropReason] += o.Drops
	}
	if o.HasLatency {
		if c.latN == 0 || o.LatencyNs < c.latMin {
			c.latMin = o.LatencyNs
		}
		if o.LatencyNs > c.latMax {
			c.latMax = o.LatencyNs
		}
		c.latSum += uint64(o.LatencyNs)
		c.latN++
	}
}

// Stats are the table's counters.
type Stats struct {
	Flows     int    `json:"flows"`
	Capacity  int    `json:"capacity"`
	Evictions uint64 `json:"evictions"`
}

// Table is the bounded flow table.
type Table struct {
	mu        sync.Mutex
	capacity  int
	flows     map[rowKey]*entry
	lru       entry // sentinel
	evictions uint64
	ifaces    map[ifaceKey]*ifaceTotals

	// Delta tracking (delta.go): rows changed since last taken, the kept
	// increments of evicted ones, and what could not be kept.
	changed     int
	keepEvicted int
	evicted     []Delta
	lost        DeltaStats
}

// ifaceKey packs switch ID, port ID and direction.
type ifaceKey uint64

func makeIfaceKey(k topology.Key, dir netif.Direction) ifaceKey {
	return ifaceKey(uint64(k.SwitchID)<<24 | uint64(k.Port)<<8 | uint64(dir))
}

func (k ifaceKey) port() topology.Key {
	return topology.Key{SwitchID: uint32(k >> 24), Port: uint16(k >> 8)}
}

func (k ifaceKey) dir() netif.Direction { return netif.Direction(k) }

type ifaceTotals struct {
	port  *topology.Port
	first int64
	last  int64
	counters
}

// New returns a table holding at most capacity flows (rows); capacity < 1
// is treated as 1.
func New(capacity int) *Table {
	if capacity < 1 {
		capacity = 1
	}
	t := &Table{
		capacity: capacity,
		flows:    make(map[rowKey]*entry, min(capacity, 1<<16)),
		ifaces:   make(map[ifaceKey]*ifaceTotals),
	}
	t.lru.prev, t.lru.next = &t.lru, &t.lru
	return t
}

// Add records o at ingress (as an ingress row) and at egress (as an egress
// row); either port may be nil. An empty observation changes nothing: no row
// or per-interface total exists that has neither packets nor drops.
func (t *Table) Add(o *Observation, ingress, egress *topology.Port) {
	if o.Empty() {
		return
	}
	t.mu.Lock()
	if ingress != nil {
		t.addLocked(o, ingress, netif.Ingress)
	}
	if egress != nil {
		t.addLocked(o, egress, netif.Egress)
	}
	t.mu.Unlock()
}

func (t *Table) addLocked(o *Observation, p *topology.Port, dir netif.Direction) {
	tu := &o.Tuple
	k := rowKey{switchID: p.SwitchID, port: p.ID, srcPort: tu.SrcPort, dstPort: tu.DstPort,
		etherType: tu.EtherType, proto: tu.Proto, dir: dir}
	if tu.Src.IsValid() {
		k.ip, k.is4 = true, tu.Src.Is4()
		k.src, k.dst = tu.Src.As16(), tu.Dst.As16()
	}
	e := t.flows[k]
	if e == nil {
		e = t.newEntry()
		e.key, e.first, e.vlan = k, o.TimeNs, o.Tuple.VLAN
		t.flows[k] = e
	} else {
		e.unlink()
	}
	if !e.dirty() {
		t.changed++
	}
	e.port = p
	e.last = o.TimeNs
	e.counters.add(o)
	e.linkAfter(&t.lru)

	ik := makeIfaceKey(topology.Key{SwitchID: p.SwitchID, Port: p.ID}, dir)
	it := t.ifaces[ik]
	if it == nil {
		it = &ifaceTotals{first: o.TimeNs}
		t.ifaces[ik] = it
	}
	it.port = p
	it.last = o.TimeNs
	it.counters.add(o)
}

// newEntry returns a zeroed entry, evicting the least recently seen flow when
// the table is full.
func (t *Table) newEntry() *entry {
	if len(t.flows) >= t.capacity {
		old := t.lru.prev
		t.evictingLocked(old)
		old.unlink()
		delete(t.flows, old.key)
		t.evictions++
		reasons, expReasons := old.dropReasons, old.exp.dropReasons
		clear(reasons)
		clear(expReasons)
		*old = entry{}
		old.dropReasons, old.exp.dropReasons = reasons, expReasons
		return old
	}
	return &entry{}
}

func (e *entry) unlink() {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.prev, e.next = nil, nil
}

func (e *entry) linkAfter(at *entry) {
	e.prev = at
	e.next = at.next
	at.next.prev = e
	at.next = e
}

// Stats returns the table's size and eviction count.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Stats{Flows: len(t.flows), Capacity: t.capacity, Evictions: t.evictions}
}

// Relabel replaces the port information of every row and total with what
// lookup returns for its port (after a topology change). Rows whose port
// lookup returns nil keep their old information.
func (t *Table) Relabel(lookup func(topology.Key) *topology.Port) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := t.lru.next; e != &t.lru; e = e.next {
		if p := lookup(e.key.portKey()); p != nil {
			e.port = p
		}
	}
	for k, it := range t.ifaces {
		if p := lookup(k.port()); p != nil {
			it.port = p
		}
	}
}

// ForgetPorts removes the per-interface totals of ports for which keep
// returns false. Their flow rows age out through eviction.
func (t *Table) ForgetPorts(keep func(topology.Key) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.ifaces {
		if !keep(k.port()) {
			delete(t.ifaces, k)
		}
	}
}
