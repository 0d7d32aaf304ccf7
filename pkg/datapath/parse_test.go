package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/netif"
)

type parseCase struct {
	name    string
	headers [][]byte // every boundary between two entries is a header boundary
	// expected flow key; proto 0 means "not reported"
	src, dst         netip.Addr
	proto            uint8
	sport, dport     uint16
	nonFirstFragment bool
}

func parseCases() []parseCase {
	v4a, v4b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	v6a, v6b := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	opts := []byte{0x01, 0x01, 0x01, 0x00, 0x94, 0x04, 0x00, 0x00} // NOP NOP NOP EOL, router alert
	return []parseCase{
		{name: "ipv4/tcp", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoTCP, v4a, v4b, nil, 0, false), tcpHdr(40000, 443)},
			src: v4a, dst: v4b, proto: protoTCP, sport: 40000, dport: 443},
		{name: "ipv4/udp", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoUDP, v4a, v4b, nil, 0, false), udpHdr(5353, 53)},
			src: v4a, dst: v4b, proto: protoUDP, sport: 5353, dport: 53},
		{name: "ipv4/sctp", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoSCTP, v4a, v4b, nil, 0, false), sctpHdr(3868, 3869)},
			src: v4a, dst: v4b, proto: protoSCTP, sport: 3868, dport: 3869},
		{name: "ipv4/icmp-echo", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoICMP, v4a, v4b, nil, 0, false), icmpHdr(8, 0, 0x1234)},
			src: v4a, dst: v4b, proto: protoICMP, sport: 8 << 8, dport: 0x1234},
		{name: "ipv4/icmp-unreachable", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoICMP, v4a, v4b, nil, 0, false), icmpHdr(3, 3, 0x1234)},
			src: v4a, dst: v4b, proto: protoICMP, sport: 3<<8 | 3, dport: 0},
		{name: "ipv4/options/udp", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoUDP, v4a, v4b, opts, 0, false), udpHdr(1, 2)},
			src: v4a, dst: v4b, proto: protoUDP, sport: 1, dport: 2},
		{name: "ipv4/first-fragment/udp", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoUDP, v4a, v4b, nil, 0, true), udpHdr(7, 8)},
			src: v4a, dst: v4b, proto: protoUDP, sport: 7, dport: 8},
		{name: "ipv4/non-first-fragment", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoUDP, v4a, v4b, nil, 185, false)},
			src: v4a, dst: v4b, proto: protoUDP, nonFirstFragment: true},
		{name: "ipv4/gre-no-ports", headers: [][]byte{ethHdr(etherIPv4), ipv4Hdr(protoGRE, v4a, v4b, nil, 0, false)},
			src: v4a, dst: v4b, proto: protoGRE},
		{name: "vlan/ipv4/udp", headers: [][]byte{ethHdr(etherIPv4, ether1Q), ipv4Hdr(protoUDP, v4a, v4b, nil, 0, false), udpHdr(11, 12)},
			src: v4a, dst: v4b, proto: protoUDP, sport: 11, dport: 12},
		{name: "qinq/ipv4/tcp", headers: [][]byte{ethHdr(etherIPv4, ether1AD, ether1Q), ipv4Hdr(protoTCP, v4a, v4b, nil, 0, false), tcpHdr(13, 14)},
			src: v4a, dst: v4b, proto: protoTCP, sport: 13, dport: 14},
		{name: "ipv6/tcp", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(protoTCP, v6a, v6b), tcpHdr(50000, 80)},
			src: v6a, dst: v6b, proto: protoTCP, sport: 50000, dport: 80},
		{name: "ipv6/udp", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(protoUDP, v6a, v6b), udpHdr(546, 547)},
			src: v6a, dst: v6b, proto: protoUDP, sport: 546, dport: 547},
		{name: "ipv6/sctp", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(protoSCTP, v6a, v6b), sctpHdr(36412, 36412)},
			src: v6a, dst: v6b, proto: protoSCTP, sport: 36412, dport: 36412},
		{name: "ipv6/icmpv6-echo", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(protoICMPv6, v6a, v6b), icmpHdr(128, 0, 0xbeef)},
			src: v6a, dst: v6b, proto: protoICMPv6, sport: 128 << 8, dport: 0xbeef},
		{name: "ipv6/hop-routing-dest/udp", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(0, v6a, v6b),
			ipv6Opts(43, 0), ipv6Opts(60, 2), ipv6Opts(protoUDP, 1), udpHdr(21, 22)},
			src: v6a, dst: v6b, proto: protoUDP, sport: 21, dport: 22},
		{name: "ipv6/first-fragment/tcp", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(44, v6a, v6b), ipv6Frag(protoTCP, 0, true), tcpHdr(23, 24)},
			src: v6a, dst: v6b, proto: protoTCP, sport: 23, dport: 24},
		{name: "ipv6/non-first-fragment", headers: [][]byte{ethHdr(etherIPv6), ipv6Hdr(0, v6a, v6b), ipv6Opts(44, 0), ipv6Frag(protoUDP, 100, false)},
			src: v6a, dst: v6b, proto: protoUDP, nonFirstFragment: true},
		{name: "vlan/ipv6/udp", headers: [][]byte{ethHdr(etherIPv6, ether1Q), ipv6Hdr(protoUDP, v6a, v6b), udpHdr(31, 32)},
			src: v6a, dst: v6b, proto: protoUDP, sport: 31, dport: 32},
	}
}

