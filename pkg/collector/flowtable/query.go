package flowtable

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// PortRef names the interface a view's entry is about, with what the
// topology says of it; its fields are inlined in the JSON of Row and
// InterfaceSummary.
type PortRef struct {
	Interface  string         `json:"interface"`
	Node       string         `json:"node"`
	SwitchID   uint32         `json:"switchId"`
	PortID     uint16         `json:"portId"`
	Netns      topology.Netns `json:"netns"`
	Pod        *topology.Pod  `json:"pod"`
	Network    string         `json:"network"`
	LocalStack bool           `json:"localStack,omitempty"`
}

func portRef(p *topology.Port) PortRef {
	return PortRef{Interface: p.Name, Node: p.Node, SwitchID: p.SwitchID, PortID: p.ID, Netns: p.Netns, Pod: p.Pod,
		Network: p.Network, LocalStack: p.LocalStack}
}

// Row is one flow at one interface, as /api/v1/flows serves it.
type Row struct {
	PortRef
	Direction    string            `json:"direction"`
	EtherType    string            `json:"etherType"`
	VLAN         uint16            `json:"vlan,omitempty"`
	Proto        string            `json:"proto"`
	Src          string            `json:"src"`
	Dst          string            `json:"dst"`
	SrcPort      uint16            `json:"srcPort"`
	DstPort      uint16            `json:"dstPort"`
	Reports      uint64            `json:"reports"`
	Packets      uint64            `json:"packets"`
	Bytes        uint64            `json:"bytes"`
	Drops        uint64            `json:"drops"`
	DropReasons  map[string]uint64 `json:"dropReasons"`
	LatencyMinNs *uint32           `json:"latencyMinNs"`
	LatencyAvgNs *uint32           `json:"latencyAvgNs"`
	LatencyMaxNs *uint32           `json:"latencyMaxNs"`
	FirstSeen    time.Time         `json:"firstSeen"`
	LastSeen     time.Time         `json:"lastSeen"`
}

// SortKey orders query results.
type SortKey uint8

// Sort keys; every one sorts descending (largest or most recent first) unless
// the filter says Ascending.
const (
	SortLastSeen SortKey = iota
	SortFirstSeen
	SortPackets
	SortBytes
	SortReports
	SortDrops
	SortLatency
)

var sortNames = map[string]SortKey{
	"lastSeen": SortLastSeen, "firstSeen": SortFirstSeen, "packets": SortPackets,
	"bytes": SortBytes, "reports": SortReports, "drops": SortDrops, "latency": SortLatency,
}

// ParseSort accepts a sort key name, optionally prefixed with '-' (descending,
// the default) or '+' (ascending).
func ParseSort(s string) (key SortKey, ascending bool, ok bool) {
	if s == "" {
		return SortLastSeen, false, true
	}
	switch s[0] {
	case '-':
		s = s[1:]
	case '+':
		s, ascending = s[1:], true
	}
	key, ok = sortNames[s]
	return key, ascending, ok
}

// Filter selects rows. Zero fields match everything.
type Filter struct {
	Interface    string // exact interface name
	PodNamespace string // pod's namespace (from iface=ns/pod:name or namespace=)
	PodName      string // pod's name
	Network      string
	Node         string
	Proto        int // -1 or 0..255
	Addr         netip.Prefix
	Port         int // -1 or 0..65535: source or destination port
	DropsOnly    bool
	Sort         SortKey
	Ascending    bool
	Limit        int // 0: no limit
	// Scope hides the rows the caller may not see (applied before sort and
	// limit); nil sees everything.
	Scope access.Scope
}

// MatchAll is a filter that matches every row, sorted by most recent.
func MatchAll() Filter { return Filter{Proto: -1, Port: -1} }

// Visible reports whether a caller with scope s may see the rows of port p:
// a pod's port when s has the pod's namespace, a port without a pod (a node's
// interface, a named or host network namespace) when s has the nodes. A nil
// s sees everything.
func Visible(s access.Scope, p *topology.Port) bool {
	if s == nil {
		return true
	}
	if p.Pod != nil {
		return s.Namespace(p.Pod.Namespace)
	}
	return s.Nodes()
}

