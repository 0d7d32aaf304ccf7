package datapath

import (
	"fmt"

	"github.com/nsint/nsint/bpf"
)

// Drop classes (C enum nsint_drop_class), as the drop_class map holds them.
const (
	dropReal      = uint8(bpf.NsintNsintDropClassNSINT_DROP_REAL)      // meant for delivery or forwarding: a drop
	dropUnwanted  = uint8(bpf.NsintNsintDropClassNSINT_DROP_UNWANTED)  // no one wanted it: no drop when multicast or broadcast
	dropNoSocket  = uint8(bpf.NsintNsintDropClassNSINT_DROP_NO_SOCKET) // as dropUnwanted, and no drop for an echo reply
	dropOtherHost = uint8(bpf.NsintNsintDropClassNSINT_DROP_OTHERHOST) // a frame for another host: never a drop
	dropSocket    = uint8(bpf.NsintNsintDropClassNSINT_DROP_SOCKET)    // a socket's own queue, closed or purged: never a drop
	dropVague     = uint8(bpf.NsintNsintDropClassNSINT_DROP_VAGUE)     // no reason given: a drop only of unicast TCP, UDP or SCTP
)

// dropClasses names the kernel drop reasons that can mean "no one on this
// host wanted the packet" rather than "the host discarded a packet meant
// for delivery or forwarding"; the drop hook decides with the packet type
// and protocol (drop_is_real in bpf/headers/nsint_drop.h; the rule is in
// docs/architecture.md, "Drops"). Every reason not listed is a drop; names
// a kernel does not have are skipped.
var dropClasses = map[string]uint8{
	// kfree_skb without a reason: what older kernels do with ICMPv6 they
	// handled (echo, neighbour discovery), MLD reports and router
	// solicitations reaching a host, control frames, among others.
	"SKB_DROP_REASON_NOT_SPECIFIED": dropVague,
	// Protocols nothing on the host handles, groups it did not join.
	"SKB_DROP_REASON_UNHANDLED_PROTO":         dropUnwanted,
	"SKB_DROP_REASON_IP_NOPROTO":              dropUnwanted,
	"SKB_DROP_REASON_IP_INADDRERRORS":         dropUnwanted,
	"SKB_DROP_REASON_UNICAST_IN_L2_MULTICAST": dropUnwanted,
	"SKB_DROP_REASON_NO_SOCKET":               dropNoSocket,
	// Frames addressed to another host.
	"SKB_DROP_REASON_OTHERHOST":               dropOtherHost,
	"SKB_DROP_REASON_IPV6_NDISC_NS_OTHERHOST": dropOtherHost,
	// A socket discarding its own queue: packets delivered to it and never
	// read (a raw ping's, a packet socket's), or never sent.
	"SKB_DROP_REASON_SOCKET_CLOSE":      dropSocket,
	"SKB_DROP_REASON_QUEUE_PURGE":       dropSocket,
	"SKB_DROP_REASON_PACKET_SOCK_ERROR": dropSocket,
	"SKB_DROP_REASON_UNIX_DISCONNECT":   dropSocket,
	"SKB_DROP_REASON_UNIX_SKIP_OOB":     dropSocket,
}

// fillDropClasses writes the class of every kernel reason below 256 that
// dropClasses names into the drop_class map; the rest stay real drops.
func (d *Datapath) fillDropClasses(names map[uint32]string) error {
	for value, name := range names {
		class, ok := dropClasses[name]
		if !ok || value >= 256 {
			continue
		}
		if err := d.objs.DropClass.Put(value, class); err != nil {
			return fmt.Errorf("drop class of %s (%d): %w", name, value, err)
		}
	}
	return nil
}
