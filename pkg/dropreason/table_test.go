package dropreason

import (
	"strings"
	"testing"
)

func TestSwitchP4Codes(t *testing.T) {
	// The Intel switch.p4_16 values deployed collectors decode.
	want := map[uint8]uint8{
		CodeUnknown: 0, CodeIPTTLZero: 41, CodeIPv4RouteMiss: 51, CodeIPv6RouteMiss: 52,
		CodeMTUCheckFail: 70, CodeTrafficManager: 71, CodeACLDeny: 80, CodeL2MissUnicast: 89,
	}
	for got, w := range want {
		if got != w {
			t.Errorf("switch.p4 code %d, want %d", got, w)
		}
	}
	if CodeOtherKernel != 255 || HostFirst != 200 || HostLast != 254 {
		t.Errorf("host range %d..%d other %d, want 200..254 other 255", HostFirst, HostLast, CodeOtherKernel)
	}
}

func TestTableCodesInDocumentedRanges(t *testing.T) {
	switchCodes := map[uint8]bool{CodeUnknown: true, CodeIPTTLZero: true, CodeIPv4RouteMiss: true,
		CodeIPv6RouteMiss: true, CodeMTUCheckFail: true, CodeTrafficManager: true, CodeACLDeny: true,
		CodeL2MissUnicast: true}
	for name, code := range kernelToINT {
		if strings.HasPrefix(name, Prefix) || strings.ToUpper(name) != name {
			t.Errorf("table name %q: want upper case without %s", name, Prefix)
		}
		if !switchCodes[code] && (code < HostFirst || code > HostLast) {
			t.Errorf("%s maps to %d, outside switch.p4 codes and %d..%d", name, code, HostFirst, HostLast)
		}
		if CodeName(code) == "" {
			t.Errorf("%s maps to %d, which has no name", name, code)
		}
	}
}

func TestCodeFor(t *testing.T) {
	cases := map[string]uint8{
		"SKB_DROP_REASON_NO_SOCKET":               CodeNoSocket,
		"NO_SOCKET":                               CodeNoSocket,
		"SKB_DROP_REASON_NETFILTER_DROP":          CodeACLDeny,
		"SKB_DROP_REASON_TC_INGRESS":              CodeACLDeny,
		"SKB_DROP_REASON_TC_EGRESS":               CodeACLDeny,
		"SKB_DROP_REASON_XDP":                     CodeACLDeny,
		"SKB_DROP_REASON_TCP_CSUM":                CodeL4Checksum,
		"SKB_DROP_REASON_IP_INHDR":                CodeMalformed,
		"SKB_DROP_REASON_PKT_TOO_SMALL":           CodeMalformed,
		"SKB_DROP_REASON_OTHERHOST":               CodeL2MissUnicast,
		"SKB_DROP_REASON_IP_NOPROTO":              CodeNoProtocol,
		"SKB_DROP_REASON_SOCKET_RCVBUFF":          CodeSocketFull,
		"SKB_DROP_REASON_QDISC_DROP":              CodeTrafficManager,
		"SKB_DROP_REASON_NEIGH_FAILED":            CodeNeighbour,
		"SKB_DROP_REASON_IP_RPFILTER":             CodeACLDeny,
		"SKB_DROP_REASON_UNICAST_IN_L2_MULTICAST": CodeNotForHost,
		"SKB_DROP_REASON_IP_OUTNOROUTES":          CodeIPv4RouteMiss,
		"SKB_DROP_REASON_PKT_TOO_BIG":             CodeMTUCheckFail,
		"SKB_DROP_REASON_FRAG_REASM_TIMEOUT":      CodeFragment,
		"SKB_DROP_REASON_NOT_SPECIFIED":           CodeUnknown,
		"SKB_NOT_DROPPED_YET":                     CodeUnknown,
		"SKB_CONSUMED":                            CodeUnknown,
		"":                                        CodeUnknown,
		"SKB_DROP_REASON_FROM_A_FUTURE_KERNEL":    CodeOtherKernel,
	}
	for name, want := range cases {
		if got := CodeFor(name); got != want {
			t.Errorf("CodeFor(%q) = %d, want %d", name, got, want)
		}
	}
	if got := ForFamily(CodeFor("IP_OUTNOROUTES"), true); got != CodeIPv6RouteMiss {
		t.Errorf("ForFamily(route miss, ipv6) = %d, want %d", got, CodeIPv6RouteMiss)
	}
	if got := ForFamily(CodeACLDeny, true); got != CodeACLDeny {
		t.Errorf("ForFamily(acl, ipv6) = %d, want unchanged", got)
	}
}
