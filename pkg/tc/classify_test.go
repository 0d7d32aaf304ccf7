package tc

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// This file holds other tools' classifiers for the tests that check that
// ours runs first: filters and programs that end the chain for every packet
// (they classify it, or pass it on with a final verdict), each with a count
// of its own.

// meter reads a packet count that only grows.
type meter func(t *testing.T) uint64

// newQuietPair is newPair whose eth0s carry only what the test sends: IPv6
// off (no neighbour or router solicitations, no MLD) and permanent neighbour
// entries (no ARP), so the packets a test counts are exactly the ones it sent.
func newQuietPair(t *testing.T) *pair {
	t.Helper()
	p := newPair(t)
	type end struct {
		ns   *netnstest.NS
		peer *netnstest.NS
		ip   string // the peer's address
	}
	for _, e := range []end{{p.a, p.b, "198.18.0.2"}, {p.b, p.a, "198.18.0.1"}} {
		e.ns.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.eth0.disable_ipv6=1")
		peer, err := e.peer.NetlinkHandle(t).LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		h := e.ns.NetlinkHandle(t)
		l, err := h.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: netlink.FAMILY_V4,
			State: netlink.NUD_PERMANENT, IP: net.ParseIP(e.ip), HardwareAddr: peer.Attrs().HardwareAddr}); err != nil {
			t.Fatalf("neighbour %s in %s: %v", e.ip, e.ns.Name, err)
		}
	}
	return p
}

// send sends n echo requests from A to B and fails unless n replies come
// back: n packets leave A's eth0 and n arrive there.
func (p *pair) send(t *testing.T, n int) {
	t.Helper()
	out := p.a.Run(t, "ping", "-q", "-c", fmt.Sprint(n), "-i", "0.005", "-W", "2", "198.18.0.2")
	if !strings.Contains(out, fmt.Sprintf("%d packets transmitted, %d received,", n, n)) {
		t.Fatalf("ping: %s", out)
	}
}

// classifier adds another tool's classifier to one hook of eth0 in A.
type classifier struct {
	name string
	// tcx is set for a TCX program: it runs before every legacy filter, so
	// only TCX mode can go ahead of it.
	tcx bool
	// add adds it before (early) or after (!early) ours attaches, the way a
	// tool would at that point, and returns its count.
	add func(t *testing.T, p *pair, dir netif.Direction, early bool) meter
}

var classifiers = []classifier{
	{name: "u32", add: addU32},
	{name: "matchall", add: addMatchall},
	{name: "bpf", add: addBPFOK},
	{name: "tcx", tcx: true, add: addTCXPass},
}

// ensureClsact creates a clsact qdisc on eth0 in A unless there is one.
func ensureClsact(t *testing.T, p *pair) {
	t.Helper()
	err := p.a.NetlinkHandle(t).QdiscAdd(&netlink.Clsact{QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: int(p.ifA.Ifindex), Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT,
	}})
	if err != nil && !strings.Contains(err.Error(), "exists") {
		t.Fatalf("clsact: %v", err)
	}
}

// addU32 adds `u32 match u32 0 0 classid 1:1` at priority 49153, as the
// filter that hid every packet from our filter at 50593. Its count is that
// of a mirror action (the one action this kernel is sure to have) to a veth
// whose peer is down: the copies go nowhere, the original goes on.
func addU32(t *testing.T, p *pair, dir netif.Direction, _ bool) meter {
	t.Helper()
	ensureClsact(t, p)
	sink := "sink" + dir.String()[:1]
	if _, err := p.a.NetlinkHandle(t).LinkByName(sink); err != nil {
		p.a.Run(t, "ip", "link", "add", sink, "type", "veth", "peer", "name", sink+"p")
		p.a.Run(t, "ip", "link", "set", sink, "up")
	}
	p.a.Run(t, "tc", "filter", "add", "dev", "eth0", dir.String(), "prio", "49153", "protocol", "all",
		"u32", "match", "u32", "0", "0", "classid", "1:1", "action", "mirred", "egress", "mirror", "dev", sink)
	return actionPackets(p, dir, "u32", sink)
}

// addMatchall adds `matchall action ok` without a priority: the kernel picks
// one. It is skipped on kernels without cls_matchall or act_gact.
func addMatchall(t *testing.T, p *pair, dir netif.Direction, _ bool) meter {
	t.Helper()
	ensureClsact(t, p)
	out, err := p.a.Command("tc", "filter", "add", "dev", "eth0", dir.String(), "matchall", "action", "ok").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not found") || strings.Contains(string(out), "Failed to load TC action module") {
			t.Skipf("skipping: kernel without cls_matchall or act_gact (%s)", strings.TrimSpace(string(out)))
		}
		t.Fatalf("add matchall: %v: %s", err, out)
	}
	return actionPackets(p, dir, "matchall", "")
}