func (f *Filter) matchPort(p *topology.Port) bool {
	if !Visible(f.Scope, p) {
		return false
	}
	if f.Interface != "" && p.Name != f.Interface {
		return false
	}
	if f.PodName != "" || f.PodNamespace != "" {
		if p.Pod == nil {
			return false
		}
		if f.PodName != "" && p.Pod.Name != f.PodName {
			return false
		}
		if f.PodNamespace != "" && p.Pod.Namespace != f.PodNamespace {
			return false
		}
	}
	if f.Network != "" && p.Network != f.Network {
		return false
	}
	if f.Node != "" && p.Node != f.Node {
		return false
	}
	return true
}

func (f *Filter) matchEntry(e *entry) bool {
	if !f.matchPort(e.port) {
		return false
	}
	if f.Proto >= 0 && (!e.key.ip || int(e.key.proto) != f.Proto) {
		return false
	}
	if f.Addr.IsValid() {
		src, dst := e.key.addrs()
		if !f.Addr.Contains(src) && !f.Addr.Contains(dst) {
			return false
		}
	}
	if f.Port >= 0 && int(e.key.srcPort) != f.Port && int(e.key.dstPort) != f.Port {
		return false
	}
	if f.DropsOnly && e.drops == 0 {
		return false
	}
	return true
}

// Query returns the rows f selects (within f.Scope), sorted and limited as f
// says, and how many rows matched before the limit.
func (t *Table) Query(f Filter) (rows []Row, matched int) {
	t.mu.Lock()
	var hits []*entry
	for e := t.lru.next; e != &t.lru; e = e.next {
		if f.matchEntry(e) {
			hits = append(hits, e)
		}
	}
	sortEntries(hits, f.Sort, f.Ascending)
	matched = len(hits)
	if f.Limit > 0 && len(hits) > f.Limit {
		hits = hits[:f.Limit]
	}
	rows = make([]Row, len(hits))
	for i, e := range hits {
		rows[i] = e.row()
	}
	t.mu.Unlock()
	return rows, matched
}

func sortEntries(es []*entry, key SortKey, ascending bool) {
	val := func(e *entry) int64 {
		switch key {
		case SortFirstSeen:
			return e.first
		case SortPackets:
			return int64(e.packets)
		case SortBytes:
			return int64(e.bytes)
		case SortReports:
			return int64(e.reports)
		case SortDrops:
			return int64(e.drops)
		case SortLatency:
			return int64(e.latMax)
		}
		return e.last
	}
	slices.SortStableFunc(es, func(a, b *entry) int {
		if ascending {
			return cmp.Compare(val(a), val(b))
		}
		return cmp.Compare(val(b), val(a))
	})
}

func (e *entry) row() Row {
	r := Row{
		PortRef:   portRef(e.port),
		Direction: e.key.dir.String(),
		EtherType: "0x" + strconv.FormatUint(uint64(e.key.etherType), 16),
		VLAN:      e.vlan,
		SrcPort:   e.key.srcPort,
		DstPort:   e.key.dstPort,
		FirstSeen: time.Unix(0, e.first).UTC(),
		LastSeen:  time.Unix(0, e.last).UTC(),
	}
	if e.key.ip {
		src, dst := e.key.addrs()
		r.Proto = flowkey.ProtoName(e.key.proto)
		r.Src, r.Dst = src.String(), dst.String()
	}
	e.counters.fill(&r.Reports, &r.Packets, &r.Bytes, &r.Drops, &r.DropReasons,
		&r.LatencyMinNs, &r.LatencyAvgNs, &r.LatencyMaxNs)
	return r
}

func (c *counters) fill(reports, packets, bytes, drops *uint64, reasons *map[string]uint64,
	latMin, latAvg, latMax **uint32) {
	*reports, *packets, *bytes, *drops = c.reports, c.packets, c.bytes, c.drops
	*reasons = make(map[string]uint64, len(c.dropReasons))
	for code, n := range c.dropReasons {
		(*reasons)[strconv.Itoa(int(code))] = n
	}
	if c.latN > 0 {
		lo, hi, avg := c.latMin, c.latMax, uint32(c.latSum/c.latN)
		*latMin, *latAvg, *latMax = &lo, &avg, &hi
	}
}
