package flowkey

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// Layer says what the first byte of a buffer given to Parse is.
type Layer uint8

// Layers an INT report's inner contents may start with.
const (
	LayerEthernet Layer = iota
	LayerIPv4
	LayerIPv6
)

// IP protocol numbers the collector names.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoUDP    uint8 = 17
	ProtoICMPv6 uint8 = 58
	ProtoSCTP   uint8 = 132
)

// EtherTypes of interest.
const (
	EtherTypeIPv4 uint16 = 0x0800
	EtherTypeIPv6 uint16 = 0x86DD
	etherTypeVLAN uint16 = 0x8100
	etherTypeQinQ uint16 = 0x88A8
	etherType9100 uint16 = 0x9100
)

// maxVLANTags bounds how many stacked tags Parse walks through.
const maxVLANTags = 4

// Tuple is the flow identity of a packet. Src and Dst are invalid (zero
// netip.Addr) for non-IP frames; ports are 0 for protocols without them.
// For ICMP/ICMPv6 SrcPort holds the type and DstPort the code.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Proto            uint8
	EtherType        uint16
	VLAN             uint16 // outermost VLAN ID, 0 when untagged
	// IPLength is the packet's length from its IP header (IPv4 total length or
	// IPv6 payload length + 40), 0 when unknown. Truncated reports keep it.
	IPLength uint16
}

// IsIP reports whether the tuple came from an IP packet.
func (t *Tuple) IsIP() bool { return t.Src.IsValid() }

// ProtoName names an IP protocol number ("tcp", "udp", …) or gives its number.
func ProtoName(p uint8) string {
	switch p {
	case ProtoTCP:
		return "tcp"
	case ProtoUDP:
		return "udp"
	case ProtoSCTP:
		return "sctp"
	case ProtoICMP:
		return "icmp"
	case ProtoICMPv6:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

// ParseProto is the inverse of ProtoName; it also accepts decimal numbers.
func ParseProto(s string) (uint8, bool) {
	switch s {
	case "tcp", "TCP":
		return ProtoTCP, true
	case "udp", "UDP":
		return ProtoUDP, true
	case "sctp", "SCTP":
		return ProtoSCTP, true
	case "icmp", "ICMP":
		return ProtoICMP, true
	case "icmpv6", "ICMPv6", "ICMPV6":
		return ProtoICMPv6, true
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, false
	}
	return uint8(n), true
}

// Parse fills t from b, which starts at layer first. It returns false when b
// is too short to hold even the network addresses (t then holds what was
// found: for a non-IP Ethernet frame, its EtherType).
func Parse(b []byte, first Layer, t *Tuple) bool {
	*t = Tuple{}
	switch first {
	case LayerIPv4:
		t.EtherType = EtherTypeIPv4
		return parseIPv4(b, t)
	case LayerIPv6:
		t.EtherType = EtherTypeIPv6
		return parseIPv6(b, t)
	}
	if len(b) < 14 {
		return false
	}
	et := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	for i := 0; i < maxVLANTags && (et == etherTypeVLAN || et == etherTypeQinQ || et == etherType9100); i++ {
		if len(b) < 4 {
			return false
		}
		if t.VLAN == 0 {
			t.VLAN = binary.BigEndian.Uint16(b[0:2]) & 0x0FFF
		}
		et = binary.BigEndian.Uint16(b[2:4])
		b = b[4:]
	}
	t.EtherType = et
	switch et {
	case EtherTypeIPv4:
		return parseIPv4(b, t)
	case EtherTypeIPv6:
		return parseIPv6(b, t)
	}
	return false
}

func parseIPv4(b []byte, t *Tuple) bool {
	if len(b) < 20 || b[0]>>4 != 4 {
		return false
	}
	ihl := int(b[0]&0x0F) * 4
	t.IPLength = binary.BigEndian.Uint16(b[2:4])
	t.Proto = b[9]
	t.Src = netip.AddrFrom4([4]byte(b[12:16]))
	t.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	// Only the first fragment carries the L4 header.
	if binary.BigEndian.Uint16(b[6:8])&0x1FFF != 0 || ihl < 20 || len(b) < ihl {
		return true
	}
	parseL4(b[ihl:], t)
	return true
}

// ipv6 extension headers Parse walks through to reach the L4 header.
const (
	ipv6HopByHop = 0
	ipv6Routing  = 43
	ipv6Fragment = 44
	ipv6DestOpts = 60
	maxIPv6Ext   = 8
)

func parseIPv6(b []byte, t *Tuple) bool {
	if len(b) < 40 || b[0]>>4 != 6 {
		return false
	}
	t.IPLength = binary.BigEndian.Uint16(b[4:6]) + 40
	t.Src = netip.AddrFrom16([16]byte(b[8:24]))
	t.Dst = netip.AddrFrom16([16]byte(b[24:40]))
	next := b[6]
	b = b[40:]
	for i := 0; i < maxIPv6Ext; i++ {
		switch next {
		case ipv6HopByHop, ipv6Routing, ipv6DestOpts:
			if len(b) < 8 {
				t.Proto = next
				return true
			}
			n := (int(b[1]) + 1) * 8
			if len(b) < n {
				t.Proto = b[0]
				return true
			}
			next, b = b[0], b[n:]
			continue
		case ipv6Fragment:
			if len(b) < 8 {
				t.Proto = next
				return true
			}
			t.Proto = b[0]
			if binary.BigEndian.Uint16(b[2:4])&0xFFF8 != 0 {
				return true // not the first fragment: no L4 header
			}
			next, b = b[0], b[8:]
			continue
		}
		break
	}
	t.Proto = next
	parseL4(b, t)
	return true
}

func parseL4(b []byte, t *Tuple) {
	switch t.Proto {
	case ProtoTCP, ProtoUDP, ProtoSCTP:
		if len(b) >= 4 {
			t.SrcPort = binary.BigEndian.Uint16(b[0:2])
			t.DstPort = binary.BigEndian.Uint16(b[2:4])
		}
	case ProtoICMP, ProtoICMPv6:
		if len(b) >= 2 {
			t.SrcPort = uint16(b[0])
			t.DstPort = uint16(b[1])
		}
	}
}
