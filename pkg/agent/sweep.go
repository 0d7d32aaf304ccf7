package agent

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/intreport"
)

// sweepPeriod is how often the agent sweeps for counts no packet will
// report (datapath.Sweep): a quarter of the report interval, between 100 ms
// and 500 ms. A flow's last counts then leave at most the report interval
// plus one period after its last packet.
func sweepPeriod(reportInterval time.Duration) time.Duration {
	return min(max(reportInterval/4, 100*time.Millisecond), 500*time.Millisecond)
}

// sweeper turns what datapath.Sweep takes into reports. Sweeps are
// serialised by the datapath, and so are the calls of emit: its scratch
// space is used by one sweep at a time.
type sweeper struct {
	a     *Agent
	rep   intreport.Report
	inner []byte
	m     sweepMetrics
}

type sweepMetrics struct {
	sweeps   *prometheus.CounterVec
	duration prometheus.Histogram
	reports  *prometheus.CounterVec
}

func newSweepMetrics() sweepMetrics {
	return sweepMetrics{
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_sweeps_total",
			Help: "Sweeps for counts no packet will report, by why (interval: quiet flows; port: ports going away; stop: the agent stopping) and result (ok, error).",
		}, []string{"why", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nsint_sweep_duration_seconds",
			Help:    "How long one sweep took: every CPU's last-flow slots, the flow table scan, the counts taken.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_sweep_reports_total",
			Help: "Reports made by sweeps, by reason (idle: quiet for the report interval; end: TCP FIN or RST; flush: port going away or agent stopping; drop: drops the rate limit folded).",
		}, []string{"reason"}),
	}
}

func (m sweepMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sweeps, m.duration, m.reports}
}

// run sweeps every period until ctx ends.
func (s *sweeper) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep("interval", datapath.SweepOptions{})
		}
	}
}

// sweep runs one sweep and exports its reports; a failed sweep is logged
// and counted, and the next one takes what it left.
func (s *sweeper) sweep(why string, opts datapath.SweepOptions) {
	start := time.Now()
	st, err := s.a.dp.Sweep(opts, s.emit)
	s.m.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.m.sweeps.WithLabelValues(why, "error").Inc()
		s.a.log.Warn("sweep", "why", why, "err", err, "reports", st.Reports)
		return
	}
	s.m.sweeps.WithLabelValues(why, "ok").Inc()
	if why != "interval" {
		s.a.log.Debug("swept", "why", why, "ports", opts.Ports, "reports", st.Reports, "flows", st.Flows)
	}
}

func (s *sweeper) emit(ev *datapath.Event) {
	s.m.reports.WithLabelValues(ev.Reason.String()).Inc()
	s.a.export(ev, &s.rep, s.inner)
}
