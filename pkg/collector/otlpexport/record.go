package otlpexport

import (
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/netif"
)

// EventName names every record this package emits.
const EventName = "nsint.flow"

// Attribute names of a record. Those of the OpenTelemetry semantic
// conventions come first; the nsint.* ones have no convention.
const (
	AttrNode             = "k8s.node.name"
	AttrPodNamespace     = "k8s.namespace.name"
	AttrPodName          = "k8s.pod.name"
	AttrPodUID           = "k8s.pod.uid"
	AttrInterface        = "network.interface.name"
	AttrIODirection      = "network.io.direction" // "receive" (ingress) or "transmit" (egress)
	AttrNetworkType      = "network.type"         // "ipv4" or "ipv6"
	AttrTransport        = "network.transport"    // "tcp", "udp", "sctp", "icmp", "icmpv6" or the protocol number
	AttrSourceAddress    = "source.address"
	AttrSourcePort       = "source.port"
	AttrDestAddress      = "destination.address"
	AttrDestPort         = "destination.port"
	AttrNetwork          = "nsint.network"     // NetworkAttachmentDefinition <namespace>/<name>
	AttrDirection        = "nsint.direction"   // "ingress" or "egress": the TC hook
	AttrNetnsInode       = "nsint.netns.inode" // the interface's network namespace
	AttrNetnsName        = "nsint.netns.name"
	AttrSwitchID         = "nsint.switch_id" // the agent's INT switch ID
	AttrPortID           = "nsint.port_id"   // the INT port ID of the interface
	AttrLocalStack       = "nsint.local_stack"
	AttrEtherType        = "nsint.ether_type"
	AttrVLAN             = "nsint.vlan"
	AttrReports          = "nsint.reports" // increments since the row's previous record…
	AttrPackets          = "nsint.packets"
	AttrBytes            = "nsint.bytes"
	AttrDrops            = "nsint.drops"
	AttrDropsReasonPrefx = "nsint.drops."     // + reason: drops of that INT drop reason
	AttrFirstSeen        = "nsint.first_seen" // the row's first and latest report, Unix nanoseconds
	AttrLastSeen         = "nsint.last_seen"
)

// ReasonKey is the attribute name of the drops of an INT drop reason:
// nsint.drops.<name> with the reason's name in snake case
// (nsint.drops.acl_deny), nsint.drops.code_<N> for a code without a name.
func ReasonKey(code uint8) string {
	n := dropreason.CodeName(code)
	if n == "" {
		return AttrDropsReasonPrefx + "code_" + strconv.Itoa(int(code))
	}
	return AttrDropsReasonPrefx + strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '_'
	}, n)
}

// hasPorts reports whether a protocol's flows have source and destination
// ports.
func hasPorts(proto uint8) bool {
	return proto == flowkey.ProtoTCP || proto == flowkey.ProtoUDP || proto == flowkey.ProtoSCTP
}

// fillRecord makes r the record of d, observed at now.
func fillRecord(r *log.Record, d *flowtable.Delta, now time.Time, attrs []attribute.KeyValue) []attribute.KeyValue {
	r.SetEventName(EventName)
	r.SetTimestamp(time.Unix(0, d.LastSeenNs))
	r.SetObservedTimestamp(now)
	r.SetSeverity(log.SeverityInfo)
	r.SetSeverityText("INFO")
	dir := "receive"
	if d.Direction == netif.Egress {
		dir = "transmit"
	}
	a := append(attrs[:0],
		attribute.String(AttrNode, d.Node),
		attribute.String(AttrInterface, d.Interface),
		attribute.String(AttrIODirection, dir),
		attribute.String(AttrDirection, d.Direction.String()),
		attribute.Int64(AttrNetnsInode, int64(d.Netns.Inode)),
		attribute.Int64(AttrSwitchID, int64(d.SwitchID)),
		attribute.Int(AttrPortID, int(d.PortID)),
		attribute.Int(AttrEtherType, int(d.EtherType)),
		attribute.Int64(AttrReports, int64(d.Reports)),
		attribute.Int64(AttrPackets, int64(d.Packets)),
		attribute.Int64(AttrBytes, int64(d.Bytes)),
		attribute.Int64(AttrDrops, int64(d.Drops)),
		attribute.Int64(AttrFirstSeen, d.FirstSeenNs),
		attribute.Int64(AttrLastSeen, d.LastSeenNs),
	)
	if d.Pod != nil {
		a = append(a, attribute.String(AttrPodNamespace, d.Pod.Namespace), attribute.String(AttrPodName, d.Pod.Name))
		if d.Pod.UID != "" {
			a = append(a, attribute.String(AttrPodUID, d.Pod.UID))
		}
	}
	if d.Network != "" {
		a = append(a, attribute.String(AttrNetwork, d.Network))
	}
	if name := d.Netns.Name; name != "" {
		a = append(a, attribute.String(AttrNetnsName, name))
	}
	if d.LocalStack {
		a = append(a, attribute.Bool(AttrLocalStack, true))
	}
	if d.VLAN != 0 {
		a = append(a, attribute.Int(AttrVLAN, int(d.VLAN)))
	}
	if d.Src.IsValid() {
		typ := "ipv6"
		if d.Src.Is4() {
			typ = "ipv4"
		}
		a = append(a, attribute.String(AttrNetworkType, typ), attribute.String(AttrTransport, flowkey.ProtoName(d.Proto)),
			attribute.String(AttrSourceAddress, d.Src.String()), attribute.String(AttrDestAddress, d.Dst.String()))
		if hasPorts(d.Proto) {
			a = append(a, attribute.Int(AttrSourcePort, int(d.SrcPort)), attribute.Int(AttrDestPort, int(d.DstPort)))
		}
	}
	for code, n := range d.DropReasons {
		a = append(a, attribute.Int64(ReasonKey(code), int64(n)))
	}
	r.AddAttributes(a...)
	return a
}
