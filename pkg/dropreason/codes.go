package dropreason

// INT drop reason codes. Codes below HostFirst follow the Intel switch.p4_16
// numbering that deployed collectors (DeepInsight, SD-Fabric) understand;
// HostFirst..HostLast is nsint's range for reasons only an end host has.
const (
	CodeUnknown        uint8 = 0  // no reason known
	CodeIPTTLZero      uint8 = 41 // IP TTL / hop limit reached zero
	CodeIPv4RouteMiss  uint8 = 51 // no IPv4 route
	CodeIPv6RouteMiss  uint8 = 52 // no IPv6 route
	CodeMTUCheckFail   uint8 = 70 // packet larger than the MTU
	CodeTrafficManager uint8 = 71 // a queue was full (qdisc, backlog, ring)
	CodeACLDeny        uint8 = 80 // a policy dropped it (netfilter, tc, XDP, BPF, LSM)
	CodeL2MissUnicast  uint8 = 89 // unicast frame for another MAC address

	// HostFirst is the first code of nsint's host-specific range.
	HostFirst uint8 = 200
	// HostLast is the last code of nsint's host-specific range.
	HostLast uint8 = 254

	CodeNoSocket       uint8 = 200 // no socket listens for the packet
	CodeSocketClosed   uint8 = 201 // the socket was closing or gone
	CodeSocketFull     uint8 = 202 // socket receive buffer, backlog or memory limit
	CodeL4Checksum     uint8 = 203 // TCP, UDP, ICMP or skb checksum error
	CodeTCPState       uint8 = 204 // TCP sequence, window, flag or state check
	CodeTCPAuth        uint8 = 205 // TCP MD5 / TCP-AO authentication failure
	CodeMalformed      uint8 = 206 // truncated or malformed headers
	CodeNoProtocol     uint8 = 207 // no handler for the protocol
	CodeNotForHost     uint8 = 208 // addressed to another host or not deliverable here
	CodeNeighbour      uint8 = 209 // neighbour (ARP/NDP) resolution failed
	CodeFragment       uint8 = 210 // fragment reassembly failed
	CodeNoMemory       uint8 = 211 // allocation, copy or segmentation failure
	CodeDeviceDown     uint8 = 212 // device or protocol not ready / disabled
	CodeTCConfig       uint8 = 213 // tc configuration error or loop
	CodeBadSource      uint8 = 214 // invalid or local source address
	CodeTunnel         uint8 = 215 // tunnel (VXLAN, IP tunnel) error
	CodeBridge         uint8 = 216 // bridge state or L2 control frame
	CodeSecurityHeader uint8 = 217 // PSP / IPsec processing failure

	// CodeOtherKernel is a kernel drop reason the table does not map.
	CodeOtherKernel uint8 = 255
)

var codeNames = map[uint8]string{
	CodeUnknown:        "unknown",
	CodeIPTTLZero:      "ip ttl zero",
	CodeIPv4RouteMiss:  "ipv4 route miss",
	CodeIPv6RouteMiss:  "ipv6 route miss",
	CodeMTUCheckFail:   "mtu check fail",
	CodeTrafficManager: "queue full",
	CodeACLDeny:        "acl deny",
	CodeL2MissUnicast:  "l2 miss unicast",
	CodeNoSocket:       "no socket",
	CodeSocketClosed:   "socket closed",
	CodeSocketFull:     "socket buffer full",
	CodeL4Checksum:     "l4 checksum",
	CodeTCPState:       "tcp state",
	CodeTCPAuth:        "tcp authentication",
	CodeMalformed:      "malformed packet",
	CodeNoProtocol:     "no protocol handler",
	CodeNotForHost:     "not for this host",
	CodeNeighbour:      "neighbour resolution",
	CodeFragment:       "fragment reassembly",
	CodeNoMemory:       "no memory",
	CodeDeviceDown:     "device not ready",
	CodeTCConfig:       "tc configuration",
	CodeBadSource:      "bad source address",
	CodeTunnel:         "tunnel error",
	CodeBridge:         "bridge",
	CodeSecurityHeader: "psp/ipsec",
	CodeOtherKernel:    "other kernel reason",
}

// CodeName returns a short human-readable name for an INT drop reason code,
// or "" for a code this package does not define.
func CodeName(code uint8) string { return codeNames[code] }

// ForFamily refines a code for the packet's address family: the kernel has
// one "no route" reason for both families, which the table maps to
// CodeIPv4RouteMiss; for an IPv6 packet this returns CodeIPv6RouteMiss.
func ForFamily(code uint8, ipv6 bool) uint8 {
	if ipv6 && code == CodeIPv4RouteMiss {
		return CodeIPv6RouteMiss
	}
	return code
}
