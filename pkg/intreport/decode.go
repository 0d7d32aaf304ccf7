package intreport

// Decode decodes a v0.5 or v2.0 Telemetry Report payload (the UDP payload)
// into out, replacing its contents and reusing out.Reports' memory. Inner and
// DomainData alias payload. On error out holds what was decoded before the
// failure and must not be trusted.
func Decode(payload []byte, out *Decoded) error {
	out.Reports = out.Reports[:0]
	out.Skipped = 0
	if len(payload) < 1 {
		return truncated("version", 0, 1, 0)
	}
	switch v := payload[0] >> 4; v {
	case 0:
		out.Format = V05
		return decodeV05(payload, out)
	case 2:
		out.Format = V20
		return decodeV20(payload, out)
	default:
		return &VersionError{Version: v}
	}
}

func (d *Decoded) next() *DecodedReport {
	if len(d.Reports) < cap(d.Reports) {
		d.Reports = d.Reports[:len(d.Reports)+1]
		r := &d.Reports[len(d.Reports)-1]
		*r = DecodedReport{}
		return r
	}
	d.Reports = append(d.Reports, DecodedReport{})
	return &d.Reports[len(d.Reports)-1]
}

func decodeV05(p []byte, out *Decoded) error {
	if len(p) < v05FixedLen {
		return truncated("v0.5 fixed header", 0, v05FixedLen, len(p))
	}
	r := out.next()
	r.NProto = p[0] & 0x0F
	r.InType = InnerEthernet
	r.Dropped = p[1]&flagDropped != 0
	r.Congested = p[1]&flagCongested != 0
	r.Tracked = p[1]&flagTracked != 0
	// The other 12 reserved bits are ignored: Intel puts ETRAP status there.
	r.HwID = p[3] & 0x3F
	r.Seq = be.Uint32(p[4:])
	r.IngressTS = uint64(be.Uint32(p[8:]))
	r.Kind = Flow
	if r.Dropped {
		r.Kind = Drop
	}

	switch r.NProto {
	case 0: // Ethernet follows the fixed header directly
		r.Inner = p[v05FixedLen:]
	case v05NProtoDrop:
		const end = v05FixedLen + v05DropLen
		if len(p) < end {
			return truncated("v0.5 drop report header", v05FixedLen, v05DropLen, len(p)-v05FixedLen)
		}
		r.Kind = Drop
		r.SwitchID = be.Uint32(p[12:])
		r.IngressPort = be.Uint16(p[16:])
		r.EgressPort = be.Uint16(p[18:])
		r.QueueID = p[20]
		r.DropReason = p[21]
		r.Inner = p[end:]
	case v05NProtoLocal:
		const end = v05FixedLen + v05LocalLen
		if len(p) < end {
			return truncated("v0.5 switch local report header", v05FixedLen, v05LocalLen, len(p)-v05FixedLen)
		}
		r.SwitchID = be.Uint32(p[12:])
		r.IngressPort = be.Uint16(p[16:])
		r.EgressPort = be.Uint16(p[18:])
		r.QueueID = p[20]
		r.QueueOccupancy = be.Uint32(p[20:]) & 0xFFFFFF
		egress := be.Uint32(p[24:])
		r.EgressTS = uint64(egress)
		r.HopLatency = egress - uint32(r.IngressTS) // mod 2^32, as collectors do
		r.Inner = p[end:]
	default:
		return malformed("v0.5 NProto", 0, "next protocol %d (want 0, 1 or 2)", r.NProto)
	}
	if len(r.Inner) == 0 {
		r.Inner = nil
	}
	return nil
}

func decodeV20(p []byte, out *Decoded) error {
	if len(p) < v20GroupLen {
		return truncated("v2.0 group header", 0, v20GroupLen, len(p))
	}
	w0 := be.Uint32(p)
	hwID := uint8(w0>>22) & 0x3F
	seq := w0 & 0x3FFFFF
	nodeID := be.Uint32(p[4:])
	if len(p) == v20GroupLen {
		return truncated("v2.0 individual report", v20GroupLen, v20IndivLen, 0)
	}
	for off := v20GroupLen; off < len(p); {
		if len(p)-off < v20IndivLen {
			return truncated("v2.0 individual report header", off, v20IndivLen, len(p)-off)
		}
		repType, inType := p[off]>>4, InnerType(p[off]&0x0F)
		end := len(p)
		if words := int(p[off+1]); words != 0xFF {
			end = off + v20IndivLen + 4*words
			if end > len(p) {
				return truncated("v2.0 individual report", off, end-off, len(p)-off)
			}
		}
		if repType != RepTypeINT && repType != RepTypeInnerOnly {
			out.Skipped++
			off = end
			continue
		}
		r := out.next()
		r.HwID, r.Seq, r.SwitchID = hwID, seq, nodeID
		if err := decodeIndividual(p, off, end, repType, inType, r); err != nil {
			return err
		}
		off = end
	}
	return nil
}

