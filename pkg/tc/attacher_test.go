package tc

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/ports"
)

func TestParseMode(t *testing.T) {
	for s, want := range map[string]Mode{"auto": ModeAuto, "tcx": ModeTCX, "tc": ModeLegacy} {
		got, err := ParseMode(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseMode("legacy"); err == nil {
		t.Error("ParseMode(legacy) succeeded")
	}
}

func TestAutoModeUsesTCXWhenAvailable(t *testing.T) {
	netnstest.RequireRoot(t)
	requireTCX(t)
	a := newAttacher(t, Config{PinDir: privateBPFFS(t)})
	if a.Mode() != ModeTCX {
		t.Fatalf("auto resolved to %v on a kernel with TCX", a.Mode())
	}
	if _, err := New(Config{Mode: ModeTCX, PinDir: t.TempDir()}); err == nil {
		t.Fatal("tcx mode accepted a pin dir that is not on bpffs")
	}
}

func TestAttachDetach(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		p := newPair(t)
		f := addForeign(t, p)
		ours := newCounter(t, "nsint_test")
		a := newAttacher(t, Config{Mode: mode, PinDir: privateBPFFS(t)})

		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			if err := a.Attach(p.ifA, dir, ours.prog); err != nil {
				t.Fatal(err)
			}
		}
		before := ours.count(t)
		f.checkAlive(t, p)
		// Three requests out, three replies in: both hooks see traffic.
		if got := ours.count(t) - before; got < 6 {
			t.Errorf("our program saw %d packets, want at least 6", got)
		}
		// Attach is idempotent: a second call replaces in place.
		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			if err := a.Attach(p.ifA, dir, ours.prog); err != nil {
				t.Fatal(err)
			}
			assertOurs(t, mode, p.a, p.ifA.Ifindex, dir, ours, ours)
		}
		if st := a.Stats(); st.Attached != 2 || st.Replaced != 2 {
			t.Errorf("stats %+v, want 2 attached and 2 replaced", st)
		}

		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			if err := a.Detach(p.ifA, dir); err != nil {
				t.Fatal(err)
			}
			assertOurs(t, mode, p.a, p.ifA.Ifindex, dir, nil, ours)
			if err := a.Detach(p.ifA, dir); err != nil {
				t.Fatalf("second detach: %v", err)
			}
		}
		before = ours.count(t)
		f.checkAlive(t, p)
		if got := ours.count(t); got != before {
			t.Errorf("detached program still counts (%d -> %d)", before, got)
		}
		if mode == ModeTCX {
			if _, err := os.Stat(pinPath(a.Config().PinDir, netif.Netns(p.a.Inode), p.ifA.Ifindex, netif.Ingress)); !os.IsNotExist(err) {
				t.Errorf("pin left after detach: %v", err)
			}
		}
	})
}

