package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/datapath"
)

// TestDropTotals: drops that are drops, and only those, counted exactly.
// Pings over net1 — busybox's raw socket and iputils' ICMP datagram socket —
// with a packet socket (as tcpdump opens) listening on both ends, and the
// IPv6 housekeeping of interfaces coming up (MLD reports, router
// solicitations to groups no one joined), show no drop anywhere. UDP to a
// closed port, a netfilter DROP rule and a socket whose receive queue is
// full show exactly the packets they discarded, with their reason, in the
// collector's rows and in the agent's per-port drop counters.
func TestDropTotals(t *testing.T) {
	netnstest.RequireRoot(t)
	g := newGTNode(t)
	a, b := g.addPod(t, "a"), g.addPod(t, "b")
	colAddr := freeUDPAddr(t)
	env := newAgentEnv(t, g.dir, colAddr, "--report-format", "v2.0")
	env.interval = totalsInterval.String()
	ag := env.start(t)
	col := startCollectorProc(t, colAddr, ag.APIAddr)

	// Taps on both ends of net1, as tcpdump would open.
	startCapture(t, a.ns, "net1")
	startCapture(t, b.ns, "net1")
	if _, err := exec.LookPath("tcpdump"); err == nil {
		tcpdump := b.ns.Command("tcpdump", "-i", "net1", "-w", "/dev/null")
		if err := tcpdump.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tcpdump.Process.Kill(); tcpdump.Wait() })
	}
	a.ns.Run(t, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
	ping(t, a.ns, []string{"busybox", "ping", "-c", "5", "-i", "0.2", "-W", "2", b.nets["net1"].String()})
	ping(t, a.ns, []string{"ping", "-c", "5", "-i", "0.2", "-W", "2", b.nets["net1"].String()})
	ping(t, a.ns, []string{"busybox", "ping", "-c", "3", "-i", "0.2", "-W", "2", b.nets6["net1"].String()})
	ping(t, a.ns, []string{"ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", b.nets6["net1"].String()})

	// Real drops, each of its own flow.
	reasons := dropReasonCodes(t)
	const closed, filtered, sent = 9, 7777, 50
	sendUDPBurst(t, a.ns, netip.AddrPortFrom(a.eth4, 40009), netip.AddrPortFrom(b.eth4, closed), 7, 20, 2*time.Millisecond)
	b.ns.Run(t, "iptables", "-I", "INPUT", "-p", "udp", "--dport", fmt.Sprint(filtered), "-j", "DROP")
	sendUDPBurst(t, a.ns, netip.AddrPortFrom(a.eth4, 47777), netip.AddrPortFrom(b.eth4, filtered), 5, 20, 2*time.Millisecond)
	full := fullSocket(t, b.ns, netip.AddrPortFrom(b.eth4, 8888))
	sendUDPBurst(t, a.ns, netip.AddrPortFrom(a.eth4, 48888), netip.AddrPortFrom(b.eth4, 8888), sent, 1000, 0)
	queued := full.drain(t)
	if queued == 0 || queued >= sent {
		t.Fatalf("%d of %d datagrams queued at the small socket: want some, not all", queued, sent)
	}
	time.Sleep(scaled(totalsInterval + time.Second))

	rows := col.rows(t)
	var bad []string
	for _, w := range []struct {
		what   string
		dport  uint16
		drops  uint64
		reason string
	}{
		{"UDP to a closed port", closed, 7, reasons.noSocket},
		{"netfilter DROP", filtered, 5, reasons.netfilter},
		{"full receive queue", 8888, uint64(sent - queued), reasons.rcvbuf},
	} {
		r, ok := findRow(rows, b.ns.Name, "eth0", "ingress", "udp", w.dport)
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s: no row at %s:eth0 ingress", w.what, b.ns.Name))
		case r.Drops != w.drops || r.DropReasons[w.reason] != w.drops:
			bad = append(bad, fmt.Sprintf("%s: %d drops %v, want %d with reason %s", w.what, r.Drops, r.DropReasons, w.drops, w.reason))
		}
	}
	// No other row of the pods or the node shows a drop.
	for _, r := range rows {
		if r.Drops == 0 || (r.Netns.Name == b.ns.Name && r.Interface == "eth0" && r.Direction == "ingress" && r.Proto == "udp") {
			continue
		}
		bad = append(bad, fmt.Sprintf("a drop that is none: %s:%s %s %s %s:%d→%s:%d %d drops %v",
			r.Netns.Name, r.Interface, r.Direction, r.Proto, r.Src, r.SrcPort, r.Dst, r.DstPort, r.Drops, r.DropReasons))
	}
	// The agent counts the same drops per port, and none elsewhere.
	m := ag.metrics(t)
	wantPort := uint64(7 + 5 + sent - queued)
	for _, line := range strings.Split(m, "\n") {
		if !strings.HasPrefix(line, "nsint_port_drops_total{") {
			continue
		}
		var v float64
		fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
		isB := strings.Contains(line, `netns="`+b.ns.Name+`"`) && strings.Contains(line, `interface="eth0"`) &&
			strings.Contains(line, `direction="ingress"`)
		switch {
		case isB && uint64(v) != wantPort:
			bad = append(bad, fmt.Sprintf("agent: %s, want %d", line, wantPort))
		case !isB && v != 0:
			bad = append(bad, "agent: a drop that is none: "+line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("drops differ from what the stack discarded:\n  %s", strings.Join(bad, "\n  "))
	}
}

type dropCodes struct{ noSocket, netfilter, rcvbuf string }

// dropReasonCodes are the INT codes the collector shows for the drops the
// test makes; "0" (unknown) everywhere on kernels without drop reasons.
func dropReasonCodes(t *testing.T) dropCodes {
	t.Helper()
	err := datapath.HaveDropReason()
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatal(err)
	}
	if err != nil {
		t.Log("kernel without drop reasons: every drop has reason 0 (unknown)")
		return dropCodes{"0", "0", "0"}
	}
	return dropCodes{noSocket: "200", netfilter: "80", rcvbuf: "202"}
}

func findRow(rows []flowtable.Row, netns, iface, dir, proto string, dport uint16) (flowtable.Row, bool) {
	for _, r := range rows {
		if r.Netns.Name == netns && r.Interface == iface && r.Direction == dir && r.Proto == proto && r.DstPort == dport {
			return r, true
		}
	}
	return flowtable.Row{}, false
}

// smallSocket is a UDP socket with the smallest receive buffer, read only
// when the test says.
type smallSocket struct{ conn *net.UDPConn }

func fullSocket(t *testing.T, ns *netnstest.NS, addr netip.AddrPort) *smallSocket {
	t.Helper()
	s := &smallSocket{}
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		if err != nil {
			return err
		}
		s.conn = c
		raw, err := c.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		err = raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1) })
		if err != nil {
			return err
		}
		return serr
	})
	if err != nil {
		t.Fatalf("small socket %s: %v", addr, err)
	}
	t.Cleanup(func() { s.conn.Close() })
	return s
}

// drain reads what the socket queued and returns how many datagrams.
func (s *smallSocket) drain(t *testing.T) int {
	t.Helper()
	buf := make([]byte, 65536)
	n := 0
	for {
		s.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := s.conn.Read(buf); err != nil {
			return n
		}
		n++
	}
}
