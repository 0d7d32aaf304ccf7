package e2e

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/agent"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// TestRecoverAcrossRestarts: UDP datagrams from pod a to pod b over net1,
// with a report interval far longer than the test, so that only each
// flow's first packet is reported while an agent runs. The agent is killed
// (-9) with the rest unreported, more datagrams cross while no agent runs,
// a new agent starts; it is stopped cleanly (SIGTERM), more datagrams cross,
// a third starts and stops. The receiver's v2.0 reports then add up to
// exactly the datagrams sent, at a's net1 egress and at b's net1 ingress:
// nothing lost at the restarts, nothing counted twice. The port counters go
// on across the restarts, and cleanup removes the pinned state.
func TestRecoverAcrossRestarts(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, mode := range []string{"auto", "tc"} {
		t.Run(mode, func(t *testing.T) { testRecoverAcrossRestarts(t, mode) })
	}
}

func testRecoverAcrossRestarts(t *testing.T, mode string) {
	dir := netnstest.Dir(t)
	node, err := fakenode.Build(dir, netnstest.Prefix(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := node.Close(); err != nil {
			t.Errorf("remove fake node: %v", err)
		}
	})
	a, err := node.AddPod("a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := node.AddPod("b")
	if err != nil {
		t.Fatal(err)
	}
	run(t, a.NS, "ping", "-c1", "-W2", b.Net1IP.String()) // neighbours resolved before counting

	const sport, dport = 40500, 4100
	delivered := listenUDP(t, b.NS, netip.AddrPortFrom(b.Net1IP, dport))
	send := sender(t, a.NS, netip.AddrPortFrom(a.Net1IP, sport), netip.AddrPortFrom(b.Net1IP, dport))
	var sent uint64
	sendN := func(n int) {
		t.Helper()
		send(n)
		sent += uint64(n)
		waitFor(t, fmt.Sprintf("%d datagrams received", sent), 10*time.Second, func() bool { return uint64(delivered.received()) >= sent })
	}

	// No agent for a while, as between a crash and the restart: the kernel
	// empties a tail-call table whose last user went some time after the
	// process is gone, and traffic sent at once could still be counted.
	downtime := func() { time.Sleep(scaled(time.Second)) }

	rcv := newReceiver(t)
	env := newAgentEnv(t, dir, rcv.addr(), "--report-format", "v2.0", "--attach-mode", mode)
	// A report interval longer than the test: while an agent runs, only a
	// flow's first packet is reported.
	env.interval = "30s"
	ag := env.start(t)
	topo := ag.topology(t)
	ids := map[string]uint16{}
	for _, p := range topo.Ports {
		ids[p.Netns.Name+":"+p.Name] = p.ID
	}
	aNet1, bNet1 := ids[a.NS.Name+":net1"], ids[b.NS.Name+":net1"]
	if aNet1 == 0 || bNet1 == 0 {
		t.Fatalf("net1 of the pods not in the topology: %v", ids)
	}
	tuple := func(r received) bool {
		return r.tuple.Src == a.Net1IP && r.tuple.Dst == b.Net1IP && r.tuple.Proto == 17 &&
			r.tuple.SrcPort == sport && r.tuple.DstPort == dport
	}
	// reported sums the packets of the flow's reports at a hook.
	reported := func(port uint16, dir netif.Direction) uint64 {
		reps, _ := rcv.snapshot()
		var n uint64
		for _, r := range reps {
			if r.format == intreport.V20 && r.rep.Kind == intreport.Flow && tuple(r) &&
				r.rep.ObservationPort == port && r.rep.Direction == dir {
				n += r.rep.Packets
			}
		}
		return n
	}
	hooks := []struct {
		name string
		port uint16
		dir  netif.Direction
	}{{"a net1 egress", aNet1, netif.Egress}, {"b net1 ingress", bNet1, netif.Ingress}}
	waitReported := func(what string, want uint64) {
		t.Helper()
		for _, h := range hooks {
			waitFor(t, fmt.Sprintf("%s: %d packets reported at %s", what, want, h.name), 15*time.Second,
				func() bool { return reported(h.port, h.dir) >= want })
		}
	}

	// Agent 1: the first datagram of the flow is reported at each hook, the
	// rest stay in the kernel's maps. kill -9.
	sendN(20)
	waitReported("first agent", 1)
	ag.stop(t, syscall.SIGKILL)
	downtime()
	sendN(15) // no agent: the attachments left count on

	// Agent 2 recovers what agent 1 left before it is ready; its port
	// counters start from agent 1's. SIGTERM: its last sweep reports what
	// it counted.
	ag = env.start(t)
	waitReported("after kill -9 and restart", sent)
	m := ag.metrics(t)
	if v := metricValue(t, m, "nsint_recovered_packets_total"); v < float64(2*(sent-1)) {
		t.Errorf("nsint_recovered_packets_total %v, want at least %d", v, 2*(sent-1))
	}
	if v := metricValue(t, m, "nsint_recovery_enabled"); v != 1 {
		t.Errorf("nsint_recovery_enabled %v, want 1", v)
	}
	if v := portPackets(t, m, a.NS.Name, "net1", "egress"); v < float64(sent) {
		t.Errorf("nsint_port_packets_total of a net1 egress %v after the restart, want at least the %d datagrams sent", v, sent)
	}
	sendN(10)
	if err := ag.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	downtime()
	sendN(12) // after the last sweep, no agent

	// Agent 3 recovers what crossed after agent 2's last sweep.
	ag = env.start(t)
	waitReported("after SIGTERM and restart", sent)
	if err := ag.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("agent exit after SIGTERM: %v", err)
	}
	time.Sleep(scaled(time.Second)) // anything counted twice would be in by now
	for _, h := range hooks {
		if got := reported(h.port, h.dir); got != sent {
			t.Errorf("%s: reports carry %d packets, want the %d datagrams sent", h.name, got, sent)
		}
	}
	if _, bad := rcv.snapshot(); len(bad) > 0 {
		t.Errorf("%d reports failed to decode, first: %v", len(bad), bad[0])
	}

	// Cleanup removes the pinned state of the last agent.
	genDir := agent.GenerationDir(env.bpffs)
	if entries, err := os.ReadDir(genDir); err != nil || len(entries) != 1 {
		t.Errorf("pinned generations after a clean stop: %v, %v; want the last agent's", entries, err)
	}
	env.cleanup(t)
	if _, err := os.Stat(genDir); !os.IsNotExist(err) {
		t.Errorf("%s after cleanup: %v, want it gone", genDir, err)
	}
	if _, err := os.Stat(filepath.Join(env.bpffs, "nsint")); !os.IsNotExist(err) {
		t.Errorf("pin directory after cleanup: %v, want it gone", err)
	}
}

// sender returns a function that sends n datagrams of one flow, from src
// in ns to dst, paced so that no queue overflows.
func sender(t *testing.T, ns *netnstest.NS, src, dst netip.AddrPort) func(n int) {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return func(n int) {
		t.Helper()
		for range n {
			if _, err := c.Write([]byte("nsint recovery test")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

// metricValue is the value of an unlabelled metric in a /metrics page.
func metricValue(t *testing.T, page, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// portPackets is nsint_port_packets_total of one interface and direction.
func portPackets(t *testing.T, page, netns, iface, dir string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(page, "\n") {
		if !strings.HasPrefix(line, "nsint_port_packets_total{") ||
			!strings.Contains(line, fmt.Sprintf(`interface=%q`, iface)) ||
			!strings.Contains(line, fmt.Sprintf(`netns=%q`, netns)) ||
			!strings.Contains(line, fmt.Sprintf(`direction=%q`, dir)) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
		if err != nil {
			t.Fatalf("port packets: %v", err)
		}
		return f
	}
	t.Fatalf("no nsint_port_packets_total for %s %s %s", netns, iface, dir)
	return 0
}
