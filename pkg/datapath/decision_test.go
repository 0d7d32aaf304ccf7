package datapath

import (
	"net"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/netif"
)

// TestBridgePort: on a bridge port, frames to the bridge's MAC (or to a
// group address) end in the local stack and report at ingress; others are
// bridged on and leave the report to the egress port.
func TestBridgePort(t *testing.T) {
	h := newHarness(t, Config{ReportInterval: time.Hour})
	bridgeMAC := net.HardwareAddr{0x02, 0xbb, 0, 0, 0, 1}
	h.setPort(hPortA, PortInfo{ID: netif.ID{Netns: netif.Netns(h.ns.Inode), Ifindex: 100}, LocalPort: hLocalPort, BridgePort: true, BridgeMAC: bridgeMAC})
	toMAC := func(mac []byte, dport uint16) []byte {
		f := udpFrame("198.18.0.1", "198.18.0.2", 1, dport, 0)
		copy(f[0:6], mac)
		return f
	}
	h.run(hPortA, netif.Ingress, toMAC(bridgeMAC, 1), nil)
	if ev := h.next(); ev.InPort != hPortA || ev.OutPort != hLocalPort {
		t.Errorf("to the bridge MAC: %d→%d, want %d→%d", ev.InPort, ev.OutPort, hPortA, hLocalPort)
	}
	h.run(hPortA, netif.Ingress, toMAC([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 2), nil)
	if ev := h.next(); ev.OutPort != hLocalPort {
		t.Errorf("broadcast: out %d, want local %d", ev.OutPort, hLocalPort)
	}
	h.run(hPortA, netif.Ingress, toMAC([]byte{0x02, 0xcc, 0, 0, 0, 9}, 3), nil)
	h.none("bridged frame at ingress")
	h.run(hPortB, netif.Egress, toMAC([]byte{0x02, 0xcc, 0, 0, 0, 9}, 3), &skbCtx{IngressIfindex: 100})
	if ev := h.next(); ev.InPort != hPortA || ev.OutPort != hPortB || !ev.HasHopLatency {
		t.Errorf("bridged frame at egress: %d→%d latency %v, want %d→%d with latency", ev.InPort, ev.OutPort, ev.HasHopLatency, hPortA, hPortB)
	}
}

// TestPodNamespaceIsLocal: with forwarding off (a pod), ingress traffic is
// local even to addresses the namespace does not own.
func TestPodNamespaceIsLocal(t *testing.T) {
	h := newHarness(t, Config{})
	h.run(hPortA, netif.Ingress, udpFrame("198.18.0.1", "198.18.99.2", 1, 2, 0), nil)
	if ev := h.next(); ev.OutPort != hLocalPort {
		t.Errorf("out port %d, want the local-stack port %d", ev.OutPort, hLocalPort)
	}
}

// TestUnknownIngressPort: a packet forwarded from an interface nobody
// observes names ingress port 0 (unknown), not the local stack.
func TestUnknownIngressPort(t *testing.T) {
	h := newHarness(t, Config{})
	h.run(hPortB, netif.Egress, udpFrame("198.18.0.1", "198.18.0.2", 1, 2, 0), &skbCtx{IngressIfindex: 77})
	if ev := h.next(); ev.InPort != 0 || ev.OutPort != hPortB || ev.HasHopLatency {
		t.Errorf("%d→%d latency %v, want 0→%d without latency", ev.InPort, ev.OutPort, ev.HasHopLatency, hPortB)
	}
}

// TestDecodeNoAlloc: Reader.Read decodes into a caller-owned Event without
// allocating.
func TestDecodeNoAlloc(t *testing.T) {
	h := newHarness(t, Config{ReportBufferBytes: 4 << 20})
	const n = 200
	for i := range n + 10 {
		h.run(hPortA, netif.Ingress, udpFrame("198.18.0.1", "198.18.0.2", uint16(i), 2, 0), nil)
	}
	var ev Event
	must(t, h.r.Read(&ev)) // first read sizes the buffer
	allocs := testing.AllocsPerRun(n, func() {
		if err := h.r.Read(&ev); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("Read allocates %.1f times per event", allocs)
	}
	if st, err := h.d.Stats(); err != nil || st.RingFull != 0 {
		t.Errorf("reports the ring had no room for: %d (%v), want 0", st.RingFull, err)
	}
}
