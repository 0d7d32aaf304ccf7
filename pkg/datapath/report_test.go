package datapath

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

func udpFrame(src, dst string, sport, dport uint16, payload int) []byte {
	return concat(ethHdr(etherIPv4), ipv4Hdr(protoUDP, netip.MustParseAddr(src), netip.MustParseAddr(dst), nil, 0, false),
		udpHdr(sport, dport), make([]byte, payload))
}

// TCP flags of tcpFrame.
const tcpFIN, tcpSYN, tcpRST, tcpACK = 0x01, 0x02, 0x04, 0x10

// tcpFrame is a TCP segment with the given flags and no payload.
func tcpFrame(src, dst string, sport, dport uint16, flags byte) []byte {
	f := concat(ethHdr(etherIPv4), ipv4Hdr(protoTCP, netip.MustParseAddr(src), netip.MustParseAddr(dst), nil, 0, false),
		tcpHdr(sport, dport))
	f[14+20+13] = flags
	return f
}

// TestReportDecision: the first packet reports, repeats inside the interval
// do not, the first packet after it reports with everything counted since.
// The interval is real time (test run has no fake clock); the sleeps are
// behaviour, not timing assertions.
func TestReportDecision(t *testing.T) {
	const interval = 300 * time.Millisecond
	// Both flow-table designs, and the dispatcher with an indirect tail call.
	for _, c := range []struct {
		name             string
		shared, indirect bool
	}{{"percpu", false, false}, {"shared", true, false}, {"shared-indirect-tailcall", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			requireFlowTable(t, c.shared)
			h := newHarness(t, Config{ReportInterval: interval, perCPUFlows: !c.shared, IndirectTailCall: c.indirect})
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				frame := udpFrame("198.18.0.1", "198.18.0.2", 1000+uint16(dir), 2000, 100)
				n := uint64(len(frame))

				h.run(hPortA, dir, frame, nil)
				ev := h.next()
				if ev.Reason != ReasonNew || ev.Packets != 1 || ev.Bytes != n {
					t.Fatalf("%s first packet: reason %s packets %d bytes %d, want new 1 %d", dir, ev.Reason, ev.Packets, ev.Bytes, n)
				}

				h.runN(hPortA, dir, frame, nil, 5)
				h.none(dir.String() + " repeats inside the interval")
				// The repeats are counted in the last-flow slot only.
				if c := h.dirCounters(hPortA, dir); c.Packets != 1+5 || c.Bytes != 6*n {
					t.Fatalf("%s port counters after the repeats: %d packets %d bytes, want %d %d", dir, c.Packets, c.Bytes, 1+5, 6*n)
				}

				// GSO: one skb of 4 segments counts 4 packets, and the
				// bytes of 4 frames on the wire: 3 more copies of its
				// Ethernet, IP and UDP headers.
				h.run(hPortA, dir, frame, &skbCtx{GsoSegs: 4})
				const gsoExtra = 3 * (14 + 20 + 8)
				h.none(dir.String() + " GSO packet inside the interval")

				time.Sleep(interval + 50*time.Millisecond)
				h.run(hPortA, dir, frame, nil)
				ev = h.next()
				if ev.Reason != ReasonRefresh || ev.Packets != 5+4+1 || ev.Bytes != 7*n+gsoExtra {
					t.Fatalf("%s after the interval: reason %s packets %d bytes %d, want refresh %d %d",
						dir, ev.Reason, ev.Packets, ev.Bytes, 5+4+1, 7*n+gsoExtra)
				}
				h.none(dir.String() + " after the refresh")
			}
			c, err := h.d.PortCounters(hPortA)
			if err != nil {
				t.Fatal(err)
			}
			// 1 + 5 + 4 (GSO) + 1 per direction
			for dir, dc := range map[netif.Direction]DirCounters{netif.Ingress: c.Ingress, netif.Egress: c.Egress} {
				if dc.Packets != 11 {
					t.Errorf("port counters %s: %d packets, want 11", dir, dc.Packets)
				}
			}
		})
	}
}

