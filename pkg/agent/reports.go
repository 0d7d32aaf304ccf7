package agent

import (
	"errors"
	"fmt"
	"math"
	"os"
	"sync/atomic"
	"time"

	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/intreport"
)

// maxReadErrors is how many reads in a row may fail before the report reader
// counts as stopped: one failure is a bad record, a run of them a reader
// that no longer works.
const maxReadErrors = 100

// readReports runs the one report reader: each event becomes an INT report for
// the exporter. On a full export queue it waits for the sender, and the
// kernel's report ring holds what comes meanwhile (when that is full too,
// the kernel keeps the counts for later reports); it allocates nothing per
// event. It returns nil when draining is
// set and rd is closed or a flush has read out what was pending, and an
// error when rd is closed before or reads keep failing.
func (a *Agent) readReports(rd *datapath.Reader, draining *atomic.Bool) error {
	var (
		ev     datapath.Event
		rep    intreport.Report
		failed int
	)
	inner := make([]byte, 0, 14+int(a.cfg.SnapLen))
	for {
		err := rd.Read(&ev)
		switch {
		case err == nil:
			failed = 0
			a.export(&ev, &rep, inner)
		case errors.Is(err, os.ErrClosed):
			if draining.Load() {
				return nil
			}
			return fmt.Errorf("closed before the agent stopped: %w", err)
		case errors.Is(err, datapath.ErrFlushed) || errors.Is(err, os.ErrDeadlineExceeded):
			if draining.Load() {
				return nil
			}
		default:
			if failed++; failed >= maxReadErrors {
				return fmt.Errorf("%d reads in a row failed, the last: %w", failed, err)
			}
			a.log.Warn("read report", "err", err)
		}
	}
}

// export turns ev into a report and queues it for the collectors (waiting
// for a slot while the exporter runs; see exporter.Enqueue). rep and inner
// are the caller's scratch space. A v0.5 report stands for the one packet it
// carries, so a report without a packet — a sweep's report of a quiet flow,
// or one of bytes alone (datapath emit_flow) — is not sent in v0.5: it would
// count a packet that is not there.
func (a *Agent) export(ev *datapath.Event, rep *intreport.Report, inner []byte) {
	if (ev.Data == nil || ev.Packets == 0) && ev.Type == datapath.FlowEvent && a.format == intreport.V05 {
		return
	}
	a.toReport(ev, rep, inner)
	a.metrics.reports.WithLabelValues(rep.Kind.String()).Inc()
	switch ev.Type {
	case datapath.FlowEvent:
		a.reported.add(ev.InPort, ev.OutPort, ev.Packets)
	case datapath.DropEvent:
		a.reported.addDrops(ev.Port, ev.Direction, a.dropReasonLabel(ev), ev.Packets)
	}
	if a.exp != nil {
		a.exp.Enqueue(rep)
	}
}

// toReport fills rep from ev. inner is scratch space for a frame that needs
// an Ethernet header in front of it.
func (a *Agent) toReport(ev *datapath.Event, rep *intreport.Report, inner []byte) {
	*rep = intreport.Report{
		Kind:            intreport.Flow,
		SwitchID:        a.cfg.SwitchID,
		IngressPort:     ev.InPort,
		EgressPort:      ev.OutPort,
		IngressTS:       uint64(ev.InTime.UnixNano()),
		Packets:         ev.Packets,
		Bytes:           ev.Bytes,
		ObservationPort: ev.Port,
		Direction:       ev.Direction,
		Tracked:         true,
		Inner:           ev.Data,
	}
	if ev.HasHopLatency {
		rep.EgressTS = uint64(ev.OutTime.UnixNano())
		rep.HopLatency = uint32(min(ev.HopLatency, time.Duration(math.MaxUint32)))
	}
	if ev.Type == datapath.DropEvent {
		rep.Kind = intreport.Drop
		rep.Tracked = false
		if ev.DropReasonKnown {
			rep.KernelDropReason = ev.DropReason
			rep.DropReason = dropreason.ForFamily(a.drops.INTCode(ev.DropReason), ev.Dst.Is6())
		}
		if ev.DataIsL3 && ev.Data != nil {
			rep.Inner = withEthernet(inner, ev)
		}
	}
	if ev.Data == nil { // a sweep's report: no packet to show
		rep.Inner = synthesizeInner(inner, ev)
	}
}

// reportedPackets counts, per port and direction, the packets of the flow
// reports the agent made that name the port (as a collector counts them:
// ingress for the report's ingress port, egress for its egress port). Next
// to the kernel's per-port counters it shows packets no report carries.
// It also counts the drops of the drop reports by port, direction and
// kernel reason (reportedDrops).
type reportedPackets struct {
	ports [][2]atomic.Uint64 // by port ID: ingress, egress
	drops reportedDrops
}

func newReportedPackets(maxPorts int) *reportedPackets {
	return &reportedPackets{ports: make([][2]atomic.Uint64, maxPorts)}
}

func (r *reportedPackets) add(in, out uint16, packets uint64) {
	if int(in) < len(r.ports) && in != 0 {
		r.ports[in][0].Add(packets)
	}
	if int(out) < len(r.ports) && out != 0 {
		r.ports[out][1].Add(packets)
	}
}

func (r *reportedPackets) get(port uint16) (ingress, egress uint64) {
	if int(port) >= len(r.ports) {
		return 0, 0
	}
	return r.ports[port][0].Load(), r.ports[port][1].Load()
}

// reset starts port's counts, drops included, again: the port was released.
func (r *reportedPackets) reset(port uint16) {
	if int(port) < len(r.ports) {
		r.ports[port][0].Store(0)
		r.ports[port][1].Store(0)
	}
	r.drops.reset(port)
}

// withEthernet prepends an Ethernet header with zero addresses to an L3
// capture (a drop before the packet had a MAC header), so that every report's
// inner packet starts at Ethernet as the formats say.
func withEthernet(buf []byte, ev *datapath.Event) []byte {
	etype := [2]byte{0x08, 0x00}
	if len(ev.Data) > 0 && ev.Data[0]>>4 == 6 {
		etype = [2]byte{0x86, 0xdd}
	}
	buf = buf[:0]
	buf = append(buf, make([]byte, 12)...)
	buf = append(buf, etype[:]...)
	return append(buf, ev.Data...)
}
