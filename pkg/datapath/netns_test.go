package datapath

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// attachTCX attaches prog to ifindex inside ns with TCX and detaches it at
// cleanup. A minimal stand-in for pkg/tc. On a kernel without TCX it uses
// legacy tc when the run allows it (tcxFallback).
func attachTCX(t testing.TB, ns *netnstest.NS, ifindex int, dir netif.Direction, prog *ebpf.Program) {
	t.Helper()
	at := ebpf.AttachTCXIngress
	if dir == netif.Egress {
		at = ebpf.AttachTCXEgress
	}
	var l link.Link
	err := ns.Do(func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: at})
		return err
	})
	if tcxFallback(err) {
		attachLegacy(t, ns, ifindex, dir, prog)
		return
	}
	if err != nil {
		t.Fatalf("attach tcx %s to ifindex %d in %s: %v", dir, ifindex, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
}

// sendUDP sends count datagrams inside ns, always from source port
// testSrcPort so that successive calls are one flow.
func sendUDP(t *testing.T, ns *netnstest.NS, dst string, count int) {
	t.Helper()
	err := ns.Do(func() error {
		dialer := net.Dialer{LocalAddr: &net.UDPAddr{Port: testSrcPort}}
		c, err := dialer.Dial("udp4", dst)
		if err != nil {
			return err
		}
		defer c.Close()
		// A connected socket reports the ICMP error of the previous
		// datagram on the next write, which then is not sent: retry.
		for sent, tries := 0, 0; sent < count; tries++ {
			_, err := c.Write([]byte("nsint test payload"))
			switch {
			case err == nil:
				sent++
			case errors.Is(err, syscall.ECONNREFUSED) && tries < 4*count:
			default:
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send udp to %s from %s: %v", dst, ns.Name, err)
	}
}

const testSrcPort = 40404

// waitEvent reads events until match accepts one, failing after timeout.
func waitEvent(t *testing.T, r *Reader, timeout time.Duration, what string, match func(*Event) bool) Event {
	t.Helper()
	r.SetDeadline(time.Now().Add(timeout))
	defer r.SetDeadline(time.Time{})
	var ev Event
	for {
		err := r.Read(&ev)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		if err != nil {
			t.Fatal(err)
		}
		if match(&ev) {
			ev.Data = append([]byte(nil), ev.Data...)
			return ev
		}
	}
}

func ifindexOf(t *testing.T, ns *netnstest.NS, name string) (int, net.HardwareAddr) {
	t.Helper()
	l, err := ns.NetlinkHandle(t).LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index, l.Attrs().HardwareAddr
}

// TestIdentitySameIfindex: interfaces with the same ifindex in two
// namespaces, attached through their own dispatchers with TCX, report as
// two ports, each with its namespace's local-stack port.
func TestIdentitySameIfindex(t *testing.T) {
	d := loadDatapath(t, Config{})
	r, err := d.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	dir, pfx := netnstest.Dir(t), netnstest.Prefix(t)
	nsA := netnstest.New(t, dir, pfx+"-a")
	nsB := netnstest.New(t, dir, pfx+"-b")
	nsC := netnstest.New(t, dir, pfx+"-c")
	const ifindex = 500
	netnstest.VethIndex(t, nsA, "eth0", ifindex, nsC, pfx+"a")
	netnstest.VethIndex(t, nsB, "eth0", ifindex, nsC, pfx+"b")
	netnstest.AddAddr(t, nsA, "eth0", "198.18.20.1/24")
	netnstest.AddAddr(t, nsC, pfx+"a", "198.18.20.2/24")
	netnstest.AddAddr(t, nsB, "eth0", "198.18.21.1/24")
	netnstest.AddAddr(t, nsC, pfx+"b", "198.18.21.2/24")

	type side struct {
		ns          *netnstest.NS
		port, local uint16
		src, dst    string
	}
	sides := []side{
		{nsA, 21, 20, "198.18.20.1", "198.18.20.2"},
		{nsB, 31, 30, "198.18.21.1", "198.18.21.2"},
	}
	for _, s := range sides {
		if got, _ := ifindexOf(t, s.ns, "eth0"); got != ifindex {
			t.Fatalf("eth0 in %s has ifindex %d, want %d", s.ns.Name, got, ifindex)
		}
		must(t, d.SetPort(s.local, PortInfo{ID: netif.ID{Netns: netif.Netns(s.ns.Inode)}, LocalStack: true}))
		must(t, d.SetPort(s.port, PortInfo{ID: netif.ID{Netns: netif.Netns(s.ns.Inode), Ifindex: ifindex}, LocalPort: s.local}))
		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			prog, err := d.Dispatcher(s.port, dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { prog.Close() })
			attachTCX(t, s.ns, ifindex, dir, prog)
		}
	}
	for _, s := range sides {
		sendUDP(t, s.ns, s.dst+":9", 1)
		src, dst := netip.MustParseAddr(s.src), netip.MustParseAddr(s.dst)
		ev := waitEvent(t, r, 5*time.Second, "egress report from "+s.src, func(ev *Event) bool {
			return ev.Type == FlowEvent && ev.Proto == protoUDP && ev.Src == src && ev.Dst == dst && ev.Direction == netif.Egress
		})
		if ev.Port != s.port || ev.InPort != s.local || ev.OutPort != s.port {
			t.Errorf("%s egress: port %d, %d→%d, want port %d, %d→%d", s.ns.Name, ev.Port, ev.InPort, ev.OutPort, s.port, s.local, s.port)
		}
		// The ICMP port-unreachable reply comes back in on the same port.
		ev = waitEvent(t, r, 5*time.Second, "ingress report to "+s.src, func(ev *Event) bool {
			return ev.Type == FlowEvent && ev.Proto == protoICMP && ev.Dst == src && ev.Direction == netif.Ingress
		})
		if ev.Port != s.port || ev.InPort != s.port || ev.OutPort != s.local {
			t.Errorf("%s ingress: port %d, %d→%d, want port %d, %d→%d", s.ns.Name, ev.Port, ev.InPort, ev.OutPort, s.port, s.port, s.local)
		}
	}
	for _, s := range sides {
		c, err := d.PortCounters(s.port)
		if err != nil {
			t.Fatal(err)
		}
		if c.Egress.Packets == 0 || c.Ingress.Packets == 0 {
			t.Errorf("port %d counters %+v: want packets both ways", s.port, c)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDropHook: real drops inside a test namespace — UDP to a closed port
// and a netfilter DROP rule — are reported with the kernel's reason (looked
// up by name), the arrival port, the frame's bytes, and rate-limited. On a
// kernel whose kfree_skb has no reason (before 5.17; TestLoad checks the
// probe) they are reported all the same, with the reason unknown.
func TestDropHook(t *testing.T) {
	const interval = 300 * time.Millisecond
	d := loadDatapath(t, Config{DropReportInterval: interval})
	var noSocket, nfDrop uint32
	if d.DropReasonSupported() {
		var err error
		noSocket, err = DropReasonByName("SKB_DROP_REASON_NO_SOCKET")
		must(t, err)
		nfDrop, err = DropReasonByName("SKB_DROP_REASON_NETFILTER_DROP")
		must(t, err)
	} else {
		t.Log("kernel without drop reasons on kfree_skb: expecting reason unknown")
	}

	dir, pfx := netnstest.Dir(t), netnstest.Prefix(t)
	nsA := netnstest.New(t, dir, pfx+"-a")
	nsC := netnstest.New(t, dir, pfx+"-c")
	netnstest.VethIndex(t, nsC, "eth0", 7, nsA, "eth0")
	netnstest.AddAddr(t, nsA, "eth0", "198.18.22.1/24")
	netnstest.AddAddr(t, nsC, "eth0", "198.18.22.2/24")
	_, macC := ifindexOf(t, nsC, "eth0")
	_, macA := ifindexOf(t, nsA, "eth0")
	nsA.Run(t, "ping", "-c1", "-W2", "198.18.22.2") // resolve ARP first

	const port, local = 41, 40
	must(t, d.SetPort(local, PortInfo{ID: netif.ID{Netns: netif.Netns(nsC.Inode)}, LocalStack: true}))
	must(t, d.SetPort(port, PortInfo{ID: netif.ID{Netns: netif.Netns(nsC.Inode), Ifindex: 7}, LocalPort: local}))
	hook, err := d.AttachDropHook()
	must(t, err)
	defer hook.Close()
	r, err := d.NewReader()
	must(t, err)
	defer r.Close()

	src, dst := netip.MustParseAddr("198.18.22.1"), netip.MustParseAddr("198.18.22.2")
	dropOf := func(dport uint16) func(*Event) bool {
		return func(ev *Event) bool {
			return ev.Type == DropEvent && ev.Proto == protoUDP && ev.Src == src && ev.Dst == dst &&
				ev.SrcPort == testSrcPort && ev.DstPort == dport
		}
	}
	check := func(ev Event, reason uint32, packets uint64) {
		t.Helper()
		got := fmt.Sprintf("reason=%d known=%v port=%d %s in=%d out=%d packets=%d", ev.DropReason, ev.DropReasonKnown, ev.Port, ev.Direction, ev.InPort, ev.OutPort, ev.Packets)
		want := fmt.Sprintf("reason=%d known=%v port=%d ingress in=%d out=0 packets=%d", reason, d.DropReasonSupported(),
			port, port, packets)
		if got != want {
			t.Errorf("drop\n got %s\nwant %s", got, want)
		}
		if len(ev.Data) < 15 || !bytes.Equal(ev.Data[0:6], macC) || !bytes.Equal(ev.Data[6:12], macA) ||
			binary.BigEndian.Uint16(ev.Data[12:]) != etherIPv4 || ev.Data[14] != 0x45 {
			t.Errorf("captured bytes % x do not start with the Ethernet frame %s > %s", ev.Data[:min(len(ev.Data), 16)], macA, macC)
		}
		if int(ev.Len) != 14+20+8+len("nsint test payload") {
			t.Errorf("frame length %d, want %d", ev.Len, 14+20+8+len("nsint test payload"))
		}
	}

	// Closed port: the first drop reports; the next ones, inside the
	// interval, are folded into the following report.
	sendUDP(t, nsA, "198.18.22.2:9", 1)
	check(waitEvent(t, r, 5*time.Second, "NO_SOCKET drop", dropOf(9)), noSocket, 1)
	sendUDP(t, nsA, "198.18.22.2:9", 5)
	time.Sleep(interval + 50*time.Millisecond)
	sendUDP(t, nsA, "198.18.22.2:9", 1)
	ev := waitEvent(t, r, 5*time.Second, "rate-limited NO_SOCKET drop", dropOf(9))
	if ev.Packets != 6 {
		// Five folded drops may have been split when the machine is slow;
		// the total must still add up.
		t.Logf("rate-limited report carries %d drops", ev.Packets)
		total := ev.Packets
		for total < 6 {
			total += waitEvent(t, r, 5*time.Second, "rest of the drops", dropOf(9)).Packets
		}
		if total != 6 {
			t.Errorf("drops reported %d, want 6", total)
		}
	}

	// Netfilter DROP in the namespace.
	nsC.Run(t, "iptables", "-I", "INPUT", "-p", "udp", "--dport", "7777", "-j", "DROP")
	sendUDP(t, nsA, "198.18.22.2:7777", 1)
	check(waitEvent(t, r, 5*time.Second, "NETFILTER_DROP drop", dropOf(7777)), nfDrop, 1)

	c, err := d.PortCounters(port)
	must(t, err)
	if c.Ingress.Drops < 8 {
		t.Errorf("port %d ingress drops %d, want at least 8", port, c.Ingress.Drops)
	}
}
