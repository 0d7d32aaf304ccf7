package intreport

import (
	"errors"
	"testing"
)

// w builds bytes from words and byte slices, written by hand so these tests
// do not depend on the encoder.
func w(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case uint32:
			b = be.AppendUint32(b, v)
		case uint16:
			b = be.AppendUint16(b, v)
		case byte:
			b = append(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic("w: unsupported part")
		}
	}
	return b
}

func TestV20SeveralReportsPerGroup(t *testing.T) {
	ipv6 := append([]byte{0x60, 0, 0, 0, 0, 2, 17, 64}, make([]byte, 32+2)...) // 42 bytes, padded to 44
	payload := w(
		uint32(2<<28|3<<22|77), uint32(0xCAFE0001), // group: hw 3, seq 77
		// 1: INT flow report, ports + hop latency, no inner.
		byte(0x10), byte(4), byte(2), byte(0x20), uint16(0x6000), uint16(0), uint16(0), uint16(0),
		uint16(11), uint16(12), uint32(1000),
		// 2: IOAM report of 2 words: skipped.
		byte(0x23), byte(2), byte(0), byte(0), uint32(0xFFFFFFFF), uint32(0xFFFFFFFF),
		// 3: INT drop with L2 ports, tx util, buffer (sized, skipped), drop word, another
		//    vendor's 2 words of domain metadata, IPv6 inner.
		byte(0x15), byte(2+5+2+11), byte(5+2), byte(0x80),
		uint16(0x0381), uint16(0x1234), uint16(0xC000), uint16(0),
		uint32(0xAAAAAAAA), uint32(0xBBBBBBBB), uint32(0xCCCCCCCC), uint32(0xDDDDDDDD),
		byte(9), byte(71), uint16(0), uint32(0x01020304), uint32(0x05060708),
		ipv6, uint16(0),
		// 4: inner-only report, Ethernet.
		byte(0x03), byte(4), byte(0), byte(0), tcpSYN[:16],
		// 5: nsint metadata with a field from a future version (bit 0x0800),
		//    report length 0xFF: runs to the end.
		byte(0x10), byte(0xFF), byte(2+2), byte(0x00), uint16(0x0800), NsintDomainID, uint16(0x2800), uint16(0),
		uint32(5), uint32(6), uint32(0x3B), uint32(0xFEEDFACE),
	)
	var d Decoded
	if err := Decode(payload, &d); err != nil {
		t.Fatal(err)
	}
	if d.Format != V20 || len(d.Reports) != 4 || d.Skipped != 1 {
		t.Fatalf("format %v, %d reports, %d skipped; want v2.0, 4, 1", d.Format, len(d.Reports), d.Skipped)
	}
	for i, r := range d.Reports {
		if r.HwID != 3 || r.Seq != 77 || r.SwitchID != 0xCAFE0001 {
			t.Errorf("report %d: group fields hw %d seq %d node %#x", i+1, r.HwID, r.Seq, r.SwitchID)
		}
	}
	r1, r3, r4, r5 := d.Reports[0], d.Reports[1], d.Reports[2], d.Reports[3]
	if r1.Kind != Flow || !r1.Tracked || r1.IngressPort != 11 || r1.EgressPort != 12 || r1.HopLatency != 1000 ||
		r1.InType != InnerNone || r1.Inner != nil {
		t.Errorf("report 1: %+v", r1)
	}
	if r3.Kind != Drop || r3.QueueID != 9 || r3.DropReason != 71 || r3.InType != InnerIPv6 || len(r3.Inner) != 42 ||
		r3.DomainID != 0x1234 || len(r3.DomainData) != 8 || r3.DomainData[0] != 1 || r3.IngressPort != 0 {
		t.Errorf("report 3: %+v", r3)
	}
	if r4.RepType != RepTypeInnerOnly || r4.InType != InnerEthernet || len(r4.Inner) != 16 {
		t.Errorf("report 4: %+v", r4)
	}
	if r5.IngressTS != 0x0000000500000006 || r5.KernelDropReason != 0x3B || r5.Packets != 0 ||
		r5.DomainID != NsintDomainID || len(r5.DomainData) != 8 || r5.Inner != nil {
		t.Errorf("report 5: %+v", r5)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	valid := AppendV20(nil, &Report{Kind: Drop, Packets: 3, KernelDropReason: 5, Inner: tcpSYN})
	// patched returns a copy of valid with byte i set to v.
	patched := func(i int, v byte) []byte {
		b := append([]byte(nil), valid...)
		b[i] = v
		return b
	}
	v05 := AppendV05(nil, &Report{Kind: Drop, Inner: tcpSYN})
	v05flow := AppendV05(nil, &Report{Kind: Flow})
	cases := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty", nil, ErrTruncated},
		{"v0.5 short fixed header", v05[:11], ErrTruncated},
		{"v0.5 short drop header", v05[:23], ErrTruncated},
		{"v0.5 short local header", v05flow[:27], ErrTruncated},
		{"v0.5 NProto 3", w(byte(0x03), v05[1:]), ErrMalformed},
		{"v1.0", w(byte(0x10), valid[1:]), ErrUnsupportedVersion},
		{"version 3", w(byte(0x30), valid[1:]), ErrUnsupportedVersion},
		{"version 15", w(byte(0xF0), valid[1:]), ErrUnsupportedVersion},
		{"v2.0 short group header", valid[:7], ErrTruncated},
		{"v2.0 no individual report", valid[:8], ErrTruncated},
		{"v2.0 short individual header", valid[:10], ErrTruncated},
		{"v2.0 report longer than payload", valid[:len(valid)-4], ErrTruncated},
		{"v2.0 trailing bytes", w(valid, uint16(0)), ErrTruncated},
		{"v2.0 report without main contents", w(valid[:8], byte(0x13), byte(1), byte(0), byte(0), uint32(0)), ErrTruncated},
		{"v2.0 MD length beyond report", patched(10, 40), ErrTruncated},
		{"v2.0 MD length below RepMdBits", patched(10, 2), ErrMalformed},
		{"v2.0 reserved RepMdBits 0x8000", patched(12, 0xC8), ErrUnknownMetadata},
		{"v2.0 reserved RepMdBits 0x0002", patched(13, 0x03), ErrUnknownMetadata},
		{"v2.0 InType 9", patched(8, 0x19), ErrMalformed},
		{"v2.0 InType none with inner", patched(8, 0x10), ErrMalformed},
		{"v2.0 metadata without domain ID", w(valid[:14], uint16(0), valid[16:]), ErrMalformed},
		{"v2.0 nsint DSMdBits beyond metadata", patched(16, 0xF0), ErrMalformed},
		{"v2.0 inner-only with metadata", patched(8, 0x03), ErrMalformed},
	}
	for _, c := range cases {
		var d Decoded
		err := Decode(c.payload, &d)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Decode = %v, want %v", c.name, err, c.want)
			continue
		}
		var fe *FieldError
		var ve *VersionError
		if !errors.As(err, &fe) && !errors.As(err, &ve) {
			t.Errorf("%s: error %T is neither *FieldError nor *VersionError", c.name, err)
		}
	}
	var d Decoded
	if err := Decode(valid, &d); err != nil {
		t.Fatalf("the unpatched payload fails: %v", err)
	}
}

func TestDecodedReuse(t *testing.T) {
	var d Decoded
	flow := fullReport(Flow)
	if err := Decode(AppendV20(nil, &flow), &d); err != nil {
		t.Fatal(err)
	}
	bare := Report{Kind: Drop}
	if err := Decode(AppendV05(nil, &bare), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Reports) != 1 || d.Reports[0].Packets != 0 || d.Reports[0].Inner != nil || d.Format != V05 {
		t.Errorf("fields of the previous decode survive: %+v", d.Reports[0])
	}
}
