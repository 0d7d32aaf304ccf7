package intreport

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

// tcpSYN is an Ethernet/IPv4/TCP SYN of 54 bytes (not a multiple of 4, so
// v2.0 pads it).
var tcpSYN = []byte{
	0x00, 0x00, 0x5e, 0x00, 0x53, 0xaa, 0x00, 0x00, 0x5e, 0x00, 0x53, 0xbb, 0x08, 0x00,
	0x45, 0x00, 0x00, 0x28, 0x00, 0x01, 0x00, 0x00, 0x3f, 0x06, 0x15, 0x7d,
	0xc6, 0x33, 0x64, 0x0a, 0xcb, 0x00, 0x71, 0x14,
	0x9c, 0x40, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
	0x50, 0x02, 0x20, 0x00, 0x8b, 0x93, 0x00, 0x00,
}

// fullReport sets every field to a distinct non-zero value.
func fullReport(kind Kind) Report {
	return Report{
		Kind: kind, HwID: 0x2A, Seq: 0x2ABCDE, SwitchID: 0xDEADBEEF,
		IngressPort: 0x1234, EgressPort: 0x5678, QueueID: 7, QueueOccupancy: 0xABCDEF,
		IngressTS: 0x1122334455667788, EgressTS: 0x11223344556677AA, HopLatency: 0x22,
		DropReason: 80, KernelDropReason: 12, Packets: 0x0102030405060708, Bytes: 0x1112131415161718,
		Direction: netif.Egress, ObservationPort: 0x4321, Tracked: true, Inner: tcpSYN,
	}
}

// carried returns what format f carries of r: the decoder must give back
// exactly this.
func carried(f Format, r Report) Report {
	want := r
	if len(want.Inner) > MaxInner {
		want.Inner = want.Inner[:MaxInner]
	}
	switch f {
	case V05:
		want.KernelDropReason, want.Packets, want.Bytes, want.Direction, want.ObservationPort = 0, 0, 0, 0, 0
		want.IngressTS &= 0xFFFFFFFF
		if r.Kind == Drop {
			want.QueueOccupancy, want.EgressTS, want.HopLatency = 0, 0, 0
			break
		}
		want.DropReason = 0
		if r.EgressTS == 0 {
			want.EgressTS = uint64(uint32(r.IngressTS) + r.HopLatency)
		}
		want.EgressTS &= 0xFFFFFFFF
		want.HopLatency = uint32(want.EgressTS) - uint32(want.IngressTS)
	case V20:
		want.Seq &= 0x3FFFFF
		if !want.Direction.Valid() {
			want.Direction = 0 // the format carries ingress and egress only
		}
		if r.Kind == Drop {
			want.QueueOccupancy, want.EgressTS, want.HopLatency = 0, 0, 0
		} else {
			want.DropReason = 0
		}
	}
	return want
}

func roundTrip(t *testing.T, f Format, r Report) DecodedReport {
	t.Helper()
	buf := Append(make([]byte, 0, MaxPayloadLen), f, &r)
	if len(buf) > MaxPayloadLen {
		t.Fatalf("%v payload %d bytes, MaxPayloadLen %d", f, len(buf), MaxPayloadLen)
	}
	if f == V20 && len(buf)%4 != 0 {
		t.Fatalf("v2.0 payload %d bytes, not whole words", len(buf))
	}
	var d Decoded
	if err := Decode(buf, &d); err != nil {
		t.Fatalf("decode own %v %v report: %v\n% x", f, r.Kind, err, buf)
	}
	if d.Format != f || len(d.Reports) != 1 {
		t.Fatalf("decoded format %v with %d reports, want %v with 1", d.Format, len(d.Reports), f)
	}
	got := d.Reports[0]
	if want := carried(f, r); !reflect.DeepEqual(got.Report, want) {
		t.Errorf("%v %v round trip:\n got %+v\nwant %+v", f, r.Kind, got.Report, want)
	}
	return got
}

func TestRoundTripEveryField(t *testing.T) {
	for _, f := range []Format{V05, V20} {
		for _, kind := range []Kind{Flow, Drop} {
			t.Run(f.String()+" "+kind.String(), func(t *testing.T) {
				full := fullReport(kind)
				got := roundTrip(t, f, full)
				if got.Dropped != (kind == Drop) || got.Congested || got.Intermediate {
					t.Errorf("flags D=%v Q=%v I=%v", got.Dropped, got.Congested, got.Intermediate)
				}

				sparse := Report{Kind: kind, IngressTS: 99, Inner: tcpSYN[:16]} // nothing optional known
				roundTrip(t, f, sparse)

				untracked := full
				untracked.Tracked = false
				untracked.Inner = nil
				roundTrip(t, f, untracked)

				long := full
				long.Inner = bytes.Repeat([]byte{0xA5}, MaxInner+37)
				roundTrip(t, f, long)
			})
		}
	}
}

