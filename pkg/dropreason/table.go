package dropreason

import "strings"

// Prefix is the common prefix of the kernel's drop reason names.
const Prefix = "SKB_DROP_REASON_"

// kernelToINT is the one mapping from kernel drop reason names (enum
// skb_drop_reason, without Prefix) to INT drop reason codes. It is read-only.
// Names a kernel does not have are harmless; names missing here map to
// CodeOtherKernel. Policy drops map to CodeACLDeny and queue drops to
// CodeTrafficManager so switch-oriented collectors understand them; the raw
// kernel reason travels beside the code in v2.0 reports.
var kernelToINT = map[string]uint8{
	// Not drops, or no reason given.
	"NOT_SPECIFIED": CodeUnknown,

	// switch.p4_16 equivalents.
	"IP_OUTNOROUTES": CodeIPv4RouteMiss, // both families; see ForFamily
	"IP_INNOROUTES":  CodeIPv4RouteMiss,
	"PKT_TOO_BIG":    CodeMTUCheckFail,

	"QDISC_DROP":        CodeTrafficManager,
	"QDISC_OVERLIMIT":   CodeTrafficManager,
	"QDISC_CONGESTED":   CodeTrafficManager,
	"CAKE_FLOOD":        CodeTrafficManager,
	"FQ_BAND_LIMIT":     CodeTrafficManager,
	"FQ_HORIZON_LIMIT":  CodeTrafficManager,
	"FQ_FLOW_LIMIT":     CodeTrafficManager,
	"DUALPI2_STEP_DROP": CodeTrafficManager,
	"CPU_BACKLOG":       CodeTrafficManager,
	"FULL_RING":         CodeTrafficManager,
	"NEIGH_QUEUEFULL":   CodeTrafficManager,

	"NETFILTER_DROP":    CodeACLDeny,
	"TC_INGRESS":        CodeACLDeny,
	"TC_EGRESS":         CodeACLDeny,
	"XDP":               CodeACLDeny,
	"BPF_CGROUP_EGRESS": CodeACLDeny,
	"SECURITY_HOOK":     CodeACLDeny,
	"SOCKET_FILTER":     CodeACLDeny,
	"XFRM_POLICY":       CodeACLDeny,
	"TAP_FILTER":        CodeACLDeny,
	"TAP_TXFILTER":      CodeACLDeny,
	"IP_RPFILTER":       CodeACLDeny,

	"OTHERHOST": CodeL2MissUnicast,

	// Host-specific range.
	"NO_SOCKET": CodeNoSocket,

	"SOCKET_CLOSE":      CodeSocketClosed,
	"UNIX_DISCONNECT":   CodeSocketClosed,
	"UNIX_SKIP_OOB":     CodeSocketClosed,
	"PACKET_SOCK_ERROR": CodeSocketClosed,
	"QUEUE_PURGE":       CodeSocketClosed,

	"SOCKET_RCVBUFF":      CodeSocketFull,
	"SOCKET_BACKLOG":      CodeSocketFull,
	"PROTO_MEM":           CodeSocketFull,
	"TCP_LISTEN_OVERFLOW": CodeSocketFull,

	"TCP_CSUM":  CodeL4Checksum,
	"UDP_CSUM":  CodeL4Checksum,
	"ICMP_CSUM": CodeL4Checksum,
	"SKB_CSUM":  CodeL4Checksum,
	"IP_CSUM":   CodeMalformed,

	"TCP_FLAGS":                CodeTCPState,
	"TCP_ABORT_ON_DATA":        CodeTCPState,
	"TCP_ZEROWINDOW":           CodeTCPState,
	"TCP_OLD_DATA":             CodeTCPState,
	"TCP_OVERWINDOW":           CodeTCPState,
	"TCP_OFOMERGE":             CodeTCPState,
	"TCP_RFC7323_PAWS":         CodeTCPState,
	"TCP_RFC7323_PAWS_ACK":     CodeTCPState,
	"TCP_RFC7323_TW_PAWS":      CodeTCPState,
	"TCP_RFC7323_TSECR":        CodeTCPState,
	"TCP_OLD_SEQUENCE":         CodeTCPState,
	"TCP_INVALID_SEQUENCE":     CodeTCPState,
	"TCP_INVALID_END_SEQUENCE": CodeTCPState,
	"TCP_INVALID_ACK_SEQUENCE": CodeTCPState,
	"TCP_RESET":                CodeTCPState,
	"TCP_INVALID_SYN":          CodeTCPState,
	"TCP_CLOSE":                CodeTCPState,
	"TCP_FASTOPEN":             CodeTCPState,
	"TCP_OLD_ACK":              CodeTCPState,
	"TCP_TOO_OLD_ACK":          CodeTCPState,
	"TCP_ACK_UNSENT_DATA":      CodeTCPState,
	"TCP_OFO_QUEUE_PRUNE":      CodeTCPState,
	"TCP_OFO_DROP":             CodeTCPState,
	"TCP_MINTTL":               CodeTCPState,

	"TCP_AUTH_HDR":      CodeTCPAuth,
	"TCP_MD5NOTFOUND":   CodeTCPAuth,
	"TCP_MD5UNEXPECTED": CodeTCPAuth,
	"TCP_MD5FAILURE":    CodeTCPAuth,
	"TCP_AONOTFOUND":    CodeTCPAuth,
	"TCP_AOUNEXPECTED":  CodeTCPAuth,
	"TCP_AOKEYNOTFOUND": CodeTCPAuth,
	"TCP_AOFAILURE":     CodeTCPAuth,

	"PKT_TOO_SMALL":          CodeMalformed,
	"IP_INHDR":               CodeMalformed,
	"HDR_TRUNC":              CodeMalformed,
	"DEV_HDR":                CodeMalformed,
	"INVALID_PROTO":          CodeMalformed,
	"IPV6_BAD_EXTHDR":        CodeMalformed,
	"IPV6_NDISC_FRAG":        CodeMalformed,
	"IPV6_NDISC_HOP_LIMIT":   CodeMalformed,
	"IPV6_NDISC_BAD_CODE":    CodeMalformed,
	"IPV6_NDISC_BAD_OPTIONS": CodeMalformed,
	"CAN_RX_INVALID_FRAME":   CodeMalformed,
	"CANFD_RX_INVALID_FRAME": CodeMalformed,
	"CANXL_RX_INVALID_FRAME": CodeMalformed,
	"MAC_IEEE_MAC_CONTROL":   CodeBridge,

	"IP_NOPROTO":      CodeNoProtocol,
	"UNHANDLED_PROTO": CodeNoProtocol,

	"UNICAST_IN_L2_MULTICAST": CodeNotForHost,
	"IP_INADDRERRORS":         CodeNotForHost,
	"IP_INVALID_DEST":         CodeNotForHost,
	"IPV6_NDISC_NS_OTHERHOST": CodeNotForHost,
	"LOCAL_MAC":               CodeNotForHost,

	"NEIGH_CREATEFAIL":  CodeNeighbour,
	"NEIGH_FAILED":      CodeNeighbour,
	"NEIGH_DEAD":        CodeNeighbour,
	"NEIGH_HH_FILLFAIL": CodeNeighbour,

	"DUP_FRAG":           CodeFragment,
	"FRAG_REASM_TIMEOUT": CodeFragment,
	"FRAG_TOO_FAR":       CodeFragment,

	"NOMEM":           CodeNoMemory,
	"PFMEMALLOC":      CodeNoMemory,
	"SKB_GSO_SEG":     CodeNoMemory,
	"SKB_UCOPY_FAULT": CodeNoMemory,

	"DEV_READY":     CodeDeviceDown,
	"NO_TX_TARGET":  CodeDeviceDown,
	"IPV6DISABLED":  CodeDeviceDown,
	"TUNNEL_TXINFO": CodeDeviceDown,

	"TC_COOKIE_ERROR":    CodeTCConfig,
	"TC_CHAIN_NOTFOUND":  CodeTCConfig,
	"TC_RECLASSIFY_LOOP": CodeTCConfig,
	"RECURSION_LIMIT":    CodeTCConfig,

	"IP_LOCAL_SOURCE":    CodeBadSource,
	"IP_INVALID_SOURCE":  CodeBadSource,
	"IP_LOCALNET":        CodeBadSource,
	"MAC_INVALID_SOURCE": CodeBadSource,

	"VXLAN_INVALID_HDR":   CodeTunnel,
	"VXLAN_VNI_NOT_FOUND": CodeTunnel,
	"VXLAN_ENTRY_EXISTS":  CodeTunnel,
	"IP_TUNNEL_ECN":       CodeTunnel,

	"BRIDGE_INGRESS_STP_STATE": CodeBridge,
	"ARP_PVLAN_DISABLE":        CodeBridge,

	"PSP_INPUT":  CodeSecurityHeader,
	"PSP_OUTPUT": CodeSecurityHeader,
}

// CodeFor returns the INT drop reason code for a kernel drop reason name,
// given with or without Prefix ("SKB_DROP_REASON_NO_SOCKET" or "NO_SOCKET").
// The enum's non-drop entries (SKB_NOT_DROPPED_YET, SKB_CONSUMED) and the
// empty name give CodeUnknown; any other name the table lacks gives
// CodeOtherKernel.
func CodeFor(name string) uint8 {
	if name == "" || !strings.HasPrefix(name, Prefix) && strings.HasPrefix(name, "SKB_") {
		return CodeUnknown
	}
	if code, ok := kernelToINT[strings.TrimPrefix(name, Prefix)]; ok {
		return code
	}
	return CodeOtherKernel
}
