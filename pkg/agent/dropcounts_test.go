package agent

import (
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// Every drop report counts its drops once, by observation port, direction
// and the kernel's reason name; flow reports count none; a value the
// kernel's enum lacks and a kernel without reasons are "unknown"; a
// released port starts again.
func TestReportedDropsByReason(t *testing.T) {
	a := &Agent{
		cfg:      &config.Agent{},
		format:   intreport.V20,
		drops:    dropreason.NewResolver(map[uint32]string{2: "SKB_DROP_REASON_NO_SOCKET", 7: "SKB_DROP_REASON_NETFILTER_DROP"}),
		reported: newReportedPackets(16),
		metrics:  &metrics{reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "r"}, []string{"type"})},
	}
	var rep intreport.Report
	inner := make([]byte, 0, 256)
	drop := func(port uint16, dir netif.Direction, reason uint32, known bool, n uint64) {
		ev := datapath.Event{Type: datapath.DropEvent, Port: port, Direction: dir, InPort: port, Packets: n,
			DropReason: reason, DropReasonKnown: known, Proto: 17,
			Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2")}
		a.export(&ev, &rep, inner)
	}
	drop(3, netif.Ingress, 2, true, 2)
	drop(3, netif.Ingress, 2, true, 3) // a folded count: 3 drops in one report
	drop(3, netif.Ingress, 7, true, 1)
	drop(3, netif.Egress, 99, true, 1) // not in this kernel's enum
	drop(4, netif.Ingress, 0, false, 4)
	flow := datapath.Event{Type: datapath.FlowEvent, Port: 3, InPort: 3, Packets: 10, Data: []byte{0}}
	a.export(&flow, &rep, inner)

	got := a.reported.dropsByPort()
	want := map[uint16][]reasonCount{
		3: {{netif.Ingress, "NETFILTER_DROP", 1}, {netif.Ingress, "NO_SOCKET", 5}, {netif.Egress, "unknown", 1}},
		4: {{netif.Ingress, "unknown", 4}},
	}
	if len(got) != len(want) {
		t.Fatalf("drops by port %v, want %v", got, want)
	}
	for port, w := range want {
		g := got[port]
		if len(g) != len(w) {
			t.Fatalf("port %d: %v, want %v", port, g, w)
		}
		for i := range w {
			if g[i] != w[i] {
				t.Errorf("port %d [%d]: %+v, want %+v", port, i, g[i], w[i])
			}
		}
	}
	a.reported.reset(3)
	if got := a.reported.dropsByPort(); len(got[3]) != 0 || len(got[4]) != 1 {
		t.Errorf("after releasing port 3: %v", got)
	}
}

// Datagrams to a closed UDP port of a namespace the test created: the
// agent's per-reason series of the receiving interface counts exactly the
// datagrams sent, with the kernel's reason, and for every port and
// direction the reasons add up to the kernel's own drop counter.
func TestReportedDropsMatchPortDrops(t *testing.T) {
	dir := netnstest.Dir(t)
	prefix := netnstest.Prefix(t)
	a := netnstest.New(t, dir, prefix+"a")
	b := netnstest.New(t, dir, prefix+"b")
	ta := startAgent(t, dir, seams{})
	netnstest.Veth(t, a, "eth0", b, "eth0")
	netnstest.AddAddr(t, a, "eth0", "198.18.231.1/30")
	netnstest.AddAddr(t, b, "eth0", "198.18.231.2/30")
	ta.waitReady(t)
	topo := ta.waitTopology(t, "both ends of the veth are attached", func(topo api.Topology) bool {
		return attached(topo, a.Inode, "eth0") && attached(topo, b.Inode, "eth0")
	})
	ethB := strconv.Itoa(int(portNamed(topo.Ports, b.Inode, "eth0").ID))

	const sent = 5
	if err := a.Do(func() error {
		// Unconnected: the port unreachable answers must not fail the writes.
		c, err := net.ListenPacket("udp4", "198.18.231.1:0")
		if err != nil {
			return err
		}
		defer c.Close()
		dst := &net.UDPAddr{IP: net.IPv4(198, 18, 231, 2), Port: 7999}
		for range sent {
			if _, err := c.WriteTo([]byte("nsint"), dst); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("send to the closed port: %v", err)
	}
	reason := dropreason.UnknownName
	if ta.dp.DropReasonSupported() {
		reason = "NO_SOCKET"
	}
	var last string
	waitUntil(t, "the closed-port drops are counted by reason", func() bool {
		byReason, byPort := gatherDrops(t, ta.metrics.reg)
		last = ""
		if got := byReason[[3]string{ethB, "ingress", reason}]; got != sent {
			last = "b eth0 ingress " + reason + ": " + strconv.FormatFloat(got, 'f', -1, 64)
			return false
		}
		sums := map[[2]string]float64{}
		for k, v := range byReason {
			sums[[2]string{k[0], k[1]}] += v
		}
		for k, v := range byPort {
			if sums[k] != v {
				last = "port " + k[0] + " " + k[1] + ": by reason " + strconv.FormatFloat(sums[k], 'f', -1, 64) +
					", nsint_port_drops_total " + strconv.FormatFloat(v, 'f', -1, 64)
				return false
			}
		}
		return true
	})
	if last != "" {
		t.Error(last)
	}
}

// gatherDrops returns nsint_port_reported_drops_total by (port, direction,
// reason) and nsint_port_drops_total by (port, direction).
func gatherDrops(t *testing.T, reg *prometheus.Registry) (map[[3]string]float64, map[[2]string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byReason, byPort := map[[3]string]float64{}, map[[2]string]float64{}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "nsint_port_reported_drops_total":
				byReason[[3]string{label(m, "port"), label(m, "direction"), label(m, "reason")}] += m.GetCounter().GetValue()
			case "nsint_port_drops_total":
				byPort[[2]string{label(m, "port"), label(m, "direction")}] += m.GetCounter().GetValue()
			}
		}
	}
	return byReason, byPort
}
