package agent

import (
	"cmp"
	"slices"
	"strings"
	"sync"

	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/netif"
)

// reportedDrops counts the drops that the agent's drop reports carry, by the
// port and direction where the kernel saw them (the report's observation) and
// the kernel's drop reason. Every drop report is counted when it is made —
// the drop hook's own, the sweep's of drops its rate limit folded, and those
// recovered from an earlier agent's kernel state — so each drop is counted
// exactly once and these figures are, by construction, what the reports
// carry. The kernel's per-port drop counter counts the same drops (the hook
// adds to it before the rate limit); the two agree once the port's drops
// have been reported: at most --drop-report-interval plus one sweep later.
//
// The map holds one entry per (port, direction, reason) that has had a drop;
// reasons are the running kernel's enum skb_drop_reason names and
// dropreason.UnknownName, so it is bounded by the ports times two times the
// enum's size plus one. Drop reports are rare next to flow reports, so a
// mutex serves; a new entry is the only allocation.
type reportedDrops struct {
	mu     sync.Mutex
	counts map[dropCountKey]uint64
}

type dropCountKey struct {
	port   uint16
	dir    netif.Direction
	reason string
}

// reasonCount is one (direction, reason) figure of a port.
type reasonCount struct {
	dir    netif.Direction
	reason string
	drops  uint64
}

func (r *reportedPackets) addDrops(port uint16, dir netif.Direction, reason string, drops uint64) {
	if port == 0 || drops == 0 {
		return
	}
	d := &r.drops
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts = make(map[dropCountKey]uint64)
	}
	d.counts[dropCountKey{port: port, dir: dir, reason: reason}] += drops
}

// dropsByPort returns the counts of every port that has any, each port's
// sorted by direction and reason.
func (r *reportedPackets) dropsByPort() map[uint16][]reasonCount {
	d := &r.drops
	d.mu.Lock()
	out := make(map[uint16][]reasonCount)
	for k, v := range d.counts {
		out[k.port] = append(out[k.port], reasonCount{dir: k.dir, reason: k.reason, drops: v})
	}
	d.mu.Unlock()
	for _, rc := range out {
		slices.SortFunc(rc, func(a, b reasonCount) int {
			return cmp.Or(cmp.Compare(a.dir, b.dir), strings.Compare(a.reason, b.reason))
		})
	}
	return out
}

func (d *reportedDrops) reset(port uint16) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.counts {
		if k.port == port {
			delete(d.counts, k)
		}
	}
}

// dropReasonLabel names a drop event's kernel reason as the metrics label
// it: the running kernel's enum skb_drop_reason name without its
// SKB_DROP_REASON_ prefix ("NO_SOCKET"), or dropreason.UnknownName for a
// kernel without drop reasons or a value its enum does not have. The names
// are the resolver's own strings, so labelling allocates nothing.
func (a *Agent) dropReasonLabel(ev *datapath.Event) string {
	if !ev.DropReasonKnown {
		return dropreason.UnknownName
	}
	return strings.TrimPrefix(a.drops.Name(ev.DropReason), dropreason.Prefix)
}