// addBPFOK adds a cls_bpf filter whose program counts and returns TC_ACT_OK.
// Before ours attaches it takes our default priority (ours must find
// another place ahead of it); after, the kernel picks its priority.
func addBPFOK(t *testing.T, p *pair, dir netif.Direction, early bool) meter {
	t.Helper()
	prio := uint16(0)
	if early {
		prio = DefaultPriority
	}
	return addBPFAt(t, p, dir, prio)
}

// addBPFAt is addBPFOK at priority prio (0: the kernel picks one).
func addBPFAt(t *testing.T, p *pair, dir netif.Direction, prio uint16) meter {
	t.Helper()
	ensureClsact(t, p)
	c := newCounterVerdict(t, "foreign_ok_"+dir.String()[:1], actOK)
	if err := p.a.NetlinkHandle(t).FilterAdd(&netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{LinkIndex: int(p.ifA.Ifindex), Parent: clsactParent(dir), Handle: 1,
			Priority: prio, Protocol: unix.ETH_P_ALL},
		Fd: c.prog.FD(), Name: "foreign-ok", DirectAction: true,
	}); err != nil {
		t.Fatalf("add foreign cls_bpf at priority %d: %v", prio, err)
	}
	return func(t *testing.T) uint64 { return c.count(t) }
}

// addTCXPass attaches a TCX program that counts and returns TCX_PASS,
// appended after whatever is on the hook, as a tool without an anchor does.
func addTCXPass(t *testing.T, p *pair, dir netif.Direction, _ bool) meter {
	t.Helper()
	return attachTCXPass(t, p, dir, nil)
}

// attachTCXPass is addTCXPass at anchor (nil: appended).
func attachTCXPass(t *testing.T, p *pair, dir netif.Direction, anchor link.Anchor) meter {
	t.Helper()
	c := newCounterVerdict(t, "foreign_pass_"+dir.String()[:1], actOK)
	var l link.Link
	err := p.a.Do(func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: int(p.ifA.Ifindex), Program: c.prog,
			Attach: tcxAttachType(dir), Anchor: anchor})
		return err
	})
	if err != nil {
		t.Fatalf("attach foreign tcx program: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return func(t *testing.T) uint64 { return c.count(t) }
}

// actionPackets counts the packets the actions of the filters of kind on
// a hook of eth0 in A have seen, from `tc -s -j filter show`; with toDev,
// only those of mirror actions to that device (a u32 dump shows the hash
// tables of both hooks of a clsact qdisc).
func actionPackets(p *pair, dir netif.Direction, kind, toDev string) meter {
	return func(t *testing.T) uint64 {
		t.Helper()
		out := p.a.Run(t, "tc", "-s", "-j", "filter", "show", "dev", "eth0", dir.String())
		var filters []struct {
			Kind    string `json:"kind"`
			Options struct {
				Actions []struct {
					ToDev string `json:"to_dev"`
					Stats struct {
						Packets uint64 `json:"packets"`
					} `json:"stats"`
				} `json:"actions"`
			} `json:"options"`
		}
		if err := json.Unmarshal([]byte(out), &filters); err != nil {
			t.Fatalf("tc -s -j filter show: %v: %s", err, out)
		}
		var n uint64
		found := false
		for _, f := range filters {
			if f.Kind != kind {
				continue
			}
			for _, a := range f.Options.Actions {
				if toDev != "" && a.ToDev != toDev {
					continue
				}
				n += a.Stats.Packets
				found = true
			}
		}
		if !found {
			t.Fatalf("no %s filter with an action on %s: %s", kind, dir, out)
		}
		return n
	}
}

// checkCounts checks that a hook of eth0 in A sends n packets past ours and
// past theirs: each sees every one of them, exactly once.
func checkCounts(t *testing.T, p *pair, n int, ours [2]*counter, theirs [2]meter) {
	t.Helper()
	var before [2][2]uint64
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		before[dir-1] = [2]uint64{ours[dir-1].count(t), theirs[dir-1](t)}
	}
	p.send(t, n)
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		if got := ours[dir-1].count(t) - before[dir-1][0]; got != uint64(n) {
			t.Errorf("%s: our program saw %d packets, want %d", dir, got, n)
		}
		if got := theirs[dir-1](t) - before[dir-1][1]; got != uint64(n) {
			t.Errorf("%s: the other tool's classifier saw %d packets, want %d", dir, got, n)
		}
	}
}
