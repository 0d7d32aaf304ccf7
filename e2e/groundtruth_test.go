package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/agentproc"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/web"
)

// Helpers of the ground-truth suite (totals_test.go): a node whose pods'
// eth0 and net1 share ifindexes, traffic whose every packet the test knows,
// an independent count of what crossed an interface (a packet socket), and
// the real collector.

// gtNode is a node namespace with a bridge br0 and a macvlan parent mvp, and
// pods attached to both.
type gtNode struct {
	dir, prefix string
	node        *netnstest.NS
	pods        map[string]*gtPod
	next        int
}

// gtPod is one pod: eth0 (index 2) on the bridge through node-side veth
// host, and macvlan interfaces (net1 is index 10 in every pod).
type gtPod struct {
	name    string
	ns      *netnstest.NS
	host    string // node-side veth of eth0
	eth4    netip.Addr
	eth6    netip.Addr
	nets    map[string]netip.Addr // macvlan interface → IPv4 address
	nets6   map[string]netip.Addr // macvlan interface → IPv6 address
	index   int
	removed bool
}

const (
	gtEthIfindex  = 2
	gtNet1Ifindex = 10
)

func newGTNode(t *testing.T) *gtNode {
	t.Helper()
	g := &gtNode{dir: netnstest.Dir(t), prefix: netnstest.Prefix(t), pods: map[string]*gtPod{}}
	g.node = netnstest.New(t, g.dir, g.prefix+"-node")
	for _, argv := range [][]string{
		{"ip", "link", "add", "br0", "type", "bridge"},
		{"ip", "addr", "add", "198.18.0.1/24", "dev", "br0"},
		{"ip", "link", "set", "br0", "up"},
		// The macvlan parents: veths whose peers stay in the node. net1
		// (198.19.1.0/24) hangs off mvp, the other macvlans (198.19.2.0/24)
		// off mvp2: one subnet per segment, so that no pod answers for
		// the address of one interface on another.
		{"ip", "link", "add", "mvp", "type", "veth", "peer", "name", "mvpeer"},
		{"ip", "link", "set", "mvp", "up"},
		{"ip", "link", "set", "mvpeer", "up"},
		{"ip", "link", "add", "mvp2", "type", "veth", "peer", "name", "mvpeer2"},
		{"ip", "link", "set", "mvp2", "up"},
		{"ip", "link", "set", "mvpeer2", "up"},
	} {
		g.node.Run(t, argv...)
	}
	return g
}

// addPod creates pod name with eth0 and net1, addressed on 198.18.0.0/24,
// fd00:0:0:1::/64 (eth0) and 198.19.1.0/24, fd00:0:0:2::/64 (net1).
func (g *gtNode) addPod(t *testing.T, name string) *gtPod {
	t.Helper()
	g.next++
	i := g.next
	p := &gtPod{
		name: name, index: i, host: fmt.Sprintf("gtv%d", i),
		eth4:  netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}),
		eth6:  netip.MustParseAddr(fmt.Sprintf("fd00:0:0:1::%x", 16+i)),
		nets:  map[string]netip.Addr{},
		nets6: map[string]netip.Addr{},
	}
	p.ns = netnstest.New(t, g.dir, g.prefix+"-"+name)
	g.node.Run(t, "ip", "link", "add", p.host, "type", "veth", "peer", "name", "eth0", "netns", p.ns.Path)
	g.node.Run(t, "ip", "link", "set", p.host, "master", "br0", "up")
	p.ns.Run(t, "ip", "addr", "add", p.eth4.String()+"/24", "dev", "eth0")
	p.ns.Run(t, "ip", "addr", "add", p.eth6.String()+"/64", "dev", "eth0", "nodad")
	p.ns.Run(t, "ip", "link", "set", "eth0", "up")
	p.ns.Run(t, "ip", "link", "set", "lo", "up")
	g.addNet(t, p, "net1", gtNet1Ifindex)
	g.pods[name] = p
	return p
}

