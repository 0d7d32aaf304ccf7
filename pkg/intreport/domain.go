package intreport

// NsintDomainID is the v2.0 Domain Specific ID of nsint's metadata: 0x4E53 is
// "NS" in ASCII, easy to recognise in a capture and unlikely to collide with a
// switch vendor's small integers.
const NsintDomainID uint16 = 0x4E53

// DSMdBits of NsintDomainID. Fields follow in this order (most significant
// bit first), each present only when its bit is set.
const (
	DSPackets     uint16 = 0x8000 // packets since the previous report (64 bits)
	DSBytes       uint16 = 0x4000 // bytes since the previous report (64 bits)
	DSKernelDrop  uint16 = 0x2000 // raw kernel drop reason (32 bits)
	DSObservation uint16 = 0x1000 // observation port (16) + direction (8) + pad (8)
)

// v2.0 RepMdBits.
const (
	MdPorts       uint16 = 0x4000 // level-1 ingress + egress interface IDs
	MdHopLatency  uint16 = 0x2000
	MdQueue       uint16 = 0x1000 // queue ID + occupancy
	MdIngressTS   uint16 = 0x0800
	MdEgressTS    uint16 = 0x0400
	MdL2Ports     uint16 = 0x0200
	MdTxUtil      uint16 = 0x0100
	MdBuffer      uint16 = 0x0080
	MdQueueDrop   uint16 = 0x0001 // queue ID + drop reason + pad
	mdKnownSizes  uint16 = MdPorts | MdHopLatency | MdQueue | MdIngressTS | MdEgressTS | MdL2Ports | MdTxUtil | MdBuffer | MdQueueDrop
	dsKnownFields uint16 = DSPackets | DSBytes | DSKernelDrop | DSObservation
)

// mdSize returns the bytes of one RepMdBits bit, 0 when unknown.
func mdSize(bit uint16) int {
	switch bit {
	case MdPorts, MdHopLatency, MdQueue, MdTxUtil, MdBuffer, MdQueueDrop:
		return 4
	case MdIngressTS, MdEgressTS, MdL2Ports:
		return 8
	}
	return 0
}

// dsSize returns the bytes of one nsint DSMdBits bit, 0 when unknown.
func dsSize(bit uint16) int {
	switch bit {
	case DSPackets, DSBytes:
		return 8
	case DSKernelDrop, DSObservation:
		return 4
	}
	return 0
}

func bitsSize(bits uint16, size func(uint16) int) int {
	n := 0
	for bit := uint16(0x8000); bit != 0; bit >>= 1 {
		if bits&bit != 0 {
			n += size(bit)
		}
	}
	return n
}

// repMdBits is the baseline metadata the encoder sends for r. Bits whose
// value the node cannot supply stay clear: hop latency when HopLatency is 0,
// the egress timestamp when EgressTS is 0, the queue word when both QueueID
// and QueueOccupancy are 0.
func repMdBits(r *Report) uint16 {
	if r.Kind == Drop {
		return MdPorts | MdIngressTS | MdQueueDrop
	}
	bits := MdPorts | MdIngressTS
	if r.HopLatency != 0 {
		bits |= MdHopLatency
	}
	if r.QueueID != 0 || r.QueueOccupancy != 0 {
		bits |= MdQueue
	}
	if r.EgressTS != 0 {
		bits |= MdEgressTS
	}
	return bits
}

// dsMdBits is the nsint domain-specific metadata the encoder sends: each
// field when it is non-zero (kernel drop reason 0 is SKB_NOT_DROPPED_YET,
// never a drop), the observation point when port or direction is known.
func dsMdBits(r *Report) uint16 {
	var bits uint16
	if r.Packets != 0 {
		bits |= DSPackets
	}
	if r.Bytes != 0 {
		bits |= DSBytes
	}
	if r.KernelDropReason != 0 {
		bits |= DSKernelDrop
	}
	if r.Direction.Valid() || r.ObservationPort != 0 {
		bits |= DSObservation
	}
	return bits
}
