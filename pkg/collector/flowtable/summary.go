package flowtable

import (
	"cmp"
	"slices"
	"time"

	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/netif"
)

// Totals are the counters of one direction of one interface.
type Totals struct {
	Reports      uint64            `json:"reports"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Drops        uint64            `json:"drops"`
	DropReasons  map[string]uint64 `json:"dropReasons"`
	LatencyMinNs *uint32           `json:"latencyMinNs"`
	LatencyAvgNs *uint32           `json:"latencyAvgNs"`
	LatencyMaxNs *uint32           `json:"latencyMaxNs"`
	FirstSeen    *time.Time        `json:"firstSeen,omitempty"`
	LastSeen     *time.Time        `json:"lastSeen,omitempty"`
}

// InterfaceSummary is /api/v1/summary's entry for one interface: totals since
// its first report, per direction, and how many flow rows it has now.
type InterfaceSummary struct {
	PortRef
	Flows   int    `json:"flows"`
	Ingress Totals `json:"ingress"`
	Egress  Totals `json:"egress"`
}

// Summary returns per-interface totals of the interfaces f's scope,
// interface, pod, network and node fields select (other fields are ignored):
// a caller's totals hold only the interfaces it may see. It is ordered by
// node, then interface name, then port ID.
func (t *Table) Summary(f Filter) []InterfaceSummary {
	t.mu.Lock()
	defer t.mu.Unlock()
	byPort := map[topology.Key]*InterfaceSummary{}
	for k, it := range t.ifaces {
		if !f.matchPort(it.port) {
			continue
		}
		s := byPort[k.port()]
		if s == nil {
			s = &InterfaceSummary{PortRef: portRef(it.port)}
			byPort[k.port()] = s
		}
		tot := &s.Ingress
		if k.dir() == netif.Egress {
			tot = &s.Egress
		}
		it.counters.fill(&tot.Reports, &tot.Packets, &tot.Bytes, &tot.Drops, &tot.DropReasons,
			&tot.LatencyMinNs, &tot.LatencyAvgNs, &tot.LatencyMaxNs)
		first, last := time.Unix(0, it.first).UTC(), time.Unix(0, it.last).UTC()
		tot.FirstSeen, tot.LastSeen = &first, &last
	}
	for e := t.lru.next; e != &t.lru; e = e.next {
		if s := byPort[e.key.portKey()]; s != nil {
			s.Flows++
		}
	}
	out := make([]InterfaceSummary, 0, len(byPort))
	for _, s := range byPort {
		if s.Ingress.DropReasons == nil {
			s.Ingress.DropReasons = map[string]uint64{}
		}
		if s.Egress.DropReasons == nil {
			s.Egress.DropReasons = map[string]uint64{}
		}
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b InterfaceSummary) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.Interface, b.Interface),
			cmp.Compare(a.SwitchID, b.SwitchID), cmp.Compare(a.PortID, b.PortID))
	})
	return out
}

// PortTotals are the counters of one port for metrics.
type PortTotals struct {
	Port      *topology.Port
	Direction netif.Direction
	Reports   uint64
	Packets   uint64
	Bytes     uint64
	Drops     uint64
	// DropReasons counts drops by INT code; valid only during the callback.
	DropReasons map[uint8]uint64
}

// EachPortTotals calls fn for every port and direction with totals, under the
// table's lock (fn must not call the table).
func (t *Table) EachPortTotals(fn func(PortTotals)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, it := range t.ifaces {
		fn(PortTotals{Port: it.port, Direction: k.dir(), Reports: it.reports,
			Packets: it.packets, Bytes: it.bytes, Drops: it.drops, DropReasons: it.dropReasons})
	}
}