// addNet gives p a bridge-mode macvlan named name — of mvp for net1, of
// mvp2 otherwise — created with ifindex index in the node and moved into
// the pod (which keeps it).
func (g *gtNode) addNet(t *testing.T, p *gtPod, name string, index int) {
	t.Helper()
	parent, subnet := "mvp", byte(1)
	if name != "net1" {
		parent, subnet = "mvp2", 2
	}
	tmp := fmt.Sprintf("gtm%d", p.index)
	g.node.Run(t, "ip", "link", "add", "link", parent, "name", tmp, "index", fmt.Sprint(index), "type", "macvlan", "mode", "bridge")
	g.node.Run(t, "ip", "link", "set", tmp, "netns", p.ns.Path)
	p.ns.Run(t, "ip", "link", "set", tmp, "name", name)
	n := 10 + p.index
	p.nets[name] = netip.AddrFrom4([4]byte{198, 19, subnet, byte(n)})
	p.nets6[name] = netip.MustParseAddr(fmt.Sprintf("fd00:0:0:%d::%x", subnet+1, n))
	p.ns.Run(t, "ip", "addr", "add", p.nets[name].String()+"/24", "dev", name)
	p.ns.Run(t, "ip", "addr", "add", p.nets6[name].String()+"/64", "dev", name, "nodad")
	p.ns.Run(t, "ip", "link", "set", name, "up")
}

// ifindex returns the index of dev in ns.
func ifindexIn(t *testing.T, ns *netnstest.NS, dev string) int {
	t.Helper()
	l, err := ns.NetlinkHandle(t).LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().Index
}

// noOffloads turns segmentation and receive offloads off on dev in ns, so
// that every skb a hook sees is one packet on the wire and a packet socket
// sees the same frames as the hooks.
func noOffloads(t *testing.T, ns *netnstest.NS, dev string) {
	t.Helper()
	ns.Run(t, "ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off")
}

// onCPU runs fn on a thread pinned to cpu inside ns.
func onCPUIn(ns *netnstest.NS, cpu int, fn func() error) error {
	return ns.Do(func() error {
		var orig, set unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			return err
		}
		defer unix.SchedSetaffinity(0, &orig)
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pin to CPU %d: %w", cpu, err)
		}
		return fn()
	})
}

// udpSink counts the datagrams a socket in ns receives on addr.
type udpSink struct {
	conn  *net.UDPConn
	mu    sync.Mutex
	count int
	done  chan struct{}
}

func listenUDP(t *testing.T, ns *netnstest.NS, addr netip.AddrPort) *udpSink {
	t.Helper()
	s := &udpSink{done: make(chan struct{})}
	err := ns.Do(func() error {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(addr))
		s.conn = c
		return err
	})
	if err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, ns.Name, err)
	}
	go func() {
		defer close(s.done)
		buf := make([]byte, 65536)
		for {
			if _, err := s.conn.Read(buf); err != nil {
				return
			}
			s.mu.Lock()
			s.count++
			s.mu.Unlock()
		}
	}()
	t.Cleanup(func() { s.conn.Close(); <-s.done })
	return s
}

func (s *udpSink) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count
}

// sendUDPBurst sends n datagrams of payload bytes from src to dst inside ns,
// one every gap, the first half from CPU cpus[0] and the rest from the last
// of cpus.
func sendUDPBurst(t *testing.T, ns *netnstest.NS, src, dst netip.AddrPort, n, payload int, gap time.Duration, cpus ...int) {
	t.Helper()
	// Not connected: an ICMP error for one datagram (a closed port) must not
	// fail the next send.
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(src))
		return err
	})
	if err != nil {
		t.Fatalf("udp socket %s→%s in %s: %v", src, dst, ns.Name, err)
	}
	defer c.Close()
	buf := make([]byte, payload)
	to := net.UDPAddrFromAddrPort(dst)
	send := func(count int) error {
		for range count {
			if _, err := c.WriteToUDP(buf, to); err != nil {
				return err
			}
			time.Sleep(gap)
		}
		return nil
	}
	if len(cpus) == 0 {
		err = send(n)
	} else {
		err = onCPUIn(ns, cpus[0], func() error { return send(n / 2) })
		if err == nil {
			err = onCPUIn(ns, cpus[len(cpus)-1], func() error { return send(n - n/2) })
		}
	}
	if err != nil {
		t.Fatalf("send udp %s→%s: %v", src, dst, err)
	}
}

// tcpTransfer connects from src to dst in the client namespace, writes size
// bytes and closes (FIN); the server in its namespace reads everything and
// closes too. It returns when both sides are done.
func tcpTransfer(t *testing.T, client *netnstest.NS, src netip.AddrPort, server *netnstest.NS, dst netip.AddrPort, size int) {
	t.Helper()
	var ln net.Listener
	if err := server.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", dst.String())
		return err
	}); err != nil {
		t.Fatalf("listen %s: %v", dst, err)
	}
	defer ln.Close()
	got := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer c.Close()
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != int64(size) {
			err = fmt.Errorf("server read %d bytes, want %d", n, size)
		}
		got <- err
	}()
	err := client.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(src), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		if _, err := c.Write(make([]byte, size)); err != nil {
			c.Close()
			return err
		}
		// Read until the server's FIN, then close: both FINs pass.
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
		return c.Close()
	})
	if err != nil {
		t.Fatalf("tcp %s→%s: %v", src, dst, err)
	}
	if err := <-got; err != nil {
		t.Fatalf("tcp server %s: %v", dst, err)
	}
}