func decodeIndividual(p []byte, off, end int, repType uint8, inType InnerType, r *DecodedReport) error {
	mdWords, fl := int(p[off+2]), p[off+3]
	r.RepType, r.InType = repType, inType
	r.Dropped = fl&flagDropped != 0
	r.Congested = fl&flagCongested != 0
	r.Tracked = fl&flagTracked != 0
	r.Intermediate = fl&flagIntermediate != 0
	r.Kind = Flow
	if r.Dropped {
		r.Kind = Drop
	}
	if inType > InnerIPv6 {
		return malformed("v2.0 InType", off, "inner type %d (want 0..5)", inType)
	}

	contents := off + v20IndivLen
	if repType == RepTypeInnerOnly {
		if mdWords != 0 {
			return malformed("v2.0 MD length", off+2, "%d words in an inner-only report", mdWords)
		}
		return setInner(p[contents:end], contents, r)
	}

	if end-contents < v20MainLen {
		return truncated("v2.0 INT report contents", contents, v20MainLen, end-contents)
	}
	r.RepMdBits = be.Uint16(p[contents:])
	r.DomainID = be.Uint16(p[contents+2:])
	r.DSMdBits = be.Uint16(p[contents+4:])
	r.DSMdStatus = be.Uint16(p[contents+6:])
	mdStart := contents + v20MainLen
	mdEnd := mdStart + 4*mdWords
	if mdEnd > end {
		return truncated("v2.0 metadata", mdStart, 4*mdWords, end-mdStart)
	}
	if unknown := r.RepMdBits &^ mdKnownSizes; unknown != 0 {
		return &FieldError{Field: "v2.0 RepMdBits", Offset: contents,
			Detail: "bits " + hex16(unknown) + " have no known size", Err: ErrUnknownMetadata}
	}
	baseEnd := mdStart + bitsSize(r.RepMdBits, mdSize)
	if baseEnd > mdEnd {
		return malformed("v2.0 MD length", off+2, "%d words, RepMdBits %s need %d bytes",
			mdWords, hex16(r.RepMdBits), baseEnd-mdStart)
	}
	decodeBaseline(p[mdStart:baseEnd], r)

	r.DomainData = p[baseEnd:mdEnd]
	switch {
	case r.DomainID == 0 && len(r.DomainData) != 0:
		return malformed("v2.0 MD length", off+2, "%d bytes of domain-specific metadata without a Domain Specific ID",
			len(r.DomainData))
	case r.DomainID == NsintDomainID:
		if need := bitsSize(r.DSMdBits&dsKnownFields, dsSize); need > len(r.DomainData) {
			return malformed("v2.0 nsint metadata", baseEnd, "DSMdBits %s need %d bytes, have %d",
				hex16(r.DSMdBits), need, len(r.DomainData))
		}
		decodeNsint(r.DomainData, r)
	}
	return setInner(p[mdEnd:end], mdEnd, r)
}

func decodeBaseline(md []byte, r *DecodedReport) {
	bits, i := r.RepMdBits, 0
	if bits&MdPorts != 0 {
		r.IngressPort, r.EgressPort = be.Uint16(md[i:]), be.Uint16(md[i+2:])
		i += 4
	}
	if bits&MdHopLatency != 0 {
		r.HopLatency = be.Uint32(md[i:])
		i += 4
	}
	if bits&MdQueue != 0 {
		r.QueueID, r.QueueOccupancy = md[i], be.Uint32(md[i:])&0xFFFFFF
		i += 4
	}
	if bits&MdIngressTS != 0 {
		r.IngressTS = be.Uint64(md[i:])
		i += 8
	}
	if bits&MdEgressTS != 0 {
		r.EgressTS = be.Uint64(md[i:])
		i += 8
	}
	i += bitsSize(bits&(MdL2Ports|MdTxUtil|MdBuffer), mdSize) // sized, not modelled
	if bits&MdQueueDrop != 0 {
		r.QueueID, r.DropReason = md[i], md[i+1]
	}
}

func decodeNsint(ds []byte, r *DecodedReport) {
	bits, i := r.DSMdBits, 0
	if bits&DSPackets != 0 {
		r.Packets = be.Uint64(ds[i:])
		i += 8
	}
	if bits&DSBytes != 0 {
		r.Bytes = be.Uint64(ds[i:])
		i += 8
	}
	if bits&DSKernelDrop != 0 {
		r.KernelDropReason = be.Uint32(ds[i:])
		i += 4
	}
	if bits&DSObservation != 0 {
		r.ObservationPort, r.Direction = be.Uint16(ds[i:]), directionFromWire(ds[i+2])
	}
	// Lower bits are later additions: they follow and are skipped.
}

func setInner(inner []byte, off int, r *DecodedReport) error {
	if r.InType == InnerNone && len(inner) != 0 {
		return malformed("v2.0 inner contents", off, "%d bytes with InType none", len(inner))
	}
	if len(inner) != 0 {
		r.Inner = trimPadding(r.InType, inner)
	}
	return nil
}

func hex16(v uint16) string {
	const digits = "0123456789abcdef"
	return string([]byte{'0', 'x', digits[v>>12], digits[v>>8&0xF], digits[v>>4&0xF], digits[v&0xF]})
}
