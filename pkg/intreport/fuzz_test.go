package intreport

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

// FuzzDecode feeds arbitrary payloads to Decode, seeded with the reference
// vectors and our own encodings. Decode must never panic, every failure must
// match one of the sentinels, and every success must describe at least one
// report (or a skipped one).
func FuzzDecode(f *testing.F) {
	for _, v := range parseVectors(f, embeddedVectors) {
		f.Add(v)
	}
	for _, kind := range []Kind{Flow, Drop} {
		r := fullReport(kind)
		f.Add(AppendV05(nil, &r))
		f.Add(AppendV20(nil, &r))
	}
	var d Decoded
	f.Fuzz(func(t *testing.T, payload []byte) {
		err := Decode(payload, &d)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) &&
				!errors.Is(err, ErrUnknownMetadata) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(d.Reports)+d.Skipped == 0 {
			t.Fatalf("success without a report: % x", payload)
		}
	})
}

// FuzzRoundTrip encodes arbitrary reports and expects the decoder to give
// back everything the format carries.
func FuzzRoundTrip(f *testing.F) {
	f.Add(true, uint8(1), uint32(7), uint32(1), uint16(260), uint16(268), uint8(0), uint32(0x123),
		uint64(0x0a0b0c0d), uint64(0x0a0b11e9), uint32(0), uint8(29), uint32(3), uint64(1), uint64(60),
		uint8(1), uint16(4), true, tcpSYN)
	f.Fuzz(func(t *testing.T, drop bool, hw uint8, seq, sw uint32, in, eg uint16, q uint8, occ uint32,
		its, ets uint64, lat uint32, reason uint8, kreason uint32, pkts, octets uint64,
		dir uint8, obs uint16, tracked bool, inner []byte) {
		r := Report{HwID: hw & 0x3F, Seq: seq, SwitchID: sw, IngressPort: in, EgressPort: eg, QueueID: q,
			QueueOccupancy: occ & 0xFFFFFF, IngressTS: its, EgressTS: ets, HopLatency: lat, DropReason: reason,
			KernelDropReason: kreason, Packets: pkts, Bytes: octets, Direction: netif.Direction(dir), ObservationPort: obs,
			Tracked: tracked, Inner: append([]byte(nil), inner...)}
		if drop {
			r.Kind = Drop
		}
		if len(r.Inner) == 0 {
			r.Inner = nil
		}
		for _, format := range []Format{V05, V20} {
			var d Decoded
			buf := Append(nil, format, &r)
			if err := Decode(buf, &d); err != nil {
				t.Fatalf("%v: %v", format, err)
			}
			want := carried(format, r)
			got := d.Reports[0].Report
			if format == V20 && len(got.Inner) != len(want.Inner) {
				// The decoder trims only zero word padding it can prove from
				// the IP length: at most 3 zero bytes more or less.
				short, long := got.Inner, want.Inner
				if len(short) > len(long) {
					short, long = long, short
				}
				if len(long)-len(short) > 3 || !bytes.Equal(short, long[:len(short)]) ||
					!bytes.Equal(long[len(short):], make([]byte, len(long)-len(short))) {
					t.Fatalf("v2.0 inner: got % x, want % x", got.Inner, want.Inner)
				}
				got.Inner, want.Inner = nil, nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%v round trip:\n got %+v\nwant %+v", format, got, want)
			}
		}
	})
}
