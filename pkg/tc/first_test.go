package tc

import (
	"errors"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

// packets is how many echo requests a counting test sends.
const packets = 50

var dirs = []netif.Direction{netif.Ingress, netif.Egress}

// newOurs returns a counting program of ours per direction.
func newOurs(t *testing.T) [2]*counter {
	t.Helper()
	return [2]*counter{newCounter(t, "nsint_first_i"), newCounter(t, "nsint_first_e")}
}

// placeBoth places ours on both hooks of eth0 in A and returns where.
func placeBoth(t *testing.T, a *Attacher, p *pair, ours [2]*counter) [2]Placement {
	t.Helper()
	var pl [2]Placement
	for _, dir := range dirs {
		var err error
		if pl[dir-1], err = a.Place(p.ifA, dir, ours[dir-1].prog); err != nil {
			t.Fatal(err)
		}
	}
	return pl
}

// TestOursRunsFirst: whatever other tools' classifiers end the chain on a
// hook, added before ours attaches or after, ours sees every packet and so
// do they (ours hands each one on unchanged).
func TestOursRunsFirst(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		for _, c := range classifiers {
			if c.tcx && mode != ModeTCX {
				continue // a TCX program runs before every legacy filter
			}
			for _, early := range []bool{true, false} {
				name := c.name + "/after"
				if early {
					name = c.name + "/before"
				}
				t.Run(name, func(t *testing.T) {
					p := newQuietPair(t)
					a := newAttacher(t, Config{Mode: mode, PinDir: privateBPFFS(t)})
					ours := newOurs(t)
					var theirs [2]meter
					add := func() {
						for _, dir := range dirs {
							theirs[dir-1] = c.add(t, p, dir, early)
						}
					}
					if early {
						add()
					}
					for dir, pl := range placeBoth(t, a, p, ours) {
						if !pl.First() {
							t.Errorf("%s: placed %+v, not first", netif.Directions[dir], pl)
						}
					}
					if !early {
						add()
					}
					checkCounts(t, p, packets, ours, theirs)
					for _, dir := range dirs {
						assertOurs(t, mode, p.a, p.ifA.Ifindex, dir, ours[dir-1], ours[:]...)
					}
				})
			}
		}
	})
}

// TestLegacyMovesAhead: a filter put ahead of ours after it attached hides
// every packet from it until ours is attached again, which moves it ahead.
func TestLegacyMovesAhead(t *testing.T) {
	p := newQuietPair(t)
	a := newAttacher(t, Config{Mode: ModeLegacy, Priority: 100})
	ours := newOurs(t)
	placeBoth(t, a, p, ours)
	var theirs [2]meter
	for _, dir := range dirs {
		theirs[dir-1] = addBPFAt(t, p, dir, 50)
	}
	before := [2]uint64{ours[0].count(t), ours[1].count(t)}
	p.send(t, packets)
	for _, dir := range dirs {
		if got := ours[dir-1].count(t); got != before[dir-1] {
			t.Fatalf("%s: ours saw %d packets behind a filter that ends the chain", dir, got-before[dir-1])
		}
	}

	for dir, pl := range placeBoth(t, a, p, ours) {
		if pl != (Placement{Replaced: true, Moved: true, Priority: 49}) {
			t.Errorf("%s: placed %+v, want moved to 49", netif.Directions[dir], pl)
		}
	}
	checkCounts(t, p, packets, ours, theirs)
	for _, dir := range dirs {
		assertOurs(t, ModeLegacy, p.a, p.ifA.Ifindex, dir, ours[dir-1], ours[:]...)
	}
	for dir, pl := range placeBoth(t, a, p, ours) {
		if pl != (Placement{Replaced: true, Priority: 49}) {
			t.Errorf("%s: placed %+v on the next attach, want kept at 49", netif.Directions[dir], pl)
		}
	}
	if st := a.Stats(); st.Attached != 2 || st.Replaced != 4 || st.Moved != 2 || st.NotFirst != 0 {
		t.Errorf("stats %+v, want 2 attached, 4 replaced, 2 of them moved", st)
	}
}

// TestLegacyNothingAhead: with another tool's filter at priority 1 no place
// ahead of it exists; ours still attaches, at the lowest free priority, and
// says it is not first.
func TestLegacyNothingAhead(t *testing.T) {
	p := newQuietPair(t)
	a := newAttacher(t, Config{Mode: ModeLegacy})
	ours := newOurs(t)
	theirs := addBPFAt(t, p, netif.Egress, 1)
	for range 2 {
		pl, err := a.Place(p.ifA, netif.Egress, ours[1].prog)
		if err != nil {
			t.Fatal(err)
		}
		if pl.First() || pl.Priority != 2 || pl.Ahead != 1 || pl.Moved {
			t.Errorf("placed %+v, want priority 2 behind 1 foreign filter, not moved", pl)
		}
	}
	if st := a.Stats(); st.NotFirst != 2 || st.Failed != 0 {
		t.Errorf("stats %+v, want 2 not first", st)
	}
	before := [2]uint64{ours[1].count(t), theirs(t)}
	p.send(t, packets)
	if got := theirs(t) - before[1]; got != packets {
		t.Errorf("the filter at priority 1 saw %d packets, want %d", got, packets)
	}
	if got := ours[1].count(t) - before[0]; got != 0 {
		t.Errorf("ours saw %d packets behind a filter that ends the chain, want 0", got)
	}
}

