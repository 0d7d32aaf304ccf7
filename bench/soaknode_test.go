package bench

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
)

// soakNode is a node of pods: each pod namespace (in the watched directory)
// has eth0 and net1, veth peers of e<i> and n<i> in a hub namespace (in a
// directory the agent does not watch). Pod i's eth0 is 198.18.0.0+4i+2/30
// (hub end +1), net1 198.19.0.0+4i+2/30.
type soakNode struct {
	podDir, prefix string
	hub            *netnstest.NS

	mu   sync.Mutex
	pods map[int]*soakPod
	next int
}

type soakPod struct {
	index         int
	ns            *netnstest.NS
	ethIP, net1IP netip.Addr
	created       time.Time

	// counted: the pod's interfaces are attached; its traffic goes to
	// countedPort from now on, each datagram counted in sent (eth0, net1).
	counted atomic.Bool
	// quiet: no traffic to the pod any more (it is about to go).
	quiet atomic.Bool
	sent  [2]atomic.Uint64
	// ports are eth0's and net1's port IDs, as they were when counted
	// began (namespace inodes, and so the attach index's keys, are reused).
	ports [2]uint16
}

// Ports of the soak's traffic: warmPort until a pod's interfaces are
// attached (to get them reported), countedPort after, so that the packets
// counted are exactly those sent while nsint watched.
const (
	warmPort    = 9
	countedPort = 10
)

var (
	ethBase  = netip.MustParseAddr("198.18.0.0")
	net1Base = netip.MustParseAddr("198.19.0.0")
)

// addPod creates the next pod.
func (n *soakNode) addPod() (*soakPod, error) {
	n.mu.Lock()
	i := n.next
	n.next++
	n.mu.Unlock()
	if 4*i+3 >= 1<<16 {
		return nil, fmt.Errorf("pod %d: out of addresses", i)
	}
	began := time.Now()
	ns, err := netnstest.Create(n.podDir, fmt.Sprintf("%s-p%d", n.prefix, i))
	if err != nil {
		return nil, err
	}
	p := &soakPod{index: i, ns: ns, ethIP: addrAt(ethBase, 4*i+2), net1IP: addrAt(net1Base, 4*i+2)}
	if err := n.wire(p); err != nil {
		ns.Remove()
		return nil, fmt.Errorf("pod %d: %w", i, err)
	}
	p.created = began
	n.mu.Lock()
	n.pods[i] = p
	n.mu.Unlock()
	return p, nil
}

func (n *soakNode) wire(p *soakPod) error {
	hh, err := n.hub.Handle()
	if err != nil {
		return err
	}
	defer hh.Close()
	ph, err := p.ns.Handle()
	if err != nil {
		return err
	}
	defer ph.Close()
	for _, l := range []struct {
		hub, pod string
		base     netip.Addr
	}{{fmt.Sprintf("e%d", p.index), "eth0", ethBase}, {fmt.Sprintf("n%d", p.index), "net1", net1Base}} {
		if _, err := addVeth(hh, l.hub, p.ns, l.pod); err != nil {
			return err
		}
		if err := upWithAddr(hh, l.hub, netip.PrefixFrom(addrAt(l.base, 4*p.index+1), 30)); err != nil {
			return err
		}
		if err := upWithAddr(ph, l.pod, netip.PrefixFrom(addrAt(l.base, 4*p.index+2), 30)); err != nil {
			return err
		}
		// A permanent neighbour entry on the hub: every datagram sent to
		// the pod goes out at once, none waits for (or dies with) an
		// address resolution, so the datagrams the soak counts as sent
		// are those that reached the pod's interface.
		if err := permanentNeigh(hh, l.hub, ph, l.pod, addrAt(l.base, 4*p.index+2)); err != nil {
			return err
		}
	}
	return nil
}

// permanentNeigh adds on the hub's interface hub a permanent neighbour entry
// for ip at the MAC of the pod's interface pod.
func permanentNeigh(hh *netlink.Handle, hub string, ph *netlink.Handle, pod string, ip netip.Addr) error {
	pl, err := ph.LinkByName(pod)
	if err != nil {
		return fmt.Errorf("link %s: %w", pod, err)
	}
	hl, err := hh.LinkByName(hub)
	if err != nil {
		return fmt.Errorf("link %s: %w", hub, err)
	}
	n := &netlink.Neigh{LinkIndex: hl.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
		IP: ip.AsSlice(), HardwareAddr: pl.Attrs().HardwareAddr}
	if err := hh.NeighSet(n); err != nil {
		return fmt.Errorf("neighbour %s on %s: %w", ip, hub, err)
	}
	return nil
}

// removePod deletes a pod's namespace (its veths die with it).
func (n *soakNode) removePod(p *soakPod) error {
	n.mu.Lock()
	delete(n.pods, p.index)
	n.mu.Unlock()
	return p.ns.Remove()
}

func (n *soakNode) live() []*soakPod {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*soakPod, 0, len(n.pods))
	for _, p := range n.pods {
		out = append(out, p)
	}
	return out
}

// close removes every pod.
func (n *soakNode) close() error {
	var first error
	for _, p := range n.live() {
		if err := n.removePod(p); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// traffic sends, every 50 ms until ctx ends, one UDP datagram from the hub
// to every live pod's eth0 and net1 (no listener: the pod's kernel drops it
// and answers ICMP): to warmPort, or countedPort once the pod is counted
// (soakPod.sent). It counts the datagrams sent in sent.
func (n *soakNode) traffic(ctx context.Context, sent *atomic.Uint64) error {
	var conn *net.UDPConn
	err := n.hub.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", nil)
		return err
	})
	if err != nil {
		return err
	}
	go func() {
		defer conn.Close()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		payload := []byte("nsint-soak")
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, p := range n.live() {
				if p.quiet.Load() {
					continue
				}
				counted := p.counted.Load()
				port := uint16(warmPort)
				if counted {
					port = countedPort
				}
				for i, ip := range []netip.Addr{p.ethIP, p.net1IP} {
					if _, err := conn.WriteToUDPAddrPort(payload, netip.AddrPortFrom(ip, port)); err == nil {
						sent.Add(1)
						if counted {
							p.sent[i].Add(1)
						}
					}
				}
			}
		}
	}()
	return nil
}
