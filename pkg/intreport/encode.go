package intreport

import "encoding/binary"

var be = binary.BigEndian

// Header sizes in bytes.
const (
	v05FixedLen      = 12
	v05DropLen       = 12
	v05LocalLen      = 16
	v20GroupLen      = 8
	v20IndivLen      = 4
	v20MainLen       = 8 // RepMdBits, Domain Specific ID, DSMdBits, DSMdStatus
	v20MaxBaseline   = 4 + 4 + 4 + 8 + 8 + 4
	v20MaxDomain     = 8 + 8 + 4 + 4
	v05NProtoDrop    = 1
	v05NProtoLocal   = 2
	flagDropped      = 0x80
	flagCongested    = 0x40
	flagTracked      = 0x20
	flagIntermediate = 0x10
)

// MaxPayloadLen is the longest payload Append produces: size buffers with it
// (make([]byte, 0, MaxPayloadLen)) and encoding never allocates.
const MaxPayloadLen = v20GroupLen + v20IndivLen + v20MainLen + v20MaxBaseline + v20MaxDomain + MaxInner

func innerOf(r *Report) []byte {
	if len(r.Inner) > MaxInner {
		return r.Inner[:MaxInner]
	}
	return r.Inner
}

func flags(r *Report) byte {
	var f byte
	if r.Kind == Drop {
		f |= flagDropped
	}
	if r.Tracked {
		f |= flagTracked
	}
	return f
}

// AppendV05 appends r as a Telemetry Report v0.5 payload: a Drop Report
// (NProto 1, D=1) for Kind Drop, a Switch Local Report (NProto 2) otherwise,
// F = r.Tracked. Timestamps carry their low 32 bits; when EgressTS is 0 the
// egress timestamp is IngressTS+HopLatency so collectors computing
// egress−ingress see the hop latency. The inner frame is not padded.
// Domain-specific fields are not sent: v0.5 has nowhere standard for them.
func AppendV05(dst []byte, r *Report) []byte {
	nproto := byte(v05NProtoLocal)
	if r.Kind == Drop {
		nproto = v05NProtoDrop
	}
	dst = append(dst, nproto, flags(r), 0, r.HwID&0x3F)
	dst = be.AppendUint32(dst, r.Seq)
	dst = be.AppendUint32(dst, uint32(r.IngressTS))
	dst = be.AppendUint32(dst, r.SwitchID)
	dst = be.AppendUint16(dst, r.IngressPort)
	dst = be.AppendUint16(dst, r.EgressPort)
	if r.Kind == Drop {
		dst = append(dst, r.QueueID, r.DropReason, 0, 0)
	} else {
		dst = be.AppendUint32(dst, uint32(r.QueueID)<<24|r.QueueOccupancy&0xFFFFFF)
		egress := uint32(r.EgressTS)
		if r.EgressTS == 0 {
			egress = uint32(r.IngressTS) + r.HopLatency
		}
		dst = be.AppendUint32(dst, egress)
	}
	return append(dst, innerOf(r)...)
}

// AppendV20 appends r as a Telemetry Report v2.0 payload: a group header and
// one INT individual report (RepType 1) with InType Ethernet (or none when
// Inner is empty), D = (Kind == Drop), F = r.Tracked. Baseline metadata is
// chosen by repMdBits, nsint domain-specific metadata by dsMdBits; the inner
// frame is zero-padded to a 4-byte word.
func AppendV20(dst []byte, r *Report) []byte {
	md, ds := repMdBits(r), dsMdBits(r)
	inner := innerOf(r)
	pad := (4 - len(inner)%4) % 4
	mdLen := bitsSize(md, mdSize) + bitsSize(ds, dsSize)
	repWords := (v20MainLen + mdLen + len(inner) + pad) / 4
	inType := InnerEthernet
	if len(inner) == 0 {
		inType = InnerNone
	}
	domainID := NsintDomainID
	if ds == 0 {
		domainID = 0
	}

	dst = be.AppendUint32(dst, 2<<28|uint32(r.HwID&0x3F)<<22|r.Seq&0x3FFFFF)
	dst = be.AppendUint32(dst, r.SwitchID)
	dst = append(dst, RepTypeINT<<4|byte(inType), byte(repWords), byte(mdLen/4), flags(r))
	dst = be.AppendUint16(dst, md)
	dst = be.AppendUint16(dst, domainID)
	dst = be.AppendUint16(dst, ds)
	dst = be.AppendUint16(dst, 0) // DSMdStatus

	// Baseline metadata in RepMdBits order.
	dst = be.AppendUint16(dst, r.IngressPort)
	dst = be.AppendUint16(dst, r.EgressPort)
	if md&MdHopLatency != 0 {
		dst = be.AppendUint32(dst, r.HopLatency)
	}
	if md&MdQueue != 0 {
		dst = be.AppendUint32(dst, uint32(r.QueueID)<<24|r.QueueOccupancy&0xFFFFFF)
	}
	dst = be.AppendUint64(dst, r.IngressTS)
	if md&MdEgressTS != 0 {
		dst = be.AppendUint64(dst, r.EgressTS)
	}
	if md&MdQueueDrop != 0 {
		dst = append(dst, r.QueueID, r.DropReason, 0, 0)
	}

	// Domain-specific metadata in DSMdBits order.
	if ds&DSPackets != 0 {
		dst = be.AppendUint64(dst, r.Packets)
	}
	if ds&DSBytes != 0 {
		dst = be.AppendUint64(dst, r.Bytes)
	}
	if ds&DSKernelDrop != 0 {
		dst = be.AppendUint32(dst, r.KernelDropReason)
	}
	if ds&DSObservation != 0 {
		dst = be.AppendUint16(dst, r.ObservationPort)
		dst = append(dst, wireDirection(r.Direction), 0)
	}

	dst = append(dst, inner...)
	return append(dst, make([]byte, pad)...) // the compiler turns append(make) into a clear: no allocation
}

// Append appends r in format f. An unknown format appends nothing.
func Append(dst []byte, f Format, r *Report) []byte {
	switch f {
	case V05:
		return AppendV05(dst, r)
	case V20:
		return AppendV20(dst, r)
	}
	return dst
}

// SetSequence patches the sequence number of an encoded v0.5 or v2.0
// payload in place; v2.0 keeps the low 22 bits of seq.
func SetSequence(payload []byte, seq uint32) error {
	if len(payload) < 8 {
		return &FieldError{Field: "sequence number", Offset: 0, Need: 8, Have: len(payload), Err: ErrTruncated}
	}
	switch v := payload[0] >> 4; v {
	case 0:
		be.PutUint32(payload[4:], seq)
	case 2:
		w0 := be.Uint32(payload)
		be.PutUint32(payload, w0&^0x3FFFFF|seq&0x3FFFFF)
	default:
		return &VersionError{Version: v}
	}
	return nil
}
