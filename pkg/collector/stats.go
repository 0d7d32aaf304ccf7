package collector

import (
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/otlpexport"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// Stats are the collector's counters (also exported as metrics and served at
// /api/v1/stats).
type Stats struct {
	Datagrams        uint64            `json:"datagrams"`
	Bytes            uint64            `json:"bytes"`
	Reports          uint64            `json:"reports"`
	FlowReports      uint64            `json:"flowReports"`
	DropReports      uint64            `json:"dropReports"`
	Errors           map[string]uint64 `json:"errors"` // by reason, every reason present
	SocketDrops      uint64            `json:"socketDrops"`
	LostReports      uint64            `json:"lostReports"`
	Sources          int               `json:"sources"`
	SequenceOverflow uint64            `json:"sequenceOverflow"`
	NoPorts          uint64            `json:"noPorts"`
	EmptyReports     uint64            `json:"emptyReports"` // counters present and zero: no row touched
	Unresolved       uint64            `json:"unresolved"`
	// Rejected counts the reports dropped because their source address is
	// no known agent (metric reason "unknown_source"): in no view.
	Rejected        uint64            `json:"rejected"`
	Pending         int               `json:"pending"`
	PendingOverflow uint64            `json:"pendingOverflow"`
	PendingResolved uint64            `json:"pendingResolved"`
	Table           flowtable.Stats   `json:"table"`
	Topology        topology.Stats    `json:"topology"`
	OTLP            *otlpexport.Stats `json:"otlp,omitempty"` // nil without an OTLP endpoint
}

// Stats returns a snapshot of every counter.
func (c *Collector) Stats() Stats {
	s := Stats{
		Datagrams:    c.ing.datagrams.Load(),
		Bytes:        c.ing.bytes.Load(),
		Reports:      c.ing.reports.Load(),
		FlowReports:  c.ing.flowReports.Load(),
		DropReports:  c.ing.dropReports.Load(),
		Errors:       make(map[string]uint64, numReasons),
		SocketDrops:  c.sock.kernelDrops.Load(),
		NoPorts:      c.ing.noPorts.Load(),
		EmptyReports: c.ing.empty.Load(),
		Unresolved:   c.ing.unresolved.Load(),
		Rejected:     c.ing.rejected.Load(),
		Table:        c.table.Stats(),
		Topology:     c.resolver.Stats(),
	}
	for r := ErrorReason(0); r < numReasons; r++ {
		s.Errors[r.String()] = c.ing.errors[r].Load()
	}
	s.LostReports, s.SequenceOverflow, s.Sources = c.seq.stats()
	s.Pending, s.PendingOverflow, s.PendingResolved = c.pending.stats()
	if c.otlp != nil {
		o := c.otlp.Stats()
		s.OTLP = &o
	}
	return s
}
