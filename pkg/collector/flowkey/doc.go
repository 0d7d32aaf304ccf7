// Package flowkey extracts the 5-tuple of the packet an INT report carries
// (Ethernet, 802.1Q/802.1ad tags, IPv4/IPv6, TCP/UDP/SCTP/ICMP/ICMPv6).
//
// It owns only parsing: it never allocates, never keeps the buffer it is given,
// and accepts truncated frames (reports carry only the first bytes of a packet),
// filling in as much as the bytes allow.
package flowkey
