package agent

import (
	"encoding/binary"

	"github.com/nsint/nsint/pkg/datapath"
)

// IP protocol numbers synthesizeInner writes a header for.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// synthesizeInner writes into buf the headers of a packet of ev's flow — an
// Ethernet header with zero addresses, the IP header and the L4 header with
// the flow's ports (ICMP: type, code and echo identifier) — for a report
// that has no packet to show: the sweep's reports of quiet, ended and
// flushed flows. A collector reads the flow from it as from a captured
// packet. Lengths in the headers are those of the headers alone. Flows
// without IP addresses get only an Ethernet header.
func synthesizeInner(buf []byte, ev *datapath.Event) []byte {
	buf = buf[:0]
	buf = append(buf, make([]byte, 12)...)
	switch {
	case ev.Src.Is4():
		buf = binary.BigEndian.AppendUint16(buf, 0x0800)
	case ev.Src.Is6():
		buf = binary.BigEndian.AppendUint16(buf, 0x86dd)
	default:
		return binary.BigEndian.AppendUint16(buf, 0)
	}
	l4 := l4Header(ev)
	if ev.Src.Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		if ev.NonFirstFragment {
			binary.BigEndian.PutUint16(ip[6:], 1) // offset 8: no L4 header
		}
		ip[8] = 64
		ip[9] = ev.Proto
		src, dst := ev.Src.As4(), ev.Dst.As4()
		copy(ip[12:], src[:])
		copy(ip[16:], dst[:])
		buf = append(buf, ip...)
	} else {
		ip := make([]byte, 40)
		ip[0] = 0x60
		ip[6] = ev.Proto
		ip[7] = 64
		src, dst := ev.Src.As16(), ev.Dst.As16()
		copy(ip[8:], src[:])
		copy(ip[24:], dst[:])
		payload := len(l4)
		if ev.NonFirstFragment {
			ip[6] = 44 // a fragment header at offset 8: no L4 header
			frag := []byte{ev.Proto, 0, 0, 8, 0, 0, 0, 0}
			payload += len(frag)
			binary.BigEndian.PutUint16(ip[4:], uint16(payload))
			buf = append(append(buf, ip...), frag...)
			return append(buf, l4...)
		}
		binary.BigEndian.PutUint16(ip[4:], uint16(payload))
		buf = append(buf, ip...)
	}
	return append(buf, l4...)
}

// l4Header is the L4 header of ev's flow, none for a non-first fragment or a
// protocol without ports.
func l4Header(ev *datapath.Event) []byte {
	if ev.NonFirstFragment {
		return nil
	}
	var h []byte
	switch ev.Proto {
	case protoTCP:
		h = make([]byte, 20)
		h[12] = 5 << 4 // data offset: 5 words
	case protoUDP:
		h = make([]byte, 8)
		binary.BigEndian.PutUint16(h[4:], 8)
	case protoSCTP:
		h = make([]byte, 12)
	case protoICMP, protoICMPv6:
		h = make([]byte, 8)
		h[0], h[1] = byte(ev.SrcPort>>8), byte(ev.SrcPort)
		binary.BigEndian.PutUint16(h[4:], ev.DstPort)
		return h
	default:
		return nil
	}
	binary.BigEndian.PutUint16(h[0:], ev.SrcPort)
	binary.BigEndian.PutUint16(h[2:], ev.DstPort)
	return h
}
