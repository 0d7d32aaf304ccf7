package intreport

// trimPadding removes the zero padding a v2.0 report adds to reach a word
// boundary, when the inner packet's own length fields say where it ends:
// the IPv4 total length or IPv6 payload length, after an Ethernet header
// (with up to two VLAN tags) for InnerEthernet. At most 3 bytes are removed
// and only zero bytes; anything else is returned unchanged, so an inner
// packet whose end cannot be told keeps up to 3 trailing pad bytes.
func trimPadding(t InnerType, b []byte) []byte {
	l3 := 0
	switch t {
	case InnerEthernet:
		l3 = 14
		if len(b) < l3 {
			return b
		}
		etherType := be.Uint16(b[12:])
		for tags := 0; tags < 2 && (etherType == 0x8100 || etherType == 0x88A8); tags++ {
			if len(b) < l3+4 {
				return b
			}
			etherType = be.Uint16(b[l3+2:])
			l3 += 4
		}
		switch etherType {
		case 0x0800:
			t = InnerIPv4
		case 0x86DD:
			t = InnerIPv6
		default:
			return b
		}
	case InnerIPv4, InnerIPv6:
	default:
		return b
	}

	end := 0
	switch t {
	case InnerIPv4:
		if len(b) < l3+4 || b[l3]>>4 != 4 {
			return b
		}
		end = l3 + int(be.Uint16(b[l3+2:]))
	case InnerIPv6:
		if len(b) < l3+6 || b[l3]>>4 != 6 {
			return b
		}
		end = l3 + 40 + int(be.Uint16(b[l3+4:]))
	}
	if end >= len(b) || len(b)-end > 3 {
		return b
	}
	for _, c := range b[end:] {
		if c != 0 {
			return b
		}
	}
	return b[:end]
}