// TestLegacyTakesOverOldPlaces: filters of ours from an earlier run, one at
// the old default priority 0xC5A1 (in the kernel's automatic range, behind
// a u32 filter at 49153), and a duplicate (a move cut short), end as one
// filter of ours that sees every packet.
func TestLegacyTakesOverOldPlaces(t *testing.T) {
	p := newQuietPair(t)
	old := newCounter(t, "nsint_old")
	ensureClsact(t, p)
	h := p.a.NetlinkHandle(t)
	addOurs := func(dir netif.Direction, prio uint16) {
		t.Helper()
		if err := h.FilterAdd(&netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: int(p.ifA.Ifindex),
			Parent: clsactParent(dir), Handle: DefaultHandle, Priority: prio, Protocol: unix.ETH_P_ALL},
			Fd: old.prog.FD(), Name: filterName(dir), DirectAction: true}); err != nil {
			t.Fatalf("add old filter of ours at %d: %v", prio, err)
		}
	}
	addOurs(netif.Ingress, 0xC5A1) // alone: first, but where tc puts new filters
	addOurs(netif.Egress, 0xC5A1)  // behind the u32 filter below
	addOurs(netif.Egress, 3)       // first already: kept
	var theirs [2]meter
	for _, dir := range dirs {
		theirs[dir-1] = addU32(t, p, dir, true)
	}
	a := newAttacher(t, Config{Mode: ModeLegacy})
	ours := newOurs(t)
	pl := placeBoth(t, a, p, ours)
	if want := (Placement{Replaced: true, Moved: true, Priority: DefaultPriority}); pl[0] != want {
		t.Errorf("ingress: placed %+v, want %+v", pl[0], want)
	}
	if want := (Placement{Replaced: true, Priority: 3}); pl[1] != want {
		t.Errorf("egress: placed %+v, want %+v", pl[1], want)
	}
	before := old.count(t)
	checkCounts(t, p, packets, ours, theirs)
	if got := old.count(t); got != before {
		t.Errorf("the old program still sees packets (%d)", got-before)
	}
	for _, dir := range dirs {
		assertOurs(t, ModeLegacy, p.a, p.ifA.Ifindex, dir, ours[dir-1], old, ours[0], ours[1])
	}
}

// TestTCXMovesToHead: a program another tool puts at the head after ours
// hides every packet from ours (it returns TCX_PASS) until ours is attached
// again, which moves it back to the head: a new link, pinned where the old
// one was.
func TestTCXMovesToHead(t *testing.T) {
	requireTCX(t)
	p := newQuietPair(t)
	pinDir := privateBPFFS(t)
	a := newAttacher(t, Config{Mode: ModeTCX, PinDir: pinDir})
	ours := newOurs(t)
	placeBoth(t, a, p, ours)
	first := pinnedLink(t, pinDir, p.ifA)
	var theirs [2]meter
	for _, dir := range dirs {
		theirs[dir-1] = attachTCXPass(t, p, dir, link.Head())
	}
	before := [2]uint64{ours[0].count(t), ours[1].count(t)}
	p.send(t, packets)
	for _, dir := range dirs {
		if got := ours[dir-1].count(t); got != before[dir-1] {
			t.Fatalf("%s: ours saw %d packets behind a program that passes them", dir, got-before[dir-1])
		}
	}

	for dir, pl := range placeBoth(t, a, p, ours) {
		if pl != (Placement{Replaced: true, Moved: true}) {
			t.Errorf("%s: placed %+v, want moved", netif.Directions[dir], pl)
		}
	}
	moved := pinnedLink(t, pinDir, p.ifA)
	for _, dir := range dirs {
		if moved[dir-1] == first[dir-1] {
			t.Errorf("%s: same link %d after the move", dir, moved[dir-1])
		}
		// Ours first, then theirs, and nothing else: the old link went.
		ids := tcxPrograms(t, p.a, p.ifA.Ifindex, dir)
		if len(ids) != 2 || ids[0] != ours[dir-1].id {
			t.Errorf("%s: programs %v, want ours (%d) and theirs", dir, ids, ours[dir-1].id)
		}
		assertOurs(t, ModeTCX, p.a, p.ifA.Ifindex, dir, ours[dir-1], ours[:]...)
	}
	checkCounts(t, p, packets, ours, theirs)
	// First again: updated in place, same link.
	for dir, pl := range placeBoth(t, a, p, ours) {
		if pl != (Placement{Replaced: true}) {
			t.Errorf("%s: placed %+v on the next attach, want replaced in place", netif.Directions[dir], pl)
		}
	}
	if got := pinnedLink(t, pinDir, p.ifA); got != moved {
		t.Errorf("links %v after an in-place update, want %v", got, moved)
	}
	if st := a.Stats(); st.Moved != 2 || st.Replaced != 4 || st.NotFirst != 0 {
		t.Errorf("stats %+v, want 4 replaced, 2 of them moved", st)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Place(p.ifA, netif.Ingress, ours[0].prog); !errors.Is(err, ErrClosed) {
		t.Errorf("place after close: %v, want ErrClosed", err)
	}
}

// pinnedLink returns the IDs of our pinned links on both hooks of tg.
func pinnedLink(t *testing.T, pinDir string, tg Target) (ids [2]link.ID) {
	t.Helper()
	for _, dir := range dirs {
		l, err := link.LoadPinnedLink(pinPath(pinDir, tg.Netns, tg.Ifindex, dir), nil)
		if err != nil {
			t.Fatal(err)
		}
		info, err := l.Info()
		l.Close()
		if err != nil {
			t.Fatal(err)
		}
		ids[dir-1] = info.ID
	}
	return ids
}
