package tc

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// TestCleanup leaves attachments of both modes behind, as a crashed agent
// would, and checks that Cleanup removes all of ours and nothing of anyone
// else's.
func TestCleanup(t *testing.T) {
	p := newPair(t)
	requireTCX(t)
	f := addForeign(t, p)
	// As the agent has it: a directory of ours on the BPF filesystem.
	pinDir := filepath.Join(privateBPFFS(t), "nsint")
	ours := newCounter(t, "nsint_cleanup")
	tcx := newAttacher(t, Config{Mode: ModeTCX, PinDir: pinDir})
	legacy := newAttacher(t, Config{Mode: ModeLegacy, PinDir: pinDir})
	tB := target(t, p.b, "eth0")
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		if err := tcx.Attach(p.ifA, dir, ours.prog); err != nil {
			t.Fatal(err)
		}
		if err := legacy.Attach(tB, dir, ours.prog); err != nil {
			t.Fatal(err)
		}
	}
	dropWithoutDetach(ours)

	removed, err := Cleanup(Config{PinDir: pinDir}, CleanupScope{NetnsDirs: []string{p.dir}})
	if err != nil {
		t.Fatal(err)
	}
	if removed != 4 {
		t.Errorf("removed %d, want 4 (2 links, 2 filters)", removed)
	}
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		assertOurs(t, ModeTCX, p.a, p.ifA.Ifindex, dir, nil, ours)
		assertOurs(t, ModeLegacy, p.b, tB.Ifindex, dir, nil, ours)
	}
	before := ours.count(t)
	f.checkAlive(t, p)
	if ours.count(t) != before {
		t.Error("our program still sees packets after cleanup")
	}
	if !hasClsact(t, p.b, tB.Ifindex) {
		t.Error("cleanup deleted the clsact qdisc we created")
	}
	if _, err := os.Stat(pinDir); !os.IsNotExist(err) {
		t.Errorf("pin directory left (New created it): %v", err)
	}
	// A second run finds nothing.
	if removed, err := Cleanup(Config{PinDir: pinDir}, CleanupScope{NetnsDirs: []string{p.dir}}); err != nil || removed != 0 {
		t.Errorf("second cleanup: removed %d, %v", removed, err)
	}
}

// TestCleanupHostNamespace attaches to the host end of a veth the test
// created and checks that only IncludeHost lets Cleanup touch it.
func TestCleanupHostNamespace(t *testing.T) {
	netnstest.RequireRoot(t)
	requireTCX(t)
	pfx := netnstest.Prefix(t)
	ns := netnstest.New(t, netnstest.Dir(t), pfx+"-n")
	hostName := pfx + "h"
	netnstest.Veth(t, nil, hostName, ns, "eth0")
	host := target(t, &netnstest.NS{Name: "host", Path: ownNetnsPath}, hostName)
	host.NetnsPath = ""
	host.Netns = 0

	pinDir := privateBPFFS(t)
	ours := newCounter(t, "nsint_host")
	if err := newAttacher(t, Config{Mode: ModeTCX, PinDir: pinDir}).Attach(host, netif.Ingress, ours.prog); err != nil {
		t.Fatal(err)
	}
	if err := newAttacher(t, Config{Mode: ModeLegacy}).Attach(host, netif.Egress, ours.prog); err != nil {
		t.Fatal(err)
	}
	hostNS := &netnstest.NS{Name: "host", Path: ownNetnsPath}

	removed, err := Cleanup(Config{PinDir: pinDir}, CleanupScope{NetnsDirs: []string{ns.Dir}})
	if err != nil || removed != 0 {
		t.Fatalf("cleanup without host: removed %d, %v", removed, err)
	}
	assertOurs(t, ModeTCX, hostNS, host.Ifindex, netif.Ingress, ours, ours)
	assertOurs(t, ModeLegacy, hostNS, host.Ifindex, netif.Egress, ours, ours)

	removed, err = Cleanup(Config{PinDir: pinDir}, CleanupScope{NetnsDirs: []string{ns.Dir}, IncludeHost: true})
	if err != nil || removed != 2 {
		t.Fatalf("cleanup with host: removed %d, %v; want 2", removed, err)
	}
	assertOurs(t, ModeTCX, hostNS, host.Ifindex, netif.Ingress, nil, ours)
	assertOurs(t, ModeLegacy, hostNS, host.Ifindex, netif.Egress, nil, ours)
}