// TestParse runs every parse path through dispatcher→main on both hooks and
// checks the reported flow key, counters and captured bytes.
func TestParse(t *testing.T) {
	h := newHarness(t, Config{})
	for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
		for _, c := range parseCases() {
			t.Run(dir.String()+"/"+c.name, func(t *testing.T) {
				h.tb = t
				frame := concat(append(c.headers, bytes.Repeat([]byte{0xa5}, 200))...)
				h.run(hPortA, dir, frame, nil)
				ev := h.next()
				wantIn, wantOut := uint16(hPortA), uint16(hLocalPort)
				if dir == netif.Egress {
					wantIn, wantOut = hLocalPort, hPortA
				}
				got := fmt.Sprintf("%s %s %s port=%d in=%d out=%d %s>%s proto=%d %d>%d frag=%v pkts=%d bytes=%d len=%d",
					ev.Type, ev.Reason, ev.Direction, ev.Port, ev.InPort, ev.OutPort, ev.Src, ev.Dst, ev.Proto,
					ev.SrcPort, ev.DstPort, ev.NonFirstFragment, ev.Packets, ev.Bytes, ev.Len)
				want := fmt.Sprintf("flow new %s port=%d in=%d out=%d %s>%s proto=%d %d>%d frag=%v pkts=1 bytes=%d len=%d",
					dir, hPortA, wantIn, wantOut, c.src, c.dst, c.proto, c.sport, c.dport, c.nonFirstFragment,
					len(frame), len(frame))
				if got != want {
					t.Errorf("event\n got %s\nwant %s", got, want)
				}
				if !bytes.Equal(ev.Data, frame[:DefaultSnapLen]) {
					t.Errorf("captured %d bytes, want the frame's first %d", len(ev.Data), DefaultSnapLen)
				}
				if ev.HasHopLatency {
					t.Errorf("hop latency on a packet seen by one hook: %v", ev.HopLatency)
				}
				h.none("after the first packet")
			})
		}
	}
}

// TestSnapLen: a report carries the frame's first SnapLen bytes, or the
// whole frame when it is shorter, from one byte to MaxSnapLen.
func TestSnapLen(t *testing.T) {
	for _, snap := range []uint16{1, 100, MaxSnapLen} {
		t.Run(fmt.Sprint(snap), func(t *testing.T) {
			h := newHarness(t, Config{SnapLen: snap})
			for i, payload := range []int{0, 60, 1400} {
				frame := udpFrame("198.18.0.1", "198.18.0.2", uint16(4000+i), 53, payload)
				for j := range frame[42:] {
					frame[42+j] = byte(j)
				}
				h.run(hPortA, netif.Ingress, frame, nil)
				ev := h.next()
				want := frame[:min(len(frame), int(snap))]
				if !bytes.Equal(ev.Data, want) || ev.Len != uint32(len(frame)) {
					t.Errorf("frame of %d bytes: captured %d bytes (len %d), want its first %d", len(frame), len(ev.Data), ev.Len, len(want))
				}
			}
		})
	}
}

// TestTruncated cuts every frame at every length below its full header
// stack: no report, verdict unchanged (checked by run).
func TestTruncated(t *testing.T) {
	h := newHarness(t, Config{})
	before, err := h.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	runs := 0
	for _, c := range parseCases() {
		full := concat(c.headers...)
		for n := 14; n < len(full); n++ {
			for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
				err := h.tryRun(hPortA, dir, full[:n], nil, 1)
				switch {
				case err == nil:
					runs++
				case errors.Is(err, unix.EINVAL) && kernelRefuses(full[:n]):
				default:
					t.Fatalf("%s cut at %d: %v", c.name, n, err)
				}
			}
		}
		h.tb = t
		h.none(c.name + " truncated")
	}
	for _, frame := range [][]byte{
		concat(ethHdr(etherARP), make([]byte, 28)), // not IP
		concat(ethHdr(etherIPv4), ipv4Hdr(protoUDP, netip.IPv4Unspecified(), netip.IPv4Unspecified(), nil, 0, false)[:20], udpHdr(1, 2))[:14+20+7], // short UDP
	} {
		h.run(hPortA, netif.Ingress, frame, nil)
		runs++
	}
	h.none("non-IP / short")
	after, err := h.d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if got := after.Unparsed - before.Unparsed; got != uint64(runs) {
		t.Errorf("unparsed counter rose by %d, want %d", got, runs)
	}
	if after.Reports != before.Reports {
		t.Errorf("reports counter rose by %d, want 0", after.Reports-before.Reports)
	}
}

// TestBadIPHeaders: wrong version and IHL below 5 are not reported.
func TestBadIPHeaders(t *testing.T) {
	h := newHarness(t, Config{})
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	badVersion := ipv4Hdr(protoUDP, a, b, nil, 0, false)
	badVersion[0] = 0x65
	shortIHL := ipv4Hdr(protoUDP, a, b, nil, 0, false)
	shortIHL[0] = 0x44
	tooManyExt := concat(ethHdr(etherIPv6), ipv6Hdr(60, netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")))
	for range 7 {
		tooManyExt = append(tooManyExt, ipv6Opts(60, 0)...)
	}
	tooManyExt = append(tooManyExt, udpHdr(1, 2)...)
	for name, frame := range map[string][]byte{
		"version":    concat(ethHdr(etherIPv4), badVersion, udpHdr(1, 2)),
		"ihl":        concat(ethHdr(etherIPv4), shortIHL, udpHdr(1, 2)),
		"ipv6 chain": tooManyExt,
	} {
		h.run(hPortA, netif.Ingress, frame, nil)
		h.none(name)
	}
}
