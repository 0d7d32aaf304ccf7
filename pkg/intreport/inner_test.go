package intreport

import (
	"bytes"
	"testing"
)

func TestInnerPadding(t *testing.T) {
	ipv6 := append([]byte{0x60, 0, 0, 0, 0, 5, 17, 64}, make([]byte, 32+5)...) // 45 bytes
	vlanIPv4 := append(append(append([]byte{}, tcpSYN[:12]...), 0x81, 0x00, 0x00, 0x07), tcpSYN[12:]...)
	arp := append(append(append([]byte{}, tcpSYN[:12]...), 0x08, 0x06), make([]byte, 28)...) // 42 bytes
	for _, c := range []struct {
		name    string
		inner   []byte
		decoded int // bytes the decoder gives back
	}{
		{"ethernet ipv4", tcpSYN, len(tcpSYN)},
		{"ethernet vlan ipv4", vlanIPv4, len(vlanIPv4)},
		{"ethernet ipv6", append(append([]byte{}, tcpSYN[:12]...), append([]byte{0x86, 0xdd}, ipv6...)...), 14 + 45},
		{"arp keeps its pad", arp, 44},
		{"truncated ipv4", tcpSYN[:50], 52},
	} {
		r := Report{Inner: c.inner}
		var d Decoded
		if err := Decode(AppendV20(nil, &r), &d); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got := d.Reports[0].Inner
		if len(got) != c.decoded || !bytes.Equal(got[:min(len(got), len(c.inner))], c.inner[:min(len(got), len(c.inner))]) {
			t.Errorf("%s: decoded inner %d bytes, want %d", c.name, len(got), c.decoded)
		}
	}
	// Non-zero bytes after the IP packet are data, not padding.
	b := append(append([]byte{}, tcpSYN...), 0xEE, 0)
	if got := trimPadding(InnerEthernet, b); len(got) != len(b) {
		t.Errorf("trimmed non-zero trailer: %d bytes left of %d", len(got), len(b))
	}
	if got := trimPadding(InnerIPv4, append(append([]byte{}, tcpSYN[14:]...), 0, 0)); len(got) != 40 {
		t.Errorf("InType IPv4: %d bytes, want 40", len(got))
	}
}