func TestV20MetadataSelection(t *testing.T) {
	cases := []struct {
		name       string
		r          Report
		repMdBits  uint16
		domainID   uint16
		dsMdBits   uint16
		inType     InnerType
		innerWords int
	}{
		{"full flow", fullReport(Flow), MdPorts | MdHopLatency | MdQueue | MdIngressTS | MdEgressTS,
			NsintDomainID, DSPackets | DSBytes | DSKernelDrop | DSObservation, InnerEthernet, 14},
		{"full drop", fullReport(Drop), MdPorts | MdIngressTS | MdQueueDrop,
			NsintDomainID, DSPackets | DSBytes | DSKernelDrop | DSObservation, InnerEthernet, 14},
		{"bare flow", Report{Kind: Flow}, MdPorts | MdIngressTS, 0, 0, InnerNone, 0},
		{"bare drop", Report{Kind: Drop}, MdPorts | MdIngressTS | MdQueueDrop, 0, 0, InnerNone, 0},
		{"counters only", Report{Packets: 1, Bytes: 60}, MdPorts | MdIngressTS, NsintDomainID,
			DSPackets | DSBytes, InnerNone, 0},
		{"ingress observation", Report{Direction: netif.Ingress}, MdPorts | MdIngressTS, NsintDomainID,
			DSObservation, InnerNone, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := AppendV20(nil, &c.r)
			var d Decoded
			if err := Decode(buf, &d); err != nil {
				t.Fatal(err)
			}
			got := d.Reports[0]
			if got.RepMdBits != c.repMdBits || got.DomainID != c.domainID || got.DSMdBits != c.dsMdBits ||
				got.InType != c.inType || got.RepType != RepTypeINT {
				t.Errorf("RepMdBits %#04x DomainID %#04x DSMdBits %#04x InType %d RepType %d; want %#04x %#04x %#04x %d 1",
					got.RepMdBits, got.DomainID, got.DSMdBits, got.InType, got.RepType,
					c.repMdBits, c.domainID, c.dsMdBits, c.inType)
			}
			mdBytes := bitsSize(c.repMdBits, mdSize) + bitsSize(c.dsMdBits, dsSize)
			if int(buf[10])*4 != mdBytes {
				t.Errorf("MD length %d words, want %d bytes", buf[10], mdBytes)
			}
			if want := (v20MainLen+mdBytes)/4 + c.innerWords; int(buf[9]) != want {
				t.Errorf("report length %d words, want %d", buf[9], want)
			}
		})
	}
}

// TestEncoderMatchesReferenceVectors encodes the reports the independent
// vectors describe and expects their exact bytes.
func TestEncoderMatchesReferenceVectors(t *testing.T) {
	vectors := referenceVectors(t)
	inner := vectors[0][28:]
	cases := []struct {
		vector int
		f      Format
		r      Report
	}{
		{0, V05, Report{Kind: Flow, HwID: 1, Seq: 7, SwitchID: 1, IngressPort: 260, EgressPort: 268,
			QueueOccupancy: 0x123, IngressTS: 0x0a0b0c0d, EgressTS: 0x0a0b11e9, Tracked: true, Inner: inner}},
		{1, V05, Report{Kind: Drop, HwID: 1, Seq: 8, SwitchID: 1, IngressPort: 260, DropReason: 29,
			IngressTS: 0x0a0b0c17, Inner: inner}},
		{4, V20, Report{Kind: Drop, HwID: 1, Seq: 43, SwitchID: 0x11111111, IngressPort: 260, QueueID: 5,
			DropReason: 80, IngressTS: 0x0102030405, Inner: inner}},
	}
	for _, c := range cases {
		if got := Append(nil, c.f, &c.r); !bytes.Equal(got, vectors[c.vector]) {
			t.Errorf("vector %d:\n got % x\nwant % x", c.vector+1, got, vectors[c.vector])
		}
	}
}

func TestSetSequence(t *testing.T) {
	r := fullReport(Flow)
	for _, c := range []struct {
		f         Format
		seq, want uint32
	}{{V05, 0xFEDCBA98, 0xFEDCBA98}, {V20, 0xFFFFFFFF, 0x3FFFFF}, {V20, 5, 5}} {
		buf := Append(nil, c.f, &r)
		if err := SetSequence(buf, c.seq); err != nil {
			t.Fatal(err)
		}
		var d Decoded
		if err := Decode(buf, &d); err != nil {
			t.Fatal(err)
		}
		got := d.Reports[0]
		if got.Seq != c.want || got.HwID != r.HwID || got.SwitchID != r.SwitchID {
			t.Errorf("%v SetSequence(%#x): seq %#x hw %d switch %#x; want seq %#x, others unchanged",
				c.f, c.seq, got.Seq, got.HwID, got.SwitchID, c.want)
		}
	}
	if err := SetSequence([]byte{0x20, 0, 0}, 1); err == nil {
		t.Error("SetSequence on 3 bytes succeeded")
	}
	if err := SetSequence(make([]byte, 12), 1); err != nil {
		t.Errorf("SetSequence on a v0.5 header: %v", err)
	}
	if err := SetSequence(append([]byte{0x10}, make([]byte, 11)...), 1); err == nil {
		t.Error("SetSequence on v1.0 succeeded")
	}
}

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"v0.5": V05, "v2.0": V20} {
		if f, err := ParseFormat(s); err != nil || f != want || f.String() != s {
			t.Errorf("ParseFormat(%q) = %v, %v", s, f, err)
		}
	}
	for _, s := range []string{"", "v1.0", "2.0", "V2.0"} {
		if _, err := ParseFormat(s); err == nil || !bytes.Contains([]byte(err.Error()), []byte(`"`+s+`"`)) {
			t.Errorf("ParseFormat(%q) error %v does not name the value", s, err)
		}
	}
	if got := Append([]byte{1}, Format(9), &Report{}); len(got) != 1 {
		t.Errorf("Append with unknown format appended %d bytes", len(got)-1)
	}
}