// TestRestartAfterKill simulates an agent killed without detaching: a new
// Attacher on the same pin dir and a port allocator reopened from the same
// state dir take over with the same port IDs and without duplicates.
func TestRestartAfterKill(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		p := newPair(t)
		f := addForeign(t, p)
		pinDir, stateDir := privateBPFFS(t), t.TempDir()
		targets := []Target{p.ifA, target(t, p.b, "eth0")}
		nss := []*netnstest.NS{p.a, p.b}

		run1 := newCounter(t, "nsint_run1")
		alloc1, err := ports.Open(stateDir, 1000)
		if err != nil {
			t.Fatal(err)
		}
		ids1 := map[Target]uint16{}
		a1 := newAttacher(t, Config{Mode: mode, PinDir: pinDir})
		for _, tg := range targets {
			if ids1[tg], err = alloc1.Acquire(tg.ID); err != nil {
				t.Fatal(err)
			}
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				if err := a1.Attach(tg, dir, run1.prog); err != nil {
					t.Fatal(err)
				}
			}
		}
		linkIDs := pinnedLinkIDs(t, mode, pinDir, targets)
		dropWithoutDetach(run1)

		// The old program keeps observing while no agent runs.
		before := run1.count(t)
		p.ping(t)
		if run1.count(t) == before {
			t.Error("attachments did not survive the agent")
		}

		run2 := newCounter(t, "nsint_run2")
		alloc2, err := ports.Open(stateDir, 1000)
		if err != nil {
			t.Fatal(err)
		}
		a2 := newAttacher(t, Config{Mode: mode, PinDir: pinDir})
		for i, tg := range targets {
			id, err := alloc2.Acquire(tg.ID)
			if err != nil {
				t.Fatal(err)
			}
			if id != ids1[tg] {
				t.Errorf("%s in %s: port %d after restart, was %d", tg.Name, nss[i].Name, id, ids1[tg])
			}
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				if err := a2.Attach(tg, dir, run2.prog); err != nil {
					t.Fatal(err)
				}
				assertOurs(t, mode, nss[i], tg.Ifindex, dir, run2, run1, run2)
			}
		}
		if st := a2.Stats(); st.Replaced != 4 || st.Attached != 0 {
			t.Errorf("restart stats %+v, want 4 replaced in place", st)
		}
		if mode == ModeTCX {
			// Same links, new program: updated in place, never re-created.
			if got := pinnedLinkIDs(t, mode, pinDir, targets); got != linkIDs {
				t.Errorf("link ids changed across restart: %v -> %v", linkIDs, got)
			}
		}
		before = run2.count(t)
		f.checkAlive(t, p)
		if run2.count(t) == before {
			t.Error("new program sees no packets")
		}
	})
}

func pinnedLinkIDs(t *testing.T, mode Mode, pinDir string, targets []Target) (ids [4]link.ID) {
	t.Helper()
	if mode != ModeTCX {
		return ids
	}
	i := 0
	for _, tg := range targets {
		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			l, err := link.LoadPinnedLink(pinPath(pinDir, tg.Netns, tg.Ifindex, dir), nil)
			if err != nil {
				t.Fatal(err)
			}
			info, err := l.Info()
			l.Close()
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = info.ID
			i++
		}
	}
	return ids
}

// TestSameIfindexInTwoNamespaces: eth0 with the same ifindex in two
// namespaces is two interfaces with two port IDs and two attachments.
func TestSameIfindexInTwoNamespaces(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		netnstest.RequireRoot(t)
		dir, pfx := netnstest.Dir(t), netnstest.Prefix(t)
		c := netnstest.New(t, dir, pfx+"-c")
		d := netnstest.New(t, dir, pfx+"-d")
		for _, ns := range []*netnstest.NS{c, d} {
			ns.Run(t, "ip", "link", "add", "eth0", "index", "7", "type", "veth", "peer", "name", "peer0")
			ns.Run(t, "ip", "link", "set", "eth0", "up")
			ns.Run(t, "ip", "link", "set", "peer0", "up")
		}
		tc, td := target(t, c, "eth0"), target(t, d, "eth0")
		if tc.Ifindex != td.Ifindex {
			t.Fatalf("ifindexes differ: %d %d", tc.Ifindex, td.Ifindex)
		}
		alloc, err := ports.Open(t.TempDir(), 100)
		if err != nil {
			t.Fatal(err)
		}
		pc, _ := alloc.Acquire(tc.ID)
		pd, _ := alloc.Acquire(td.ID)
		if pc == pd || pc == 0 || pd == 0 {
			t.Fatalf("port ids %d and %d", pc, pd)
		}
		prog := newCounter(t, "nsint_same")
		a := newAttacher(t, Config{Mode: mode, PinDir: privateBPFFS(t)})
		for _, tg := range []Target{tc, td} {
			if err := a.Attach(tg, netif.Ingress, prog.prog); err != nil {
				t.Fatal(err)
			}
		}
		if st := a.Stats(); st.Attached != 2 {
			t.Fatalf("stats %+v: the second namespace was taken for the first", st)
		}
		if err := a.Detach(tc, netif.Ingress); err != nil {
			t.Fatal(err)
		}
		assertOurs(t, mode, c, tc.Ifindex, netif.Ingress, nil, prog)
		assertOurs(t, mode, d, td.Ifindex, netif.Ingress, prog, prog)
	})
}