// capture counts, per flow and direction, the frames a packet socket sees on
// one interface: what crossed it, independently of nsint.
type capture struct {
	fd    int
	mu    sync.Mutex
	seen  map[captureKey]*captured
	done  chan struct{}
	iface string
}

type captureKey struct {
	src, dst netip.AddrPort
	proto    uint8
	outgoing bool
}

type captured struct{ packets, bytes uint64 }

// startCapture opens a packet socket on dev in ns.
func startCapture(t *testing.T, ns *netnstest.NS, dev string) *capture {
	t.Helper()
	idx := ifindexIn(t, ns, dev)
	c := &capture{seen: map[captureKey]*captured{}, done: make(chan struct{}), iface: dev}
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		// SO_RCVBUF is capped at net.core.rmem_max (about 200 KiB by
		// default): too small for a TCP transfer's burst under a slow
		// (emulated) CPU. Root may force the size.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx})
	})
	if err != nil {
		t.Fatalf("packet socket on %s in %s: %v", dev, ns.Name, err)
	}
	go c.loop()
	t.Cleanup(c.stop)
	return c
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (c *capture) loop() {
	defer close(c.done)
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok {
			continue
		}
		k, ok := frameKey(buf[:n])
		if !ok {
			continue
		}
		k.outgoing = ll.Pkttype == unix.PACKET_OUTGOING
		c.mu.Lock()
		v := c.seen[k]
		if v == nil {
			v = &captured{}
			c.seen[k] = v
		}
		v.packets++
		v.bytes += uint64(n)
		c.mu.Unlock()
	}
}

func (c *capture) stop() {
	unix.Shutdown(c.fd, unix.SHUT_RDWR)
	unix.Close(c.fd)
}

// count returns what crossed the interface for one flow and direction, and
// fails the test if the socket lost frames.
func (c *capture) count(t *testing.T, src, dst netip.AddrPort, proto uint8, outgoing bool) captured {
	t.Helper()
	if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil && st.Drops != 0 {
		t.Fatalf("the packet socket on %s lost %d frames: no ground truth", c.iface, st.Drops)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.seen[captureKey{src: src, dst: dst, proto: proto, outgoing: outgoing}]; v != nil {
		return *v
	}
	return captured{}
}

// frameKey reads the flow of an Ethernet frame carrying IPv4 or IPv6 TCP or
// UDP.
func frameKey(b []byte) (captureKey, bool) {
	var k captureKey
	if len(b) < 14 {
		return k, false
	}
	et := uint16(b[12])<<8 | uint16(b[13])
	b = b[14:]
	var l4 []byte
	var src, dst netip.Addr
	switch et {
	case 0x0800:
		if len(b) < 20 {
			return k, false
		}
		ihl := int(b[0]&0xf) * 4
		k.proto = b[9]
		src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		if len(b) < ihl+4 {
			return k, false
		}
		l4 = b[ihl:]
	case 0x86dd:
		if len(b) < 44 {
			return k, false
		}
		k.proto = b[6]
		src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		l4 = b[40:]
	default:
		return k, false
	}
	if k.proto != 6 && k.proto != 17 {
		return k, false
	}
	sp, dp := uint16(l4[0])<<8|uint16(l4[1]), uint16(l4[2])<<8|uint16(l4[3])
	k.src, k.dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return k, true
}

// collectorProc is a running nsint-collector on loopback.
type collectorProc struct {
	udp, api string
	cmd      *exec.Cmd
	log      *agentproc.Log
}

// freeUDPAddr returns a loopback UDP address that was free a moment ago.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}

// startCollectorProc runs nsint-collector listening on udp, asking the agent
// API at agentAPI for the topology.
func startCollectorProc(t *testing.T, udp, agentAPI string) *collectorProc {
	t.Helper()
	api, err := agentproc.FreeTCPAddr()
	if err != nil {
		t.Fatal(err)
	}
	c := &collectorProc{udp: udp, api: api, log: &agentproc.Log{}}
	c.cmd = exec.Command(filepath.Join(binDir, "nsint-collector"), "--listen", udp, "--api-addr", api,
		"--agents", "http://"+agentAPI, "--topology-refresh", "2s")
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		c.cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			c.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("collector log:\n%s", c.log.String())
		}
	})
	waitFor(t, "the collector's API", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + api + "/api/v1/stats")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return c
}

