package datapath

import (
	"encoding/binary"
	"net/netip"
)

// Builders for crafted test frames. Checksums are left zero: the programs
// never look at them.

var (
	macDst = []byte{0x02, 0, 0, 0, 0, 0x02}
	macSrc = []byte{0x02, 0, 0, 0, 0, 0x01}
)

const (
	etherIPv4 = 0x0800
	etherIPv6 = 0x86dd
	etherARP  = 0x0806
	ether1Q   = 0x8100
	ether1AD  = 0x88a8

	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoGRE    = 47
	protoSCTP   = 132
	protoICMPv6 = 58
)

// ethHdr returns an Ethernet header with the given VLAN tags (outer first).
func ethHdr(etherType uint16, tags ...uint16) []byte {
	b := append(append([]byte{}, macDst...), macSrc...)
	for _, tpid := range tags {
		b = binary.BigEndian.AppendUint16(b, tpid)
		b = binary.BigEndian.AppendUint16(b, 100) // VLAN ID
	}
	return binary.BigEndian.AppendUint16(b, etherType)
}

// ipv4Hdr returns an IPv4 header with options (multiple of 4 bytes) and the
// fragment offset in 8-byte units.
func ipv4Hdr(proto uint8, src, dst netip.Addr, opts []byte, fragOffset uint16, more bool) []byte {
	b := make([]byte, 20, 20+len(opts))
	b[0] = 0x40 | byte((20+len(opts))/4)
	binary.BigEndian.PutUint16(b[2:], 1500)
	frag := fragOffset & 0x1fff
	if more {
		frag |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	return append(b, opts...)
}

func ipv6Hdr(next uint8, src, dst netip.Addr) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], 1000)
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

// ipv6Opts is a hop-by-hop, routing or destination-options header of
// 8*(1+extra) bytes.
func ipv6Opts(next uint8, extra uint8) []byte {
	b := make([]byte, 8*(1+int(extra)))
	b[0] = next
	b[1] = extra
	return b
}

func ipv6Frag(next uint8, offset uint16, more bool) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	return b
}

func tcpHdr(sport, dport uint16) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12] = 5 << 4
	b[13] = 0x02 // SYN
	return b
}

func udpHdr(sport, dport uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], 8)
	return b
}

func sctpHdr(sport, dport uint16) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	return b
}

func icmpHdr(typ, code uint8, id uint16) []byte {
	b := make([]byte, 8)
	b[0], b[1] = typ, code
	binary.BigEndian.PutUint16(b[4:], id)
	return b
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}
