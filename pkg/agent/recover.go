package agent

import (
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nsint/nsint/pkg/datapath"
)

// GenerationDir is where each agent start pins its datapath's state for the
// next start to recover (datapath.Pin): <bpffs>/nsint/gen.
func GenerationDir(bpffs string) string { return filepath.Join(PinDir(bpffs), "gen") }

// recovery carries what earlier agents left in the kernel over to this one.
// At start the agent opens the generations earlier agents pinned and pins
// its own; once ready — its dispatchers having replaced theirs — it reports
// what those generations counted and no report carried, through the
// sweeper, and carries their port counters on (datapath.Recover).
type recovery struct {
	// gens are the earlier generations, opened at start, recovered once
	// ready; becomeReady takes them, Run closes what it left.
	gens []*datapath.Generation
	m    recoveryMetrics
}

type recoveryMetrics struct {
	enabled     prometheus.Gauge
	errors      *prometheus.CounterVec
	generations *prometheus.CounterVec
	reports     *prometheus.CounterVec
	packets     prometheus.Counter
	bytes       prometheus.Counter
	drops       prometheus.Counter
	lost        *prometheus.CounterVec
}

func newRecovery() *recovery {
	return &recovery{m: recoveryMetrics{
		enabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nsint_recovery_enabled",
			Help: "1 when this agent's kernel state is pinned for the next start to recover what it leaves unreported; 0 when it could not be (no BPF filesystem, pinning failed).",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_recovery_errors_total",
			Help: "Recovery failures, by stage (bpffs: no BPF filesystem; pin: this agent's state not pinned; open: earlier generations not listed; recover: an earlier generation not read; remove: pins left behind).",
		}, []string{"stage"}),
		generations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_recovered_generations_total",
			Help: "Earlier agents' pinned kernel state found at start, by result (recovered; unreadable: another version's layout or incomplete, removed; failed: could not be read, removed).",
		}, []string{"result"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_recovered_reports_total",
			Help: "Reports made of what earlier agents left in the kernel, by type (flow, drop).",
		}, []string{"type"}),
		packets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nsint_recovered_packets_total",
			Help: "Packets the recovered flow reports carry: counted by an earlier agent's programs and reported by none.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nsint_recovered_bytes_total",
			Help: "Bytes the recovered flow reports carry.",
		}),
		drops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nsint_recovered_drops_total",
			Help: "Drops the recovered drop reports carry: folded by an earlier agent's rate limit and reported by none.",
		}),
		lost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_recovery_lost_total",
			Help: "Counts found in earlier agents' kernel state that no report can carry, by count (packets, drops) and why (evicted: a last-flow slot whose flow entry was gone; port_gone: the interface went away while no agent ran).",
		}, []string{"count", "why"}),
	}}
}

func (m recoveryMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.enabled, m.errors, m.generations, m.reports, m.packets, m.bytes, m.drops, m.lost}
}

// recoveryOff says, once, that the next start cannot recover what this
// agent leaves in the kernel.
func (a *Agent) recoveryOff(stage string, err error) {
	a.recov.m.errors.WithLabelValues(stage).Inc()
	a.log.Warn("counts this agent leaves in the kernel when it ends cannot be recovered by the next start",
		"stage", stage, "err", err)
}

// openRecovery opens the generations earlier agents pinned under --bpffs,
// removing those this version cannot read, and pins this agent's own. Call
// it after loading the datapath, before attaching anything.
func (a *Agent) openRecovery() {
	root := GenerationDir(a.cfg.BPFFSDir)
	gens, bad, err := a.dp.OpenGenerations(root)
	if err != nil {
		a.recov.m.errors.WithLabelValues("open").Inc()
		a.log.Warn("earlier agents' kernel state not recovered", "dir", root, "err", err)
	}
	for _, u := range bad {
		a.recov.m.generations.WithLabelValues("unreadable").Inc()
		a.log.Warn("removed an earlier agent's kernel state that this version cannot read; what it had not reported is lost",
			"generation", u.ID, "err", u.Err)
		if u.RemoveErr != nil {
			a.recov.m.errors.WithLabelValues("remove").Inc()
			a.log.Warn("remove pins", "generation", u.ID, "err", u.RemoveErr)
		}
	}
	a.recov.gens = gens
	if len(gens) > 0 {
		ids := make([]string, len(gens))
		for i, g := range gens {
			ids[i] = g.ID()
		}
		a.log.Info("found earlier agents' kernel state; reporting what it holds once ready", "generations", ids)
	}
	dir, err := a.dp.Pin(root)
	if err != nil {
		a.recoveryOff("pin", err)
		return
	}
	a.recov.m.enabled.Set(1)
	a.log.Debug("kernel state pinned for the next start", "dir", dir)
}

// recoverEarlier reports what the earlier generations hold; becomeReady
// calls it once this agent's dispatchers have replaced theirs.
func (a *Agent) recoverEarlier() {
	gens := a.recov.gens
	a.recov.gens = nil
	if len(gens) == 0 {
		return
	}
	st, err := a.dp.Recover(gens, a.sweeper.emitRecovered)
	m := a.recov.m
	m.generations.WithLabelValues("recovered").Add(float64(st.Generations))
	m.generations.WithLabelValues("failed").Add(float64(st.Failed))
	m.reports.WithLabelValues("flow").Add(float64(st.FlowReports))
	m.reports.WithLabelValues("drop").Add(float64(st.DropReports))
	m.packets.Add(float64(st.Packets))
	m.bytes.Add(float64(st.Bytes))
	m.drops.Add(float64(st.Drops))
	m.lost.WithLabelValues("packets", "evicted").Add(float64(st.EvictedPackets))
	m.lost.WithLabelValues("packets", "port_gone").Add(float64(st.PortGonePackets))
	m.lost.WithLabelValues("drops", "port_gone").Add(float64(st.PortGoneDrops))
	if err != nil {
		m.errors.WithLabelValues("recover").Inc()
		a.log.Warn("recover earlier agents' kernel state", "err", err)
	}
	a.log.Info("reported what earlier agents left in the kernel", "generations", st.Generations,
		"flowReports", st.FlowReports, "packets", st.Packets, "dropReports", st.DropReports, "drops", st.Drops,
		"queuedReports", st.Queued, "malformed", st.Malformed,
		"portsCarriedOn", st.BaselinePorts, "lostPackets", st.EvictedPackets+st.PortGonePackets, "lostDrops", st.PortGoneDrops)
}

// closeRecovery closes the generations not recovered (the agent stopped
// before it was ready); their pins stay for the next start.
func (a *Agent) closeRecovery() {
	for _, g := range a.recov.gens {
		if err := g.Close(); err != nil {
			a.log.Warn("close earlier generation", "err", err)
		}
	}
	a.recov.gens = nil
}

// emitRecovered exports a recovered event as a sweep's. datapath.Recover
// holds the sweep lock, so the sweeper's scratch space is this call's.
func (s *sweeper) emitRecovered(ev *datapath.Event) {
	s.a.export(ev, &s.rep, s.inner)
}
