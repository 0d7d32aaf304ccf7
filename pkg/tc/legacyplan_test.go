package tc

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/pkg/netif"
)

func TestLegacyPlan(t *testing.T) {
	chain := func(c uint32) *uint32 { return &c }
	ours := func(prio uint16) netlink.Filter {
		return &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: prio, Handle: DefaultHandle, Chain: chain(0)},
			Name: filterName(netif.Egress)}
	}
	foreign := func(prio uint16) netlink.Filter {
		return &netlink.GenericFilter{FilterAttrs: netlink.FilterAttrs{Priority: prio, Chain: chain(0)}, FilterType: "u32"}
	}
	for _, c := range []struct {
		name      string
		preferred uint16
		filters   []netlink.Filter
		keep      uint16 // priority of ours kept in place; 0: a new filter
		prio      uint16
		retire    int
		ahead     int
	}{
		{name: "empty hook", preferred: 2, prio: 2},
		{name: "automatic priorities behind", preferred: 2, filters: []netlink.Filter{foreign(49152), foreign(49153)}, prio: 2},
		{name: "default taken", preferred: 2, filters: []netlink.Filter{foreign(2)}, prio: 1},
		{name: "ahead of the first", preferred: 7, filters: []netlink.Filter{foreign(5), foreign(49152)}, prio: 4},
		{name: "filter at 1", preferred: 2, filters: []netlink.Filter{foreign(1)}, prio: 2, ahead: 1},
		{name: "lowest free", preferred: 2, filters: []netlink.Filter{foreign(1), foreign(2), foreign(3)}, prio: 4, ahead: 3},
		{name: "other chain ignored", preferred: 2,
			filters: []netlink.Filter{&netlink.GenericFilter{FilterAttrs: netlink.FilterAttrs{Priority: 1, Chain: chain(1)}}}, prio: 2},
		{name: "still first", preferred: 2, filters: []netlink.Filter{ours(5), foreign(49152)}, keep: 5, prio: 5},
		{name: "overtaken", preferred: 100, filters: []netlink.Filter{ours(100), foreign(50)}, prio: 49, retire: 1},
		{name: "shared priority", preferred: 2, filters: []netlink.Filter{ours(3), foreign(3)}, prio: 2, retire: 1},
		{name: "old default in the automatic range", preferred: 2, filters: []netlink.Filter{ours(0xC5A1)}, prio: 2, retire: 1},
		{name: "duplicate retired", preferred: 2, filters: []netlink.Filter{ours(0xC5A1), ours(3)}, keep: 3, prio: 3, retire: 1},
		{name: "behind 1, nothing better", preferred: 2, filters: []netlink.Filter{foreign(1), ours(2)}, keep: 2, prio: 2, ahead: 1},
		{name: "behind 1, fewer ahead", preferred: 2, filters: []netlink.Filter{foreign(1), foreign(3), ours(5)}, prio: 2, retire: 1, ahead: 1},
		{name: "ours in another chain", preferred: 2,
			filters: []netlink.Filter{&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: 1, Handle: DefaultHandle, Chain: chain(3)},
				Name: filterName(netif.Egress)}}, prio: 2, retire: 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, err := readHook(c.filters, netif.Egress, DefaultHandle).plan(c.preferred)
			if err != nil {
				t.Fatal(err)
			}
			keep := uint16(0)
			if p.keep != nil {
				keep = p.keep.Priority
			}
			if keep != c.keep || p.prio != c.prio || len(p.retire) != c.retire || p.ahead != c.ahead {
				t.Errorf("plan: keep %d, prio %d, retire %d, ahead %d; want %d, %d, %d, %d",
					keep, p.prio, len(p.retire), p.ahead, c.keep, c.prio, c.retire, c.ahead)
			}
		})
	}
}

func TestLegacyPlanIdentity(t *testing.T) {
	for _, f := range []netlink.Filter{
		&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: 9, Handle: DefaultHandle + 1}, Name: filterName(netif.Egress)},
		&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: 9, Handle: DefaultHandle}, Name: "other"},
		&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: 9, Handle: DefaultHandle}, Name: filterName(netif.Ingress)},
		&netlink.GenericFilter{FilterAttrs: netlink.FilterAttrs{Priority: 9, Handle: DefaultHandle}, FilterType: "u32"},
	} {
		if h := readHook([]netlink.Filter{f}, netif.Egress, DefaultHandle); len(h.ours) != 0 || len(h.foreign) != 1 {
			t.Errorf("%+v taken for ours", f)
		}
	}
	ours := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{Priority: 0xC5A1, Handle: DefaultHandle}, Name: filterName(netif.Egress)}
	if h := readHook([]netlink.Filter{ours}, netif.Egress, DefaultHandle); len(h.ours) != 1 {
		t.Error("ours at another priority not recognised")
	}
}

func TestLegacyPlanNoPriorityLeft(t *testing.T) {
	var filters []netlink.Filter
	for p := uint16(1); p <= MaxPriority; p++ {
		filters = append(filters, &netlink.GenericFilter{FilterAttrs: netlink.FilterAttrs{Priority: p}})
	}
	if _, err := readHook(filters, netif.Egress, DefaultHandle).plan(DefaultPriority); !errors.Is(err, errNoPriority) {
		t.Fatalf("plan on a full hook: %v, want errNoPriority", err)
	}
}
