package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/internal/netnstest"
)

// Ports of the traffic: servers listen on udpPort and tcpPort in every pod
// and on the external host; nothing listens on closedPort, so UDP sent there
// is dropped by the receiving kernel (no socket).
const (
	udpPort    = 5001
	tcpPort    = 5002
	closedPort = 5009
)

// traffic is the demo's load: servers, long-running pings and a ticker that
// sends UDP and TCP once a second.
type traffic struct {
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	closers []io.Closer
}

// flow is one kind of traffic a pod sends every second.
type flow struct {
	proto string // "udp" or "tcp"
	dst   netip.AddrPort
}

// startTraffic starts servers in every pod and on the external host, a ping
// per path (pod eth0 and net1, IPv4 and IPv6) and a sender per pod.
func startTraffic(ctx context.Context, node *fakenode.Node, pods []*fakenode.Pod, ps *processes) (*traffic, error) {
	ctx, cancel := context.WithCancel(ctx)
	t := &traffic{cancel: cancel}
	servers := []*netnstest.NS{node.Ext}
	for _, p := range pods {
		servers = append(servers, p.NS)
	}
	for _, ns := range servers {
		if err := t.serve(ns); err != nil {
			t.stop()
			return nil, err
		}
	}
	for i, p := range pods {
		peer := pods[(i+1)%len(pods)]
		// Let ping use ICMP datagram sockets: with a raw socket, each pod's
		// ping would get a clone of every ICMP packet the pod receives, and
		// the kernel's drops of those clones (socket filter, no socket)
		// would show as drops of the pings.
		if _, err := fakenode.Exec(p.NS.Path, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"); err != nil {
			t.stop()
			return nil, err
		}
		// eth0: to the peer pod over the bridge; net1: to the peer's net1
		// and to the external host on the secondary network.
		for _, dst := range []netip.Addr{peer.EthIP, peer.EthIP6, peer.Net1IP, fakenode.ExtNet1IP6} {
			if _, err := ps.start("ping "+dst.String(), false,
				"nsenter", "--net="+p.NS.Path, "--", "ping", "-q", "-i", "1", "-W", "1", dst.String()); err != nil {
				t.stop()
				return nil, err
			}
		}
		flows := []flow{
			{"udp", netip.AddrPortFrom(peer.Net1IP, udpPort)},         // net1 to another pod
			{"udp", netip.AddrPortFrom(fakenode.ExtNet1IP, udpPort)},  // net1 to the external host
			{"udp", netip.AddrPortFrom(fakenode.ExtNet1IP6, udpPort)}, // the same over IPv6
			{"tcp", netip.AddrPortFrom(peer.Net1IP6, tcpPort)},        // net1 to another pod, IPv6
			{"tcp", netip.AddrPortFrom(fakenode.ExtNet1IP, tcpPort)},  // net1 to the external host
			{"tcp", netip.AddrPortFrom(fakenode.ExtFarIP, tcpPort)},   // eth0, routed through the node
			{"tcp", netip.AddrPortFrom(fakenode.ExtFarIP6, tcpPort)},  // the same over IPv6
			{"udp", netip.AddrPortFrom(peer.EthIP, closedPort)},       // dropped in the peer (eth0)
			{"udp", netip.AddrPortFrom(peer.Net1IP, closedPort)},      // dropped in the peer (net1)
		}
		t.wg.Go(func() { t.send(ctx, p.NS, flows) })
	}
	return t, nil
}

// stop ends the senders and closes every socket, so that no socket keeps a
// demo namespace alive after its file is removed.
func (t *traffic) stop() {
	t.cancel()
	t.wg.Wait()
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.closers {
		c.Close()
	}
	t.closers = nil
}

func (t *traffic) track(c io.Closer) {
	t.mu.Lock()
	t.closers = append(t.closers, c)
	t.mu.Unlock()
}

// serve opens a UDP and a TCP server in ns (dual-stack). A socket belongs to
// the namespace it was created in, whichever thread later uses it.
func (t *traffic) serve(ns *netnstest.NS) error {
	var udp net.PacketConn
	var tcp net.Listener
	err := ns.Do(func() (err error) {
		if udp, err = net.ListenPacket("udp", ":"+strconv.Itoa(udpPort)); err != nil {
			return err
		}
		tcp, err = net.Listen("tcp", ":"+strconv.Itoa(tcpPort))
		return err
	})
	if udp != nil {
		t.track(udp)
	}
	if tcp != nil {
		t.track(tcp)
	}
	if err != nil {
		return fmt.Errorf("servers in %s: %w", ns.Name, err)
	}
	go drainUDP(udp)
	go func() {
		for {
			c, err := tcp.Accept()
			if err != nil {
				return // closed by stop
			}
			t.track(c)
			go io.Copy(io.Discard, c)
		}
	}()
	return nil
}

func drainUDP(c net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
	}
}

// send writes a small message on every flow once a second. TCP connections
// are kept open (one flow each, counters growing) and re-dialled if they
// break; UDP goes out of one unconnected socket, so that the ICMP errors of
// the dropped flows do not fail later sends.
func (t *traffic) send(ctx context.Context, ns *netnstest.NS, flows []flow) {
	var udp net.PacketConn
	if err := ns.Do(func() (err error) { udp, err = net.ListenPacket("udp", ":0"); return err }); err != nil {
		return
	}
	t.track(udp)
	conns := make([]net.Conn, len(flows))
	msg := []byte("nsint demo\n")
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		for i, f := range flows {
			if f.proto == "udp" {
				udp.WriteTo(msg, net.UDPAddrFromAddrPort(f.dst))
				continue
			}
			if conns[i] == nil {
				conns[i] = dialIn(ns, f.dst)
				if conns[i] != nil {
					t.track(conns[i])
				}
			}
			if conns[i] != nil {
				if _, err := conns[i].Write(msg); err != nil {
					conns[i].Close()
					conns[i] = nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dialIn connects over TCP from inside ns; nil when it cannot (yet).
func dialIn(ns *netnstest.NS, dst netip.AddrPort) net.Conn {
	var c net.Conn
	ns.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", dst.String(), 500*time.Millisecond)
		return err
	})
	return c
}