func TestInterfaceGone(t *testing.T) {
	modes(t, func(t *testing.T, mode Mode) {
		p := newPair(t)
		prog := newCounter(t, "nsint_gone")
		a := newAttacher(t, Config{Mode: mode, PinDir: privateBPFFS(t)})

		missing := p.ifA
		missing.Ifindex = 999
		if err := a.Attach(missing, netif.Ingress, prog.prog); !errors.Is(err, ErrInterfaceGone) {
			t.Errorf("missing ifindex: %v, want ErrInterfaceGone", err)
		}
		wrongNetns := p.ifA
		wrongNetns.Netns = netif.Netns(p.b.Inode)
		if err := a.Attach(wrongNetns, netif.Ingress, prog.prog); !errors.Is(err, ErrInterfaceGone) {
			t.Errorf("path naming another namespace: %v, want ErrInterfaceGone", err)
		}
		if err := a.Attach(p.ifA, netif.Ingress, prog.prog); err != nil {
			t.Fatal(err)
		}
		if err := p.a.Remove(); err != nil {
			t.Fatal(err)
		}
		if err := a.Attach(p.ifA, netif.Egress, prog.prog); !errors.Is(err, ErrInterfaceGone) {
			t.Errorf("removed namespace: %v, want ErrInterfaceGone", err)
		}
		if st := a.Stats(); st.Gone != 3 || st.Failed != 0 {
			t.Errorf("stats %+v, want 3 gone", st)
		}
		// Detach after the namespace went still forgets our pin.
		if err := a.Detach(p.ifA, netif.Ingress); err != nil {
			t.Errorf("detach in removed namespace: %v", err)
		}
		if mode == ModeTCX {
			if _, err := os.Stat(pinPath(a.Config().PinDir, netif.Netns(p.a.Inode), p.ifA.Ifindex, netif.Ingress)); !os.IsNotExist(err) {
				t.Errorf("pin left: %v", err)
			}
		}
	})
}

// TestStalePinReplaced: the interface behind a pinned link is deleted and a
// new one gets the same ifindex; the next Attach must attach to the new
// device instead of updating the defunct link.
func TestStalePinReplaced(t *testing.T) {
	netnstest.RequireRoot(t)
	requireTCX(t)
	ns := netnstest.New(t, netnstest.Dir(t), netnstest.Prefix(t)+"-s")
	mk := func() {
		ns.Run(t, "ip", "link", "add", "eth0", "index", "9", "type", "veth", "peer", "name", "peer0")
		ns.Run(t, "ip", "link", "set", "eth0", "up")
	}
	mk()
	tg := target(t, ns, "eth0")
	prog := newCounter(t, "nsint_stale")
	a := newAttacher(t, Config{Mode: ModeTCX, PinDir: privateBPFFS(t)})
	if err := a.Attach(tg, netif.Egress, prog.prog); err != nil {
		t.Fatal(err)
	}
	ns.Run(t, "ip", "link", "del", "eth0")
	mk()
	if err := a.Attach(tg, netif.Egress, prog.prog); err != nil {
		t.Fatal(err)
	}
	if st := a.Stats(); st.Attached != 2 || st.Replaced != 0 {
		t.Errorf("stats %+v: defunct link updated instead of replaced", st)
	}
	assertOurs(t, ModeTCX, ns, tg.Ifindex, netif.Egress, prog, prog)
}

