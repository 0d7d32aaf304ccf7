package agent

import (
	"fmt"

	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/intreport"
)

// ReportPath is the agent's per-event report step on its own: what
// readReports does with each event it reads from the report ring (the report
// made from it, nsint_reports_total and the per-port reported packets and
// drops by reason counted, the report queued on the exporter), without the rest of an
// agent. It is the seam the report-pipeline benchmark (bench/) drives, so
// that it measures the agent's code rather than a copy. Like readReports,
// one goroutine calls Export at a time.
type ReportPath struct {
	a     *Agent
	rep   intreport.Report
	inner []byte
}

// NewReportPath is the report step of an agent configured by cfg that
// queues on exp (nil: reports are counted, not sent, as without
// --collector). Drop reasons are named as the agent names them on this
// kernel (unknown where the kernel cannot tell them).
func NewReportPath(cfg *config.Agent, exp *exporter.Exporter) (*ReportPath, error) {
	format, err := intreport.ParseFormat(cfg.ReportFormat)
	if err != nil {
		return nil, fmt.Errorf("report path: %w", err)
	}
	a := &Agent{cfg: cfg, exp: exp, format: format, reg: newRegistry(), reported: newReportedPackets(cfg.MaxPorts)}
	a.sweeper = &sweeper{a: a, m: newSweepMetrics()}
	a.metrics = newMetrics(a)
	// As Run: without the kernel's names, drops carry reason unknown.
	names, _ := datapath.DropReasonNames()
	a.drops = dropreason.NewResolver(names)
	return &ReportPath{a: a, inner: make([]byte, 0, 14+int(cfg.SnapLen))}, nil
}

// Export turns ev into a report, counts it and queues it (Agent.export).
func (p *ReportPath) Export(ev *datapath.Event) { p.a.export(ev, &p.rep, p.inner) }
