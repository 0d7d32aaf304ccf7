package flowkey

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

func eth(etherType uint16, vlans ...uint16) []byte {
	b := make([]byte, 12)
	for _, v := range vlans {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return binary.BigEndian.AppendUint16(b, etherType)
}

func ipv4(proto uint8, src, dst string, fragOff uint16, payloadLen int) []byte {
	h := make([]byte, 20)
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+payloadLen))
	binary.BigEndian.PutUint16(h[6:], fragOff)
	h[9] = proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return h
}

func ipv6(next uint8, src, dst string, payloadLen int) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(payloadLen))
	h[6] = next
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return h
}

func ports(sp, dp uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, sp), dp)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name  string
		b     []byte
		first Layer
		ok    bool
		want  Tuple
	}{
		{"ipv4 tcp", cat(eth(0x0800), ipv4(6, "198.18.0.1", "198.18.0.2", 0, 20), ports(1000, 80)), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), SrcPort: 1000, DstPort: 80,
				Proto: ProtoTCP, EtherType: 0x0800, IPLength: 40}},
		{"qinq ipv4 udp", cat(eth(0x0800, 100, 200), ipv4(17, "198.18.0.1", "198.18.0.2", 0, 8), ports(53, 5353)), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), SrcPort: 53, DstPort: 5353,
				Proto: ProtoUDP, EtherType: 0x0800, VLAN: 100, IPLength: 28}},
		{"ipv4 later fragment has no ports", cat(eth(0x0800), ipv4(17, "198.18.0.1", "198.18.0.2", 100, 8), ports(53, 5353)), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), Proto: ProtoUDP, EtherType: 0x0800, IPLength: 28}},
		{"ipv4 icmp echo", cat(eth(0x0800), ipv4(1, "198.18.0.1", "198.18.0.2", 0, 8), []byte{8, 0, 0, 0}), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), SrcPort: 8, Proto: ProtoICMP,
				EtherType: 0x0800, IPLength: 28}},
		{"ipv6 sctp after hop-by-hop", cat(eth(0x86DD), ipv6(0, "fd00::1", "fd00::2", 20), []byte{132, 0, 0, 0, 0, 0, 0, 0}, ports(36412, 38412)), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), SrcPort: 36412, DstPort: 38412,
				Proto: ProtoSCTP, EtherType: 0x86DD, IPLength: 60}},
		{"ipv6 first fragment", cat(ipv6(44, "fd00::1", "fd00::2", 16), []byte{6, 0, 0, 1, 0, 0, 0, 1}, ports(1, 2)), LayerIPv6, true,
			Tuple{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), SrcPort: 1, DstPort: 2,
				Proto: ProtoTCP, EtherType: 0x86DD, IPLength: 56}},
		{"ipv6 icmpv6 inner type", cat(ipv6(58, "fd00::1", "fd00::2", 8), []byte{128, 0}), LayerIPv6, true,
			Tuple{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), SrcPort: 128, Proto: ProtoICMPv6,
				EtherType: 0x86DD, IPLength: 48}},
		{"truncated l4 keeps addresses", cat(eth(0x0800), ipv4(6, "198.18.0.1", "198.18.0.2", 0, 20), []byte{1}), LayerEthernet, true,
			Tuple{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"), Proto: ProtoTCP, EtherType: 0x0800, IPLength: 40}},
		{"arp", cat(eth(0x0806), make([]byte, 28)), LayerEthernet, false, Tuple{EtherType: 0x0806}},
		{"truncated ip header", cat(eth(0x0800), make([]byte, 10)), LayerEthernet, false, Tuple{EtherType: 0x0800}},
		{"short ethernet", make([]byte, 13), LayerEthernet, false, Tuple{}},
		{"wrong ip version", cat(eth(0x0800), ipv6(6, "fd00::1", "fd00::2", 0)), LayerEthernet, false, Tuple{EtherType: 0x0800}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Tuple
			ok := Parse(tc.b, tc.first, &got)
			if ok != tc.ok || got != tc.want {
				t.Errorf("Parse = %v %+v, want %v %+v", ok, got, tc.ok, tc.want)
			}
		})
	}
}

func TestProtoNames(t *testing.T) {
	for _, p := range []uint8{ProtoTCP, ProtoUDP, ProtoSCTP, ProtoICMP, ProtoICMPv6, 47} {
		got, ok := ParseProto(ProtoName(p))
		if !ok || got != p {
			t.Errorf("ParseProto(ProtoName(%d)) = %d %v", p, got, ok)
		}
	}
	if _, ok := ParseProto("tcpx"); ok {
		t.Error("ParseProto accepted tcpx")
	}
	if _, ok := ParseProto("256"); ok {
		t.Error("ParseProto accepted 256")
	}
}

func BenchmarkParse(b *testing.B) {
	f := cat(eth(0x0800), ipv4(6, "198.18.0.1", "198.18.0.2", 0, 20), ports(1000, 80), make([]byte, 16))
	var t Tuple
	b.ReportAllocs()
	for b.Loop() {
		Parse(f, LayerEthernet, &t)
	}
}
