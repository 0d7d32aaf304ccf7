package tc

import (
	"errors"
	"slices"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/tc/legacyfilter"
)

// Legacy filters run in the order of their priority, lowest first; each
// priority holds one classifier instance (one kind, one protocol), and a
// filter that returns a verdict ends the chain. Packets enter at chain 0.
//
// The kernel gives a filter added without a priority one from its automatic
// range: 0xC000 when no filter sits at 0x8000 or above, else one below the
// lowest of those; with a filter at 0x8000 itself, every such add fails
// ("Lowest ID from auto-alloc range already in use"). Filters below 0x8000
// play no part in it. So ours stays below the range: it never makes an add
// without a priority fail, and every such filter lands behind ours.
const (
	// MaxPriority is the highest Config.Priority: the one below the kernel's
	// automatic range.
	MaxPriority = legacyfilter.MaxPriority
	autoPrioMin = MaxPriority + 1
)

// hook is what one legacy hook holds: our filters (any priority) and the
// distinct priorities of everyone else's in chain 0, sorted.
type hook struct {
	ours    []*netlink.BpfFilter
	foreign []uint16
}

// isOurFilter tells whether f is ours: kind bpf, our name for the
// direction and our handle. The priority is where we put it, not who we are.
func isOurFilter(f netlink.Filter, dir netif.Direction, handle uint32) bool {
	bf, ok := f.(*netlink.BpfFilter)
	return ok && bf.Name == filterName(dir) && bf.Handle == handle
}

func inChain0(f netlink.Filter) bool {
	c := f.Attrs().Chain
	return c == nil || *c == 0
}

func readHook(filters []netlink.Filter, dir netif.Direction, handle uint32) hook {
	var h hook
	for _, f := range filters {
		switch {
		case isOurFilter(f, dir, handle):
			h.ours = append(h.ours, f.(*netlink.BpfFilter))
		case inChain0(f):
			h.foreign = append(h.foreign, f.Attrs().Priority)
		}
	}
	slices.Sort(h.foreign)
	h.foreign = slices.Compact(h.foreign)
	return h
}

// ahead counts the foreign priorities that may run before ours at prio: the
// lower ones, and prio itself when a foreign filter shares it.
func (h hook) ahead(prio uint16) int {
	n, found := slices.BinarySearch(h.foreign, prio)
	if found {
		n++
	}
	return n
}

// headPriority is where a new filter of ours goes: the preferred priority
// when it runs before every foreign filter, else the one just ahead of the
// first foreign filter. When a foreign filter sits at priority 1 there is no
// place ahead of everyone; then it is the lowest free priority, and ok is
// false.
func (h hook) headPriority(preferred uint16) (prio uint16, ok bool) {
	if len(h.foreign) == 0 || preferred < h.foreign[0] {
		return preferred, true
	}
	if h.foreign[0] > 1 {
		return h.foreign[0] - 1, true
	}
	for p := uint16(1); p <= MaxPriority; p++ {
		if _, taken := slices.BinarySearch(h.foreign, p); !taken {
			return p, false
		}
	}
	return 0, false
}

// errNoPriority means every priority below the automatic range is taken.
var errNoPriority = errors.New("no free filter priority below the automatic range")

// legacyPlan is what attaching does to a hook.
type legacyPlan struct {
	// keep is our filter that stays where it is and gets the program; nil
	// means a new filter of ours at prio.
	keep *netlink.BpfFilter
	prio uint16
	// retire are our other filters, removed once ours at prio runs the
	// program.
	retire []*netlink.BpfFilter
	// ahead counts foreign priorities that may run before ours at prio.
	ahead int
}

// plan decides where ours goes. Our filter stays where it is while nothing
// of anyone else's may run before it (and it is out of the kernel's
// automatic range, where a filter added without a priority lands just ahead
// of it: our default priority used to be 0xC5A1). Otherwise ours moves to the
// head, or, when nothing is free ahead of everyone, to the lowest free
// priority if that puts fewer foreign filters before it. Duplicates of ours
// (a move cut short) are retired.
func (h hook) plan(preferred uint16) (legacyPlan, error) {
	var best *netlink.BpfFilter
	for _, f := range h.ours {
		if !inChain0(f) {
			continue
		}
		if best == nil || h.ahead(f.Priority) < h.ahead(best.Priority) ||
			(h.ahead(f.Priority) == h.ahead(best.Priority) && f.Priority < best.Priority) {
			best = f
		}
	}
	head, _ := h.headPriority(preferred)
	var p legacyPlan
	switch {
	case best != nil && (head == 0 || best.Priority == head ||
		(best.Priority < autoPrioMin && h.ahead(best.Priority) <= h.ahead(head))):
		p.keep, p.prio = best, best.Priority
	case head == 0:
		return legacyPlan{}, errNoPriority
	default:
		p.prio = head
	}
	for _, f := range h.ours {
		if f != p.keep {
			p.retire = append(p.retire, f)
		}
	}
	p.ahead = h.ahead(p.prio)
	return p, nil
}
