package intreport

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sharedVectors is the directory of reference vectors built independently of
// this package, beside the checkout.
var sharedVectors = filepath.Join("..", "..", "..", "shared", "int-vectors")

//go:embed testdata/vectors.txt
var embeddedVectors []byte

// parseVectors reads the UDP payloads of a vectors.txt: a "#" line starts a
// vector, "  OFFSET  hex bytes…" lines hold its payload.
func parseVectors(tb testing.TB, text []byte) [][]byte {
	tb.Helper()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			out = append(out, nil)
		default:
			fields := strings.Fields(line)
			b, err := hex.DecodeString(strings.Join(fields[1:], ""))
			if err != nil || len(out) == 0 {
				tb.Fatalf("vectors line %q: %v", line, err)
			}
			out[len(out)-1] = append(out[len(out)-1], b...)
		}
	}
	return out
}

// pcapUDPPayloads returns the UDP payloads of the Ethernet/IPv4/UDP frames of
// a little-endian classic pcap file, checking the destination port.
func pcapUDPPayloads(t *testing.T, raw []byte) [][]byte {
	t.Helper()
	le := binary.LittleEndian
	if len(raw) < 24 || le.Uint32(raw) != 0xa1b2c3d4 || le.Uint32(raw[20:]) != 1 {
		t.Fatalf("not a little-endian Ethernet pcap")
	}
	var out [][]byte
	for off := 24; off < len(raw); {
		if len(raw)-off < 16 {
			t.Fatalf("pcap record header at %d truncated", off)
		}
		n := int(le.Uint32(raw[off+8:]))
		frame := raw[off+16 : off+16+n]
		off += 16 + n
		if be.Uint16(frame[12:]) != 0x0800 || frame[23] != 17 {
			t.Fatalf("frame %d is not IPv4/UDP", len(out)+1)
		}
		udp := frame[14+int(frame[14]&0x0F)*4:]
		if port := be.Uint16(udp[2:]); port != DefaultPort {
			t.Errorf("frame %d: UDP destination port %d, want %d", len(out)+1, port, DefaultPort)
		}
		out = append(out, udp[8:be.Uint16(udp[4:])])
	}
	return out
}

// referenceVectors returns the five reference payloads from the embedded
// copy, and checks that the shared copy (vectors.txt and the pcap), when
// present, says exactly the same.
func referenceVectors(t *testing.T) [][]byte {
	t.Helper()
	vectors := parseVectors(t, embeddedVectors)
	if len(vectors) != 5 {
		t.Fatalf("embedded vectors: %d payloads, want 5", len(vectors))
	}
	shared, err := os.ReadFile(filepath.Join(sharedVectors, "vectors.txt"))
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("%s absent: using the embedded copy only", sharedVectors)
		return vectors
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(parseVectors(t, shared), vectors) {
		t.Fatalf("testdata/vectors.txt differs from %s/vectors.txt: refresh the embedded copy", sharedVectors)
	}
	pcap, err := os.ReadFile(filepath.Join(sharedVectors, "int_reports.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	if got := pcapUDPPayloads(t, pcap); !reflect.DeepEqual(got, vectors) {
		t.Fatalf("int_reports.pcap payloads differ from vectors.txt")
	}
	return vectors
}

type flowTuple struct {
	src, dst        netip.Addr
	sport, dport    uint16
	proto, tcpFlags byte
}

// innerTuple reads the 5-tuple and TCP flags of an Ethernet or IPv4 frame.
func innerTuple(t *testing.T, inType InnerType, b []byte) flowTuple {
	t.Helper()
	if inType == InnerEthernet {
		if be.Uint16(b[12:]) != 0x0800 {
			t.Fatalf("inner ethertype %#x", be.Uint16(b[12:]))
		}
		b = b[14:]
	}
	ip := b[:int(be.Uint16(b[2:]))]
	l4 := ip[int(ip[0]&0x0F)*4:]
	return flowTuple{
		src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20])),
		sport: be.Uint16(l4), dport: be.Uint16(l4[2:]), proto: ip[9], tcpFlags: l4[13],
	}
}

func TestReferenceVectors(t *testing.T) {
	vectors := referenceVectors(t)
	syn := flowTuple{
		src: netip.MustParseAddr("198.51.100.10"), dst: netip.MustParseAddr("203.0.113.20"),
		sport: 40000, dport: 443, proto: 6, tcpFlags: 0x02,
	}
	cases := []struct {
		name      string
		format    Format
		want      DecodedReport
		innerLen  int
		innerType InnerType
	}{
		{"v0.5 flow", V05, DecodedReport{Report: Report{
			Kind: Flow, HwID: 1, Seq: 7, SwitchID: 1, IngressPort: 260, EgressPort: 268,
			QueueOccupancy: 0x123, IngressTS: 0x0a0b0c0d, EgressTS: 0x0a0b11e9, HopLatency: 0x11e9 - 0x0c0d,
			Tracked: true}, NProto: 2, InType: InnerEthernet}, 54, InnerEthernet},
		{"v0.5 drop", V05, DecodedReport{Report: Report{
			Kind: Drop, HwID: 1, Seq: 8, SwitchID: 1, IngressPort: 260, DropReason: 29, IngressTS: 0x0a0b0c17},
			Dropped: true, NProto: 1, InType: InnerEthernet}, 54, InnerEthernet},
		{"v2.0 flow", V20, DecodedReport{Report: Report{
			Kind: Flow, HwID: 1, Seq: 42, SwitchID: 0x11111111, IngressPort: 260, EgressPort: 268,
			QueueID: 5, QueueOccupancy: 0x123, Tracked: true},
			RepType: RepTypeINT, InType: InnerIPv4, RepMdBits: 0x5000}, 40, InnerIPv4},
		{"v2.0 drop", V20, DecodedReport{Report: Report{
			Kind: Drop, HwID: 1, Seq: 43, SwitchID: 0x11111111, IngressPort: 260, QueueID: 5,
			DropReason: 80, IngressTS: 0x0102030405},
			Dropped: true, RepType: RepTypeINT, InType: InnerEthernet, RepMdBits: 0x4801}, 54, InnerEthernet},
	}
	payloads := [][]byte{vectors[0], vectors[1], vectors[3], vectors[4]}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var d Decoded
			if err := Decode(payloads[i], &d); err != nil {
				t.Fatal(err)
			}
			if d.Format != c.format || len(d.Reports) != 1 || d.Skipped != 0 {
				t.Fatalf("format %v, %d reports, %d skipped; want %v, 1, 0", d.Format, len(d.Reports), d.Skipped, c.format)
			}
			got := d.Reports[0]
			if len(got.Inner) != c.innerLen {
				t.Errorf("inner %d bytes, want %d", len(got.Inner), c.innerLen)
			}
			if tuple := innerTuple(t, c.innerType, got.Inner); tuple != syn {
				t.Errorf("inner packet %+v, want %+v", tuple, syn)
			}
			got.Inner, got.DomainData = nil, nil
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("decoded\n %+v\nwant\n %+v", got, c.want)
			}
		})
	}

	t.Run("v1.0 rejected", func(t *testing.T) {
		var d Decoded
		err := Decode(vectors[2], &d)
		var ve *VersionError
		if !errors.Is(err, ErrUnsupportedVersion) || !errors.As(err, &ve) || ve.Version != 1 {
			t.Fatalf("Decode(v1.0) = %v, want a *VersionError for version 1", err)
		}
		if !strings.Contains(err.Error(), "v1.0") {
			t.Errorf("error %q does not name v1.0", err)
		}
	})
}
