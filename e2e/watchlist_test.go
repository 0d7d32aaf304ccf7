package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/intreport"
)

// The watchlist limits flow reports to matching flows, reloads on change
// without a restart, and a bad new file leaves the rules in force.
func TestWatchlistReload(t *testing.T) {
	netnstest.RequireRoot(t)
	dir := netnstest.Dir(t)
	node, err := fakenode.Build(dir, netnstest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })
	a, err := node.AddPod("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.AddPod("b")
	if err != nil {
		t.Fatal(err)
	}
	wl := filepath.Join(t.TempDir(), "watchlist.yaml")
	write := func(body string) {
		t.Helper()
		tmp := wl + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, wl); err != nil {
			t.Fatal(err)
		}
	}
	write("rules:\n  - proto: udp\n    dstPort: 4000\n")

	rcv := newReceiver(t)
	env := newAgentEnv(t, dir, rcv.addr(), "--watchlist", wl, "--select", "include name=net1")
	ag := env.start(t)

	flowsTo := func(proto uint8) int {
		reps, _ := rcv.snapshot()
		n := 0
		for _, r := range reps {
			if r.rep.Kind == intreport.Flow && r.tuple.Proto == proto && r.tuple.Dst == b.Net1IP {
				n++
			}
		}
		return n
	}
	udpExchange(t, a.NS, b.NS, b.Net1IP, 4000)
	run(t, a.NS, "ping", "-c3", "-i0.2", "-W2", b.Net1IP.String())
	waitFor(t, "udp flow to port 4000 reported", 10*time.Second, func() bool { return flowsTo(17) > 0 })
	time.Sleep(500 * time.Millisecond) // ICMP had its chance to be (wrongly) reported
	if n := flowsTo(1); n != 0 {
		t.Fatalf("%d ICMP flow reports while the watchlist admits only udp/4000", n)
	}

	write("rules:\n  - proto: nonsense\n")
	waitFor(t, "the bad watchlist rejected in the log", 10*time.Second, func() bool {
		return strings.Contains(ag.Log.String(), "rejected, keeping the rules in force")
	})
	run(t, a.NS, "ping", "-c3", "-i0.2", "-W2", b.Net1IP.String())
	time.Sleep(500 * time.Millisecond)
	if n := flowsTo(1); n != 0 {
		t.Fatalf("%d ICMP flow reports after a bad watchlist replaced a good one", n)
	}

	write("rules:\n  - proto: icmp\n")
	waitFor(t, "the new watchlist applied", 10*time.Second, func() bool {
		return strings.Count(ag.Log.String(), "watchlist applied") >= 2
	})
	// Existing flows take the new rules at their next refresh.
	deadline := time.Now().Add(10 * time.Second)
	for flowsTo(1) == 0 && time.Now().Before(deadline) {
		run(t, a.NS, "ping", "-c2", "-i0.2", "-W2", b.Net1IP.String())
	}
	if flowsTo(1) == 0 {
		t.Fatal("no ICMP flow report after the watchlist admitted ICMP")
	}
}
