package datapath

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// EventType tells flow reports from drop reports.
type EventType uint8

// Event types (C enum nsint_event_type).
const (
	FlowEvent = EventType(bpf.NsintNsintEventTypeNSINT_EVENT_FLOW)
	DropEvent = EventType(bpf.NsintNsintEventTypeNSINT_EVENT_DROP)
)

// String names the event type.
func (t EventType) String() string {
	switch t {
	case FlowEvent:
		return "flow"
	case DropEvent:
		return "drop"
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Reason says why the kernel sent a report.
type Reason uint8

// Report reasons (C enum nsint_reason).
const (
	ReasonNew     = Reason(bpf.NsintNsintReasonNSINT_REASON_NEW)     // first packet of the flow
	ReasonRefresh = Reason(bpf.NsintNsintReasonNSINT_REASON_REFRESH) // the report interval passed
	ReasonPorts   = Reason(bpf.NsintNsintReasonNSINT_REASON_PORTS)   // the (ingress, egress) port pair changed
	ReasonLatency = Reason(bpf.NsintNsintReasonNSINT_REASON_LATENCY) // the hop latency changed power of two
	ReasonDrop    = Reason(bpf.NsintNsintReasonNSINT_REASON_DROP)    // the kernel dropped the packet
	ReasonIdle    = Reason(bpf.NsintNsintReasonNSINT_REASON_IDLE)    // quiet for the report interval: its last counts (Sweep)
	ReasonEnd     = Reason(bpf.NsintNsintReasonNSINT_REASON_END)     // a TCP FIN or RST passed
	ReasonFlush   = Reason(bpf.NsintNsintReasonNSINT_REASON_FLUSH)   // its port is going away or the agent is stopping (Sweep)
)

// String names the reason.
func (r Reason) String() string {
	switch r {
	case ReasonNew:
		return "new"
	case ReasonRefresh:
		return "refresh"
	case ReasonPorts:
		return "ports"
	case ReasonLatency:
		return "latency"
	case ReasonDrop:
		return "drop"
	case ReasonIdle:
		return "idle"
	case ReasonEnd:
		return "end"
	case ReasonFlush:
		return "flush"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Event flags (C enum nsint_event_flags), as the one-byte flags fields of
// events, drop states and sweep items hold them.
const (
	evfHopLatency   = uint8(bpf.NsintNsintEventFlagsNSINT_EVF_HOP_LATENCY)
	evfNonFirstFrag = uint8(bpf.NsintNsintEventFlagsNSINT_EVF_NONFIRST_FRAG)
	evfNoDropReason = uint8(bpf.NsintNsintEventFlagsNSINT_EVF_DROP_NO_REASON)
	evfDataL3       = uint8(bpf.NsintNsintEventFlagsNSINT_EVF_DATA_L3)
	evfTCPEnd       = uint8(bpf.NsintNsintEventFlagsNSINT_EVF_TCP_END)
)

// Event is one decoded report. Reader.Read fills a caller-owned Event
// without allocating.
type Event struct {
	Type   EventType
	Reason Reason
	// Direction and Port are where the report was made (the observation).
	Direction netif.Direction
	Port      uint16
	// InPort and OutPort name the hop: ingress and egress port IDs (a
	// namespace's local-stack port when the packet starts or ends in its
	// stack; 0 when unknown).
	InPort, OutPort uint16
	// Proto is the IP protocol; Src and Dst are invalid for non-IP drops.
	Proto    uint8
	Src, Dst netip.Addr
	// SrcPort and DstPort are the L4 ports; for ICMP/ICMPv6 SrcPort is
	// type<<8|code and DstPort the echo identifier (0 for other types).
	// Both are 0 on a non-first fragment.
	SrcPort, DstPort uint16
	NonFirstFragment bool
	// InTime and OutTime are the times at the ingress and egress hooks
	// (equal when only one hook saw the packet, and for drops).
	InTime, OutTime time.Time
	// HopLatency is OutTime-InTime when HasHopLatency is set.
	HopLatency    time.Duration
	HasHopLatency bool
	// Packets and Bytes count since the previous report of the flow; for a
	// drop, Packets is the drops since the previous drop report.
	Packets, Bytes uint64
	// DropReason is the kernel's enum skb_drop_reason value (see
	// DropReasonNames); DropReasonKnown is false on kernels without it.
	DropReason      uint32
	DropReasonKnown bool
	// Len is the frame's length; Data its first bytes from the Ethernet
	// header (or from the network header for a drop without one, when
	// DataIsL3 is set). Data points into the Reader's buffer: valid only
	// until the next Read.
	Len      uint32
	Data     []byte
	DataIsL3 bool
}

// addrs returns the source and destination of a tuple of family 4 or 6
// (IPv4 in the first four bytes), or invalid addresses for another family.
func addrs(family uint8, src, dst [16]byte) (netip.Addr, netip.Addr) {
	switch family {
	case 4:
		return netip.AddrFrom4([4]byte(src[:4])), netip.AddrFrom4([4]byte(dst[:4]))
	case 6:
		return netip.AddrFrom16(src), netip.AddrFrom16(dst)
	}
	return netip.Addr{}, netip.Addr{}
}

// tupleAddrs is addrs for a flow key's tuple, whose addresses the C side
// keeps as four 32-bit words in network byte order.
func tupleAddrs(family uint8, src, dst [4]uint32) (netip.Addr, netip.Addr) {
	return addrs(family, wordsToBytes(src), wordsToBytes(dst))
}

func wordsToBytes(w [4]uint32) [16]byte {
	return *(*[16]byte)(unsafe.Pointer(&w))
}

var errShortEvent = errors.New("short event")

const eventSize = int(unsafe.Sizeof(bpf.NsintEvent{}))

// decodeEvent fills ev from a raw record of the report ring. A record has
// room for the configured snap length (report_reserve), of which cap_len
// bytes hold the packet.
func (d *Datapath) decodeEvent(raw []byte, ev *Event) error {
	if len(raw) < eventSize {
		return fmt.Errorf("%w: %d bytes, want at least %d", errShortEvent, len(raw), eventSize)
	}
	var e bpf.NsintEvent
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&e)), eventSize), raw)
	if int(e.CapLen) > len(raw)-eventSize {
		return fmt.Errorf("%w: captured %d bytes, sample holds %d", errShortEvent, e.CapLen, len(raw)-eventSize)
	}
	ev.Type = EventType(e.Type)
	ev.Reason = Reason(e.Reason)
	ev.Direction = directionOf(e.Dir)
	ev.Port, ev.InPort, ev.OutPort = e.ObsPort, e.InPort, e.OutPort
	ev.Proto = e.Proto
	ev.Src, ev.Dst = addrs(e.Family, e.Saddr, e.Daddr)
	ev.SrcPort, ev.DstPort = e.Sport, e.Dport
	ev.NonFirstFragment = e.Flags&evfNonFirstFrag != 0
	ev.DataIsL3 = e.Flags&evfDataL3 != 0
	ev.InTime = d.KtimeToTime(e.InTs)
	ev.OutTime = d.KtimeToTime(e.OutTs)
	ev.HasHopLatency = e.Flags&evfHopLatency != 0
	ev.HopLatency = time.Duration(e.HopLatencyNs)
	ev.Packets, ev.Bytes = e.Packets, e.Bytes
	ev.DropReason = e.DropReason
	ev.DropReasonKnown = ev.Type == DropEvent && e.Flags&evfNoDropReason == 0
	ev.Len = e.OrigLen
	ev.Data = raw[eventSize : eventSize+int(e.CapLen)]
	return nil
}
