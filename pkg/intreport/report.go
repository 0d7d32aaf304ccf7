package intreport

import (
	"errors"
	"fmt"

	"github.com/nsint/nsint/pkg/netif"
)

// Kind says whether a report describes a flow or a dropped packet.
type Kind uint8

// Report kinds.
const (
	Flow Kind = iota // tracked-flow report (v0.5 Switch Local, v2.0 INT with F=1)
	Drop             // drop report (v0.5 Drop header, v2.0 INT with D=1 and the drop word)
)

// String returns "flow" or "drop".
func (k Kind) String() string {
	switch k {
	case Flow:
		return "flow"
	case Drop:
		return "drop"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Format is a Telemetry Report version.
type Format uint8

// Report formats.
const (
	V05 Format = iota // Telemetry Report v0.5 (DeepInsight, SD-Fabric)
	V20               // Telemetry Report v2.0
)

// ErrUnknownFormat is returned by ParseFormat for a name it does not know.
var ErrUnknownFormat = errors.New("unknown report format")

// ParseFormat parses "v0.5" or "v2.0".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "v0.5":
		return V05, nil
	case "v2.0":
		return V20, nil
	}
	return 0, fmt.Errorf("report format %q (want v0.5 or v2.0): %w", s, ErrUnknownFormat)
}

// String returns "v0.5" or "v2.0".
func (f Format) String() string {
	switch f {
	case V05:
		return "v0.5"
	case V20:
		return "v2.0"
	}
	return fmt.Sprintf("format(%d)", uint8(f))
}

// Direction codes of the observation point on the wire (v2.0 domain
// metadata 0x1000). Report.Direction is a netif.Direction; the encoder and
// the decoder map it, and only they see these codes.
const (
	wireDirUnknown uint8 = 0
	wireDirIngress uint8 = 1 // seen entering the observed interface
	wireDirEgress  uint8 = 2 // seen leaving the observed interface
)

// wireDirection is d's code on the wire; unknown for anything but
// netif.Ingress and netif.Egress.
func wireDirection(d netif.Direction) uint8 {
	switch d {
	case netif.Ingress:
		return wireDirIngress
	case netif.Egress:
		return wireDirEgress
	}
	return wireDirUnknown
}

// directionFromWire is the direction a wire code names; the zero
// Direction (unknown) for any code but ingress and egress.
func directionFromWire(c uint8) netif.Direction {
	switch c {
	case wireDirIngress:
		return netif.Ingress
	case wireDirEgress:
		return netif.Egress
	}
	return 0
}

// DefaultPort is the de-facto UDP port of INT collectors.
const DefaultPort = 32766

// MaxInner is how many bytes of the reported packet, from its Ethernet
// header, the encoder keeps; longer frames are truncated.
const MaxInner = 128

// Report is one telemetry report, the encoder's input and the decoder's
// output. Fields a format cannot carry are dropped by its encoder and left
// zero by its decoder (see docs/int-reports.md).
type Report struct {
	Kind           Kind
	HwID           uint8  // 6 bits
	Seq            uint32 // v0.5: 32 bits; v2.0: 22 bits
	SwitchID       uint32 // v0.5 switch ID; v2.0 node ID
	IngressPort    uint16
	EgressPort     uint16
	QueueID        uint8
	QueueOccupancy uint32 // 24 bits
	IngressTS      uint64 // ns; v0.5 carries the low 32 bits
	EgressTS       uint64 // ns; v0.5 carries the low 32 bits; 0 = unknown
	HopLatency     uint32 // ns; 0 = unknown
	DropReason     uint8  // INT drop reason code (see package dropreason)

	// Domain-specific metadata, v2.0 only.
	KernelDropReason uint32          // raw enum skb_drop_reason value
	Packets          uint64          // packets since the previous report of the flow
	Bytes            uint64          // bytes since the previous report of the flow
	Direction        netif.Direction // netif.Ingress or netif.Egress; 0 when unknown
	ObservationPort  uint16          // port ID of the interface where it was seen

	Tracked bool   // F flag: the flow is on the watchlist
	Inner   []byte // the packet from its Ethernet header
}

// InnerType is the v2.0 InType field: what the inner contents are.
type InnerType uint8

// Inner content types of v2.0 individual reports.
const (
	InnerNone     InnerType = 0
	InnerTLV      InnerType = 1
	InnerDomain   InnerType = 2 // domain-specific extension data
	InnerEthernet InnerType = 3
	InnerIPv4     InnerType = 4
	InnerIPv6     InnerType = 5
)

// Report types of v2.0 individual reports (RepType).
const (
	RepTypeInnerOnly uint8 = 0
	RepTypeINT       uint8 = 1
	RepTypeIOAM      uint8 = 2
)

// DecodedReport is one decoded report with the wire details that Report
// does not model.
type DecodedReport struct {
	Report

	Congested    bool // Q flag
	Intermediate bool // v2.0 I flag
	Dropped      bool // D flag as sent (Kind is Drop when it is set)

	NProto uint8 // v0.5 next-protocol field

	RepType    uint8     // v2.0
	InType     InnerType // v2.0; InnerEthernet for v0.5
	RepMdBits  uint16    // v2.0: which baseline metadata was present
	DomainID   uint16    // v2.0 Domain Specific ID (0 = none)
	DSMdBits   uint16    // v2.0
	DSMdStatus uint16    // v2.0
	// DomainData is the raw domain-specific metadata (aliases the payload).
	// For DomainID == NsintDomainID its known fields are also decoded into
	// Report.
	DomainData []byte
}

// Decoded is the result of Decode. Reuse one value across calls: Decode
// resets it and reuses the Reports slice's memory.
type Decoded struct {
	Format  Format
	Reports []DecodedReport
	// Skipped counts v2.0 individual reports of types this package does not
	// decode (IOAM, reserved), skipped by their length.
	Skipped int
}
