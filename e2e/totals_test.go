package e2e

import (
	"fmt"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/web"
)

// TestTotals is the acceptance by totals: pods whose eth0 and net1 share
// ifindexes (plus a net10 and an interface added after the agent started),
// foreign classifying filters on their hooks, and traffic whose every packet
// the test knows — UDP bursts shorter than the report interval over eth0,
// net1, net10 and the late interface, IPv4 and IPv6, a flow sent from both
// CPUs, ICMP and ICMPv6 echo (iputils and busybox ping), a TCP transfer
// ending with FIN, and a pod deleted right after its last packet. Once the
// traffic has ended and --report-interval + 1 s has passed, the real
// collector's packets and bytes at every observation point — the sender's
// egress, the receiver's ingress, the node-side bridge ports and both local
// stacks — equal what was sent, with no drop and no row besides those. Once
// per attach mode.
func TestTotals(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, mode := range []string{"auto", "tc"} {
		t.Run(mode, func(t *testing.T) { testTotals(t, mode) })
	}
}

const totalsInterval = time.Second

func testTotals(t *testing.T, mode string) {
	wantMode := expectedAttachMode(t, mode)
	g := newGTNode(t)
	a, b, c := g.addPod(t, "a"), g.addPod(t, "b"), g.addPod(t, "c")
	g.addNet(t, a, "net10", 11)
	for _, p := range []*gtPod{a, b, c} {
		if i, j := ifindexIn(t, p.ns, "eth0"), ifindexIn(t, p.ns, "net1"); i != gtEthIfindex || j != gtNet1Ifindex {
			t.Fatalf("pod %s: eth0 has ifindex %d and net1 %d, want %d and %d in every pod", p.name, i, j, gtEthIfindex, gtNet1Ifindex)
		}
		// The TCP transfer crosses eth0 and the bridge; macvlans carry
		// UDP and ICMP only (and cannot change offloads on every kernel).
		noOffloads(t, p.ns, "eth0")
		noOffloads(t, g.node, p.host)
	}

	// Foreign filters that classify, and so end the chain, before the agent
	// starts; in TCX mode, foreign programs that pass the packet on.
	foreignLegacy(t, a.ns, "eth0", "egress", "49153", "u32", "match", "u32", "0", "0", "classid", "1:1")
	foreignLegacy(t, b.ns, "eth0", "ingress", "49152", "u32", "match", "u32", "0", "0", "classid", "1:2")
	foreignMatchall(t, b.ns, "net1", "egress", "49151")
	foreignBPF(t, a.ns, "net1", "ingress", 100)
	if wantMode == "tcx" {
		foreignTCX(t, b.ns, "net1", "ingress")
		foreignTCX(t, a.ns, "eth0", "egress")
	}

	colAddr := freeUDPAddr(t)
	env := newAgentEnv(t, g.dir, colAddr, "--report-format", "v2.0", "--attach-mode", mode)
	env.interval = totalsInterval.String()
	ag := env.start(t)
	col := startCollectorProc(t, colAddr, ag.APIAddr)

	// After the start: a foreign filter and program added the usual way, and
	// an interface added to a running pod.
	foreignLegacy(t, c.ns, "eth0", "egress", "49153", "u32", "match", "u32", "0", "0", "classid", "1:1")
	if wantMode == "tcx" {
		foreignTCX(t, c.ns, "net1", "egress")
	}
	g.addNet(t, b, "net2", 12)
	waitFor(t, "pod b's net2 attached", 10*time.Second, func() bool {
		for _, p := range ag.topology(t).Ports {
			if p.Netns.Name == b.ns.Name && p.Name == "net2" && p.AttachMode == wantMode {
				return true
			}
		}
		return false
	})

	var wants []want
	ap := func(ip netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(ip, port) }
	udp := func(name string, from *gtPod, fromIf string, src netip.Addr, to *gtPod, toIf string, dst netip.Addr,
		dport uint16, n, payload int, gap time.Duration, cpus ...int) {
		t.Helper()
		sink := listenUDP(t, to.ns, ap(dst, dport))
		sendUDPBurst(t, from.ns, ap(src, 40000+dport), ap(dst, dport), n, payload, gap, cpus...)
		waitFor(t, name+": every datagram received", 5*time.Second, func() bool { return sink.received() == n })
		frame := uint64(14 + 20 + 8 + payload)
		if src.Is6() {
			frame += 20
		}
		f := flowID{"udp", src.String(), dst.String(), 40000 + dport, dport}
		wants = append(wants, g.path(from, fromIf, to, toIf, f, uint64(n), uint64(n)*frame)...)
	}

	// UDP bursts shorter than the report interval, on every kind of path.
	udp("eth0 v4", a, "eth0", a.eth4, b, "eth0", b.eth4, 5001, 50, 100, 10*time.Millisecond)
	udp("eth0 v6", a, "eth0", a.eth6, b, "eth0", b.eth6, 5002, 50, 200, 10*time.Millisecond)
	udp("net1 v4", a, "net1", a.nets["net1"], b, "net1", b.nets["net1"], 5003, 50, 100, 10*time.Millisecond)
	udp("net10 to the late net2", a, "net10", a.nets["net10"], b, "net2", b.nets["net2"], 5004, 50, 64, 10*time.Millisecond)
	udp("net1 to another pod's net1", a, "net1", a.nets["net1"], c, "net1", c.nets["net1"], 5006, 40, 64, 10*time.Millisecond)
	// Longer than the interval, sent from both CPUs.
	cpus := []int{0}
	if runtime.NumCPU() >= 2 {
		cpus = []int{0, 1}
	}
	udp("net1 v6 from both CPUs", a, "net1", a.nets6["net1"], c, "net1", c.nets6["net1"], 5005, 300, 120, 10*time.Millisecond, cpus...)

	// ICMP echo with iputils (an ICMP datagram socket) and ICMPv6 echo with
	// busybox (a raw socket): requests one way, replies the other.
	a.ns.Run(t, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
	ping(t, a.ns, []string{"ping", "-c", "5", "-i", "0.2", "-s", "56", "-W", "2", b.eth4.String()})
	wants = append(wants, g.path(a, "eth0", b, "eth0", flowID{"icmp", a.eth4.String(), b.eth4.String(), 8, 0}, 5, 5*98)...)
	wants = append(wants, g.path(b, "eth0", a, "eth0", flowID{"icmp", b.eth4.String(), a.eth4.String(), 0, 0}, 5, 5*98)...)
	ping(t, a.ns, []string{"busybox", "ping", "-c", "5", "-i", "0.2", "-s", "56", "-W", "2", b.nets6["net1"].String()})
	wants = append(wants, g.path(a, "net1", b, "net1", flowID{"icmpv6", a.nets6["net1"].String(), b.nets6["net1"].String(), 128, 0}, 5, 5*118)...)
	wants = append(wants, g.path(b, "net1", a, "net1", flowID{"icmpv6", b.nets6["net1"].String(), a.nets6["net1"].String(), 129, 0}, 5, 5*118)...)

	// A TCP transfer ending with FIN; what crossed a's eth0 each way, as a
	// packet socket there saw it, is the ground truth.
	capA := startCapture(t, a.ns, "eth0")
	tsrc, tdst := ap(a.eth4, 41201), ap(b.eth4, 5201)
	tcpTransfer(t, a.ns, tsrc, b.ns, tdst, 1<<20)
	time.Sleep(50 * time.Millisecond) // the last ACK reaches the socket
	out, back := capA.count(t, tsrc, tdst, 6, true), capA.count(t, tdst, tsrc, 6, false)
	if out.packets == 0 || back.packets == 0 {
		t.Fatalf("the packet socket saw no TCP frames (%+v, %+v)", out, back)
	}
	wants = append(wants, g.path(a, "eth0", b, "eth0", flowID{"tcp", a.eth4.String(), b.eth4.String(), 41201, 5201}, out.packets, out.bytes)...)
	wants = append(wants, g.path(b, "eth0", a, "eth0", flowID{"tcp", b.eth4.String(), a.eth4.String(), 5201, 41201}, back.packets, back.bytes)...)

	// A pod deleted right after its last packet.
	udp("eth0 from the pod deleted next", c, "eth0", c.eth4, b, "eth0", b.eth4, 5007, 30, 80, 5*time.Millisecond)
	g.removePod(t, "c")
	last := time.Now()

	// Under software emulation (hack/vm) everything is several times slower:
	// the bound stretches with NSINT_E2E_TIMEOUT_SCALE there.
	deadline := last.Add(scaled(totalsInterval + time.Second))
	time.Sleep(time.Until(deadline))
	var bad []string
	for try := 0; ; try++ {
		bad = compareTotals(col.rows(t), wants)
		if len(bad) == 0 || try == 5 {
			break
		}
		time.Sleep(50 * time.Millisecond) // reports still in the collector's socket
	}
	if len(bad) > 0 {
		t.Errorf("%d of %d observation points differ from what was sent, %v after the last packet:\n  %s",
			len(bad), len(wants), time.Since(last).Round(time.Millisecond), strings.Join(bad, "\n  "))
	} else {
		t.Logf("all %d observation points of %d flows equal what was sent, %v after the last packet",
			len(wants), countFlows(wants), time.Since(last).Round(time.Millisecond))
	}
	for _, a := range col.summary(t).Agents {
		if a.LostReports != 0 {
			t.Errorf("the collector saw %d reports lost from %s", a.LostReports, a.Source)
		}
	}
	// The agent's own series agree: at every port, every packet of a flow
	// (every packet but the flowless ones: ARP) is in a report naming it;
	// and the collector shows the same from the agent's topology (refreshed
	// every 2 s here). Interfaces keep sending now and then (router
	// solicitations, neighbour probes), whose packets a report carries an
	// interval later: a difference must go within one, a lost packet's stays.
	settled := func(what string, check func() []string) {
		t.Helper()
		var bad []string
		for end := time.Now().Add(scaled(totalsInterval + 3*time.Second)); ; time.Sleep(200 * time.Millisecond) {
			if bad = check(); len(bad) == 0 || time.Now().After(end) {
				break
			}
		}
		if len(bad) > 0 {
			t.Errorf("%s: packets no report carries:\n  %s", what, strings.Join(bad, "\n  "))
		}
	}
	settled("the agent's series", func() []string { return portSeriesGaps(ag.metrics(t)) })
	settled("the collector's view of the agent's counters", func() []string {
		var ports web.PortsResponse
		col.get(t, "/api/v1/ports", &ports)
		var bad []string
		seen := 0
		for _, p := range ports.Ports {
			c := p.Counters
			if c == nil {
				continue
			}
			seen++
			for _, d := range []struct {
				name string
				c    api.DirCounters
			}{{"ingress", c.Ingress}, {"egress", c.Egress}} {
				if d.c.Packets-d.c.Flowless != d.c.Reported {
					bad = append(bad, fmt.Sprintf("%s:%s %s: %d packets, %d flowless, %d reported",
						p.Netns.Name, p.Name, d.name, d.c.Packets, d.c.Flowless, d.c.Reported))
				}
			}
		}
		if seen == 0 {
			bad = append(bad, "no port carries the agent's counters")
		}
		return bad
	})
}

// portSeriesGaps compares, for every port and direction in the agent's
// metrics, nsint_port_packets_total − nsint_port_flowless_packets_total with
// nsint_port_reported_packets_total, and says where they differ.
func portSeriesGaps(metrics string) []string {
	vals := map[string]map[string]float64{} // series labels → metric → value
	for _, line := range strings.Split(metrics, "\n") {
		for _, m := range []string{"nsint_port_packets_total", "nsint_port_flowless_packets_total", "nsint_port_reported_packets_total"} {
			if rest, ok := strings.CutPrefix(line, m+"{"); ok {
				i := strings.LastIndexByte(rest, ' ')
				var v float64
				fmt.Sscan(rest[i+1:], &v)
				if vals[rest[:i]] == nil {
					vals[rest[:i]] = map[string]float64{}
				}
				vals[rest[:i]][m] = v
			}
		}
	}
	var bad []string
	checked := 0
	for labels, v := range vals {
		if strings.Contains(labels, `interface=":stack"`) {
			continue // no hook: reported only
		}
		checked++
		if got, want := v["nsint_port_reported_packets_total"], v["nsint_port_packets_total"]-v["nsint_port_flowless_packets_total"]; got != want {
			bad = append(bad, fmt.Sprintf("{%s: %v packets, %v flowless, %v in reports naming the port, want %v",
				labels, v["nsint_port_packets_total"], v["nsint_port_flowless_packets_total"], got, want))
		}
	}
	if checked == 0 {
		bad = append(bad, "no per-port series in the agent's metrics")
	}
	sort.Strings(bad)
	return bad
}

// path is what one flow from one pod interface to another must show: the
// sender's interface egress and its stack's ingress, the receiver's
// interface ingress and its stack's egress, and, when it crosses the
// bridge, both node-side bridge ports, or between macvlans, their parent's
// ingress.
func (g *gtNode) path(from *gtPod, fromIf string, to *gtPod, toIf string, f flowID, packets, bytes uint64) []want {
	pts := []point{
		{from.ns.Name, fromIf, "egress"}, {from.ns.Name, api.LocalStackName, "ingress"},
		{to.ns.Name, toIf, "ingress"}, {to.ns.Name, api.LocalStackName, "egress"},
	}
	if fromIf == "eth0" {
		pts = append(pts, point{g.node.Name, from.host, "ingress"}, point{g.node.Name, to.host, "egress"})
	} else {
		// A macvlan hands a frame for a sibling to its parent's receive
		// path first (for the parent's taps): the parent's ingress hook
		// sees it go by, to no egress port.
		pts = append(pts, point{g.node.Name, macvlanParent(fromIf), "ingress"})
	}
	out := make([]want, 0, len(pts))
	for _, p := range pts {
		out = append(out, want{flow: f, at: p, packets: packets, bytes: bytes})
	}
	return out
}

func macvlanParent(dev string) string {
	if dev == "net1" {
		return "mvp"
	}
	return "mvp2"
}

func (g *gtNode) removePod(t *testing.T, name string) {
	t.Helper()
	p := g.pods[name]
	g.node.Run(t, "ip", "link", "del", p.host)
	if err := p.ns.Remove(); err != nil {
		t.Fatalf("remove pod %s: %v", name, err)
	}
	p.removed = true
}

func countFlows(ws []want) int {
	seen := map[flowID]bool{}
	for _, w := range ws {
		seen[w.flow] = true
	}
	return len(seen)
}

// ping runs a ping command in ns and fails unless every echo was answered.
func ping(t *testing.T, ns *netnstest.NS, argv []string) {
	t.Helper()
	out := ns.Run(t, argv...)
	if !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("%s: not every echo answered:\n%s", strings.Join(argv, " "), out)
	}
}

// foreignMatchall adds a `matchall action ok` filter like foreignLegacy,
// where the kernel has matchall and gact (this machine's kernel may not).
func foreignMatchall(t *testing.T, ns *netnstest.NS, dev, dir, prio string) {
	t.Helper()
	ns.Command("tc", "qdisc", "add", "dev", dev, "clsact").Run()
	out, err := ns.Command("tc", "filter", "add", "dev", dev, dir, "prio", prio, "protocol", "all", "matchall", "action", "ok").CombinedOutput()
	if err != nil {
		t.Logf("no matchall filter on %s %s: %v: %s", dev, dir, err, strings.TrimSpace(string(out)))
	}
}

// foreignLegacy adds, as another tool would, a tc filter on dev's hook dir
// in ns at priority prio: kind and its arguments follow.
func foreignLegacy(t *testing.T, ns *netnstest.NS, dev, dir, prio string, kindArgs ...string) {
	t.Helper()
	ns.Command("tc", "qdisc", "add", "dev", dev, "clsact").Run() // one already there is fine
	ns.Run(t, append([]string{"tc", "filter", "add", "dev", dev, dir, "prio", prio, "protocol", "all"}, kindArgs...)...)
}