func (c *collectorProc) rows(t *testing.T) []flowtable.Row {
	t.Helper()
	var r web.FlowsResponse
	c.get(t, "/api/v1/flows?limit=100000", &r)
	return r.Flows
}

func (c *collectorProc) summary(t *testing.T) web.SummaryResponse {
	t.Helper()
	var r web.SummaryResponse
	c.get(t, "/api/v1/summary", &r)
	return r
}

func (c *collectorProc) get(t *testing.T, path string, into any) {
	t.Helper()
	resp, err := http.Get("http://" + c.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// point names an observation point: an interface of a namespace (or its
// local stack, api.LocalStackName) and a direction.
type point struct {
	netns, iface, dir string
}

func (p point) String() string { return p.netns + ":" + p.iface + "/" + p.dir }

// flowID is a flow as a collector row names it (ICMP: type and code in the
// port fields).
type flowID struct {
	proto    string
	src, dst string
	sp, dp   uint16
}

func (f flowID) String() string {
	return fmt.Sprintf("%s %s:%d→%s:%d", f.proto, f.src, f.sp, f.dst, f.dp)
}

// want is what one flow must show at one point.
type want struct {
	flow    flowID
	at      point
	packets uint64
	bytes   uint64
}

// compareTotals checks every wanted row's packets, bytes and zero drops, and
// that no other row has the flows' identities. It returns the mismatches.
func compareTotals(rows []flowtable.Row, wants []want) []string {
	type key struct {
		f  flowID
		at point
	}
	have := map[key]flowtable.Row{}
	for _, r := range rows {
		f := flowID{proto: r.Proto, src: r.Src, dst: r.Dst, sp: r.SrcPort, dp: r.DstPort}
		have[key{f, point{r.Netns.Name, r.Interface, r.Direction}}] = r
	}
	flows := map[flowID]bool{}
	wanted := map[key]bool{}
	var bad []string
	for _, w := range wants {
		flows[w.flow] = true
		wanted[key{w.flow, w.at}] = true
		r, ok := have[key{w.flow, w.at}]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%s at %s: no row, want %d packets %d bytes", w.flow, w.at, w.packets, w.bytes))
		case r.Packets != w.packets || r.Bytes != w.bytes || r.Drops != 0:
			bad = append(bad, fmt.Sprintf("%s at %s: %d packets %d bytes %d drops, want %d packets %d bytes 0 drops",
				w.flow, w.at, r.Packets, r.Bytes, r.Drops, w.packets, w.bytes))
		}
	}
	for k, r := range have {
		if flows[k.f] && !wanted[k] {
			bad = append(bad, fmt.Sprintf("%s at %s: unexpected row with %d packets %d bytes %d drops",
				k.f, k.at, r.Packets, r.Bytes, r.Drops))
		}
	}
	sort.Strings(bad)
	return bad
}

// foreignBPF attaches, as another tool would, a cls_bpf filter at priority
// prio on dev's hook dir in ns whose program returns TC_ACT_OK: it ends the
// chain for every packet.
func foreignBPF(t *testing.T, ns *netnstest.NS, dev, dir string, prio uint16) {
	t.Helper()
	addClsBPF(t, ns, dev, dir, prio, "foreign-ok", 0)
}

// foreignTCX attaches, as another tool would, a TCX program on dev's hook
// dir in ns that returns TCX_PASS: it ends the chain for every packet.
func foreignTCX(t *testing.T, ns *netnstest.NS, dev, dir string) {
	t.Helper()
	prog := passProgram(t, ebpf.SchedCLS)
	idx := ifindexIn(t, ns, dev)
	at := ebpf.AttachTCXIngress
	if dir == "egress" {
		at = ebpf.AttachTCXEgress
	}
	var l link.Link
	err := ns.Do(func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: idx, Program: prog, Attach: at})
		return err
	})
	if err != nil {
		t.Fatalf("attach foreign tcx program on %s %s: %v", dev, dir, err)
	}
	t.Cleanup(func() { l.Close() })
}

// passProgram is a TC program that returns TC_ACT_OK (TCX_PASS).
func passProgram(t *testing.T, typ ebpf.ProgramType) *ebpf.Program {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: typ, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}
