package collector

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/exporter/replica"
	"github.com/nsint/nsint/pkg/intreport"
)

// staticName resolves any name to fixed addresses: the A and AAAA records of
// a headless Service with two ready replicas.
type staticName []netip.Addr

func (s staticName) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return s, nil
}

// startReplica serves a collector whose reports arrive on conn.
func startReplica(t *testing.T, cfg Config, conn *net.UDPConn) (*Collector, string) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, []*net.UDPConn{conn}, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return c, "http://" + ln.Addr().String()
}

// TestShardedReplicas runs two collector replicas (127.0.0.1 and ::1, one
// port, as behind one headless Service) and eight agents' exporters that
// choose among them by node name: each agent's reports land at exactly one
// replica, the one replica.Pick names; the replicas' totals add up to what
// was sent; and each replica's /api/v1/flows lists the agents it serves.
func TestShardedReplicas(t *testing.T) {
	var conn4, conn6 *net.UDPConn
	for range 20 {
		c4, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		port := c4.LocalAddr().(*net.UDPAddr).Port
		if c6, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port}); err == nil {
			conn4, conn6 = c4, c6
			break
		}
		c4.Close()
	}
	if conn4 == nil {
		t.Fatal("no port free on both 127.0.0.1 and ::1")
	}
	port := uint16(conn4.LocalAddr().(*net.UDPAddr).Port)
	members := []netip.AddrPort{
		netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port),
		netip.AddrPortFrom(netip.MustParseAddr("::1"), port),
	}
	agent := newFakeAgent(t, twoPodTopology(nodeA))
	agent.serveV6(t) // the agents of the ::1 replica send from ::1
	cfg := testConfig(agent.port())
	replicas := map[netip.AddrPort]*Collector{}
	bases := map[netip.AddrPort]string{}
	for i, conn := range []*net.UDPConn{conn4, conn6} {
		replicas[members[i]], bases[members[i]] = startReplica(t, cfg, conn)
	}

	const agents, perAgent, chunk = 8, 300, 50
	name := staticName{members[1].Addr(), members[0].Addr()}
	want := map[uint32]netip.AddrPort{} // switch ID → the replica its agent must use
	for i := range agents {
		node := fmt.Sprintf("worker-%d", i)
		sw := uint32(0xC6120000 + i)
		want[sw], _ = replica.Pick(node, members)
		e, err := exporter.New(exporter.Config{Replicas: fmt.Sprintf("collector.nsint.svc:%d", port), ReplicaKey: node,
			Resolver: name, Format: intreport.V20})
		if err != nil {
			t.Fatalf("exporter of %s: %v", node, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()
		for seq := range perAgent {
			r := intreport.Report{Kind: intreport.Flow, SwitchID: sw, IngressPort: 5, EgressPort: 6,
				Packets: uint64(seq + 1), Bytes: 100, Inner: frame}
			for !e.Enqueue(&r) {
				time.Sleep(time.Millisecond) // the queue is full: let the sender catch up
			}
			if (seq+1)%chunk == 0 {
				// In steps that the receive buffer holds even when rmem_max
				// caps it and the machine is busy: this test counts, it
				// does not flood.
				sent := uint64(i*perAgent + seq + 1)
				eventually(t, fmt.Sprintf("%d reports at the replicas", sent), func() bool { return received(replicas) == sent })
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run of %s: %v", node, err)
		}
		if st := e.Stats().Collectors[0]; st.Sent != perAgent || st.Address != want[sw].String() {
			t.Errorf("%s: %+v, want %d sent to %s", node, st, perAgent, want[sw])
		}
		e.Close()
	}

	if n := received(replicas); n != agents*perAgent {
		t.Fatalf("%d reports at the replicas, want %d", n, agents*perAgent)
	}
	served := map[netip.AddrPort]int{}
	for m, c := range replicas {
		var flows web.FlowsResponse
		getJSON(t, bases[m]+"/api/v1/flows", &flows)
		if len(flows.Agents) == 0 {
			t.Errorf("replica %s serves no agent: the test's node names do not cover both", m)
		}
		var total uint64
		for _, a := range flows.Agents {
			if want[a.SwitchID] != m {
				t.Errorf("replica %s got reports of switch %#x, which belongs to %s", m, a.SwitchID, want[a.SwitchID])
			}
			if a.Reports != perAgent || a.Source != m.Addr().String() {
				t.Errorf("replica %s: agent %+v, want %d reports from %s", m, a, perAgent, m.Addr())
			}
			total += a.Reports
			served[m]++
		}
		if s := c.Stats(); s.Reports != total || s.LostReports != 0 || s.SocketDrops != 0 {
			t.Errorf("replica %s: %d reports, %d lost, %d dropped by the kernel; want its agents' %d and none lost",
				m, s.Reports, s.LostReports, s.SocketDrops, total)
		}
	}
	if served[members[0]]+served[members[1]] != agents {
		t.Errorf("replicas serve %v agents, want %d in all, each once", served, agents)
	}
}

// received is the reports all replicas received.
func received(replicas map[netip.AddrPort]*Collector) uint64 {
	var n uint64
	for _, c := range replicas {
		n += c.Stats().Reports
	}
	return n
}