func TestClosedAttacher(t *testing.T) {
	a := &Attacher{cfg: Config{}.withDefaults()}
	a.Close()
	if err := a.Attach(Target{ID: netif.ID{Ifindex: 1}}, netif.Ingress, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("attach after close: %v", err)
	}
}

// TestModeChangeLeavesOneAttachment: an agent restarted in the other mode
// takes over the hook and removes what the first mode left there.
func TestModeChangeLeavesOneAttachment(t *testing.T) {
	p := newPair(t)
	requireTCX(t)
	pinDir := privateBPFFS(t)
	run1, run2, run3 := newCounter(t, "nsint_run1"), newCounter(t, "nsint_run2"), newCounter(t, "nsint_run3")
	if err := newAttacher(t, Config{Mode: ModeLegacy, PinDir: pinDir}).Attach(p.ifA, netif.Ingress, run1.prog); err != nil {
		t.Fatal(err)
	}
	if err := newAttacher(t, Config{Mode: ModeTCX, PinDir: pinDir}).Attach(p.ifA, netif.Ingress, run2.prog); err != nil {
		t.Fatal(err)
	}
	assertOurs(t, ModeTCX, p.a, p.ifA.Ifindex, netif.Ingress, run2, run1, run2)
	assertOurs(t, ModeLegacy, p.a, p.ifA.Ifindex, netif.Ingress, nil, run1, run2)
	if err := newAttacher(t, Config{Mode: ModeLegacy, PinDir: pinDir}).Attach(p.ifA, netif.Ingress, run3.prog); err != nil {
		t.Fatal(err)
	}
	assertOurs(t, ModeLegacy, p.a, p.ifA.Ifindex, netif.Ingress, run3, run1, run2, run3)
	assertOurs(t, ModeTCX, p.a, p.ifA.Ifindex, netif.Ingress, nil, run1, run2, run3)
}

// TestForeignFilterAtOurPriority: a filter of someone else's that happens to
// sit at our priority and handle is neither replaced nor removed; ours goes
// ahead of it at another priority.
func TestForeignFilterAtOurPriority(t *testing.T) {
	p := newPair(t)
	other := newCounter(t, "other_tool")
	h := p.a.NetlinkHandle(t)
	if err := h.QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: int(p.ifA.Ifindex), Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT,
	}}); err != nil {
		t.Fatal(err)
	}
	if err := h.FilterAdd(&netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: int(p.ifA.Ifindex), Parent: netlink.HANDLE_MIN_INGRESS,
			Handle: DefaultHandle, Priority: DefaultPriority, Protocol: unix.ETH_P_ALL},
		Fd: other.prog.FD(), Name: "other-tool", DirectAction: true,
	}); err != nil {
		t.Fatal(err)
	}
	ours := newCounter(t, "nsint_test")
	a := newAttacher(t, Config{Mode: ModeLegacy})
	pl, err := a.Place(p.ifA, netif.Ingress, ours.prog)
	if err != nil {
		t.Fatalf("attach next to a foreign filter at our priority: %v", err)
	}
	if want := (Placement{Priority: DefaultPriority - 1}); pl != want {
		t.Errorf("placement %+v, want %+v", pl, want)
	}
	assertOurs(t, ModeLegacy, p.a, p.ifA.Ifindex, netif.Ingress, ours, ours)
	before := [2]uint64{ours.count(t), other.count(t)}
	p.ping(t)
	if ours.count(t) <= before[0] || other.count(t) <= before[1] {
		t.Errorf("ours saw %d packets, the other tool's %d; want both some",
			ours.count(t)-before[0], other.count(t)-before[1])
	}
	if n, err := Cleanup(Config{}, CleanupScope{NetnsDirs: []string{p.dir}}); err != nil || n != 1 {
		t.Fatalf("cleanup removed %d, %v; want 1 (ours)", n, err)
	}
	before[1] = other.count(t)
	p.ping(t)
	if other.count(t) <= before[1] {
		t.Error("foreign filter at our priority no longer sees packets")
	}
}