// TestPortCountersAfterDelete: a deleted port's counters read zero though
// an earlier reading was higher (PortCountersOf holds each figure to at
// least its last reading, for the port's life only), and count from zero
// when the port is set again.
func TestPortCountersAfterDelete(t *testing.T) {
	h := newHarness(t, Config{ReportInterval: time.Hour})
	a := udpFrame("198.18.0.1", "198.18.0.2", 7000, 8000, 100)
	b := udpFrame("198.18.0.1", "198.18.0.2", 7001, 8000, 100)
	h.runN(hPortA, netif.Ingress, a, nil, 3)
	h.run(hPortA, netif.Ingress, b, nil) // empties the slot: nothing held for the port
	if c := h.dirCounters(hPortA, netif.Ingress); c.Packets != 4 {
		t.Fatalf("before delete: %d packets, want 4", c.Packets)
	}
	p := PortInfo{ID: netif.ID{Netns: netif.Netns(h.ns.Inode), Ifindex: 100}, LocalPort: hLocalPort}
	must(t, h.d.DeletePort(hPortA, p))
	if c := h.dirCounters(hPortA, netif.Ingress); c.Packets != 0 || c.Bytes != 0 {
		t.Fatalf("after delete: %d packets %d bytes, want 0", c.Packets, c.Bytes)
	}
	h.setPort(hPortA, p)
	h.run(hPortA, netif.Ingress, a, nil)
	if c := h.dirCounters(hPortA, netif.Ingress); c.Packets != 1 {
		t.Fatalf("set again, one packet: %d packets, want 1", c.Packets)
	}
}

// TestTransit: a flow forwarded between two ports of one namespace is
// reported once, by the egress hook, naming both ports and the hop latency;
// a change of the ingress port of an egress flow reports at once.
func TestTransit(t *testing.T) {
	h := newHarness(t, Config{ReportInterval: time.Hour})
	// Make the namespace a router with a route to the destination.
	pfx := h.ns.Name[:8]
	netnsVethPair(t, h, pfx)
	frame := udpFrame("198.18.9.1", "198.18.10.2", 3000, 4000, 64)

	// netif.Egress before any ingress sighting, as if from the local stack.
	h.run(hPortB, netif.Egress, frame, nil)
	ev := h.next()
	if ev.InPort != hLocalPort || ev.OutPort != hPortB || ev.HasHopLatency {
		t.Fatalf("local egress: in %d out %d latency %v, want %d→%d and none", ev.InPort, ev.OutPort, ev.HasHopLatency, hLocalPort, hPortB)
	}

	// netif.Ingress on A is forwarded: no report from ingress.
	h.run(hPortA, netif.Ingress, frame, nil)
	h.none("forwarded ingress")

	// netif.Egress on B of a packet that came in from a device: A→B, at once.
	h.run(hPortB, netif.Egress, frame, &skbCtx{IngressIfindex: 100})
	ev = h.next()
	if ev.Reason != ReasonPorts || ev.InPort != hPortA || ev.OutPort != hPortB || ev.Port != hPortB || ev.Direction != netif.Egress {
		t.Fatalf("transit egress: %s port %d %s in %d out %d, want ports at %d egress %d→%d", ev.Reason, ev.Port, ev.Direction, ev.InPort, ev.OutPort, hPortB, hPortA, hPortB)
	}
	if !ev.HasHopLatency || ev.HopLatency <= 0 || !ev.OutTime.After(ev.InTime) || ev.OutTime.Sub(ev.InTime) != ev.HopLatency {
		t.Fatalf("transit egress: hop latency %v (present %v), in %v out %v", ev.HopLatency, ev.HasHopLatency, ev.InTime, ev.OutTime)
	}
	if ev.Packets != 1 {
		t.Fatalf("transit egress: %d packets since the previous report, want 1", ev.Packets)
	}
	if d := time.Since(ev.OutTime); d < 0 || d > time.Minute {
		t.Fatalf("egress time %v is %v away from now: boot offset wrong", ev.OutTime, d)
	}
}

// netnsVethPair gives the harness namespace forwarding and a connected
// route towards 198.18.10.0/24, so the FIB says "forwarded" for it.
func netnsVethPair(t *testing.T, h *harness, pfx string) {
	t.Helper()
	h.ns.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	h.ns.Run(t, "ip", "link", "add", pfx+"r0", "type", "veth", "peer", "name", pfx+"r1")
	h.ns.Run(t, "ip", "link", "set", pfx+"r0", "up")
	h.ns.Run(t, "ip", "link", "set", pfx+"r1", "up")
	h.ns.Run(t, "ip", "addr", "add", "198.18.10.1/24", "dev", pfx+"r0")
}

// TestSharedTableRefreshRace runs one flow on two CPUs at once with a
// refresh due every few microseconds, so both CPUs keep finding the same
// refresh due: only the one that claims it may take the flow's counts.
// Every packet is then reported exactly once, by one report or another.
func TestSharedTableRefreshRace(t *testing.T) {
	requireFlowTable(t, true)
	if runtime.NumCPU() < 2 {
		t.Skip("skipping: needs two CPUs")
	}
	const interval = 20 * time.Microsecond
	// The precise clock: a refresh due every 20 µs, not once a tick.
	h := newHarness(t, Config{ReportInterval: interval, ReportBufferBytes: 16 << 20, preciseClock: true})
	// A test run a signal interrupts is run again whole: count the runs.
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		t.Fatal(err)
	}
	defer stats.Close()
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		frame := udpFrame("198.18.0.1", "198.18.0.2", 3000+uint16(dir), 4000, 64)
		prog := h.dispatcher(hPortA, dir)
		const perCPU = 300000
		errs := make(chan error, 2)
		for cpu := range 2 {
			go func() { errs <- runOnCPU(h.ns, cpu, prog, frame, perCPU) }()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
		}
		// What each CPU counted in its last-flow slot reaches the flow's
		// entry with that CPU's next packet once the refresh is due; one
		// more packet after the interval then carries what is left.
		time.Sleep(2 * interval)
		for cpu := range 2 {
			if err := runOnCPU(h.ns, cpu, prog, frame, 1); err != nil {
				t.Fatalf("%s: %v", dir, err)
			}
		}
		time.Sleep(2 * interval)
		h.run(hPortA, dir, frame, nil)

		st, err := prog.Stats()
		if err != nil {
			t.Fatal(err)
		}
		sent := st.RunCount
		var reported uint64
		reports := 0
		for {
			ev, ok := h.poll()
			if !ok {
				break
			}
			if ev.Packets > sent {
				t.Fatalf("%s: a report carries %d packets of %d sent (counts taken twice)", dir, ev.Packets, sent)
			}
			reported += ev.Packets
			reports++
		}
		if reported != sent {
			t.Errorf("%s: %d reports carry %d packets, want %d", dir, reports, reported, sent)
		} else {
			t.Logf("%s: %d reports carry all %d packets", dir, reports, sent)
		}
	}
}

// TestFlowCacheInterleaved: two flows taking turns on one CPU and hook
// direction keep evicting each other from the last-flow slot, a run of one
// flow stays in it; every packet is in its flow's next refresh either way.
func TestFlowCacheInterleaved(t *testing.T) {
	const interval = 300 * time.Millisecond
	h := newHarness(t, Config{ReportInterval: interval})
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		a := udpFrame("198.18.0.1", "198.18.0.2", 5000+uint16(dir), 6000, 100)
		b := udpFrame("198.18.0.1", "198.18.0.2", 5100+uint16(dir), 6000, 200)
		h.run(hPortA, dir, a, nil)
		h.next()
		h.run(hPortA, dir, b, nil)
		h.next()
		const turns, run = 50, 20
		for range turns {
			h.run(hPortA, dir, a, nil)
			h.run(hPortA, dir, b, nil)
		}
		h.runN(hPortA, dir, a, nil, run)
		h.none(dir.String() + " inside the interval")

		time.Sleep(interval + 50*time.Millisecond)
		for _, c := range []struct {
			frame []byte
			want  uint64
		}{{a, turns + run + 1}, {b, turns + 1}} {
			h.run(hPortA, dir, c.frame, nil)
			ev := h.next()
			if ev.Reason != ReasonRefresh || ev.Packets != c.want || ev.Bytes != c.want*uint64(len(c.frame)) {
				t.Errorf("%s flow of %d-byte frames: %s with %d packets, %d bytes; want refresh with %d, %d",
					dir, len(c.frame), ev.Reason, ev.Packets, ev.Bytes, c.want, c.want*uint64(len(c.frame)))
			}
		}
	}
}
