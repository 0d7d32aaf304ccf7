package agent

import (
	"slices"
	"strconv"

	"github.com/nsint/nsint/pkg/datapath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the agent's Prometheus metrics. Counters owned by other
// packages (datapath, exporter, watcher, attacher) are read at scrape time by
// statsCollector, so there is one source of truth for each figure.
type metrics struct {
	reg             *prometheus.Registry
	discoveryEvents *prometheus.CounterVec
	attachErrors    *prometheus.CounterVec
	reports         *prometheus.CounterVec
	portsExhausted  prometheus.Counter
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		discoveryEvents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_discovery_events_total", Help: "Namespace and interface events from discovery, by kind.",
		}, []string{"kind"}),
		attachErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_attach_errors_total", Help: "Attachment failures: load (dispatcher), attach, gone (interface vanished mid-attach).",
		}, []string{"reason"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nsint_reports_total", Help: "INT reports produced from kernel events, by type (flow, drop).",
		}, []string{"type"}),
		portsExhausted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nsint_port_ids_exhausted_total", Help: "Interfaces left without a port ID because every ID was in use.",
		}),
	}
	m.reg.MustRegister(a.sweeper.m.collectors()...)
	m.reg.MustRegister(m.discoveryEvents, m.attachErrors, m.reports, m.portsExhausted,
		&statsCollector{a: a},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

var (
	descAttached = prometheus.NewDesc("nsint_ports_attached", "Interfaces with both TC hooks attached, by mode.", []string{"mode"}, nil)
	descNetns    = prometheus.NewDesc("nsint_netns_watched", "Network namespaces watched.", nil, nil)
	descRecov    = prometheus.NewDesc("nsint_discovery_recoveries_total", "Netlink subscriptions re-opened and namespaces re-listed after an error.", nil, nil)
	descRead     = prometheus.NewDesc("nsint_ring_reports_total", "Reports read from the report ring.", nil, nil)
	descBad      = prometheus.NewDesc("nsint_ring_malformed_total", "Records of the report ring that could not be decoded (a bug: should stay 0).", nil, nil)
	descQDrops   = prometheus.NewDesc("nsint_export_queue_drops_total", "Reports dropped because the export queue was full while its sender was not running (at start or stop).", nil, nil)
	descQWaits   = prometheus.NewDesc("nsint_export_queue_waits_total", "Reports that waited for a free slot of the full export queue (nothing lost: the kernel's report ring held what came meanwhile).", nil, nil)
	descSent     = prometheus.NewDesc("nsint_export_sent_total", "Report datagrams sent, by collector.", []string{"collector"}, nil)
	descSendErr  = prometheus.NewDesc("nsint_export_send_errors_total", "Send errors, by collector.", []string{"collector"}, nil)
	portLabels   = []string{"node", "port", "interface", "netns", "direction", "pod", "pod_namespace", "network"}
	descPkts     = prometheus.NewDesc("nsint_port_packets_total", "Packets seen at a port's TC hook.", portLabels, nil)
	descBytes    = prometheus.NewDesc("nsint_port_bytes_total", "Bytes seen at a port's TC hook.", portLabels, nil)
	descDrops    = prometheus.NewDesc("nsint_port_drops_total", "Kernel drops of packets of a port (skb:kfree_skb).", portLabels, nil)
	descFlowless = prometheus.NewDesc("nsint_port_flowless_packets_total",
		"Packets seen at a port's TC hook that are in no flow (not IP, or truncated): no report carries them.", portLabels, nil)
	descReported = prometheus.NewDesc("nsint_port_reported_packets_total",
		"Packets of the flow reports this agent made that name the port (ingress: as ingress port; egress: as egress port). packets - flowless - reported, once an interface is quiet for the report interval and a second, is what no report carries: flow-table evictions, forwarded packets whose egress port is not observed.",
		portLabels, nil)
	descDropReasons = prometheus.NewDesc("nsint_port_reported_drops_total",
		"Drops of a port by kernel drop reason (enum skb_drop_reason name without SKB_DROP_REASON_, or unknown): the drops this agent's drop reports carry, by observation port and direction. Only drops by the datapath's rule; summed over reason it equals nsint_port_drops_total once the port's drops are reported (at most the drop report interval and one sweep after the last). A series appears with the first drop of its reason.",
		append(slices.Clone(portLabels), "reason"), nil)
	descDropWhy = prometheus.NewDesc("nsint_drop_reason_supported",
		"1 when the kernel's skb:kfree_skb gives a drop reason (5.17+, or backported); 0 when drops are reported with reason unknown.",
		nil, nil)
	descDatapath = prometheus.NewDesc("nsint_datapath_events_total",
		"The eBPF programs' own counters, by event: reports, ring_full (reports the report ring had no room for; their counts stay in the kernel for a later report), unparsed (packets not IP or truncated: counted for the port, in no flow), no_identity, flow_update_errors, drop_reports, drops_folded (drops folded into a later report), unwatched, slot_flush_lost (slot counts whose flow entry was evicted), not_drops (frees that are no drop: docs/architecture.md), sweep_reports, sweep_bypassed, sweep_scanned (flow entries the in-kernel scan looked at), first_packets (first packets of flows reported on their own: a flow is stored from its second packet on).",
		[]string{"event"}, nil)
	descNotFirst = prometheus.NewDesc("nsint_attach_not_first_total",
		"Attachments left with another tool's legacy tc filter ahead of ours (at priority 1), which may hide packets from nsint.", nil, nil)
	descMoved = prometheus.NewDesc("nsint_attach_moved_total",
		"Attachments of ours moved to the head of their hook because another tool's filter or program ran ahead.", nil, nil)
	descFlowTable = prometheus.NewDesc("nsint_flow_table_shared",
		"1 when the kernel flow state is one shared table (BPF_CMPXCHG, 5.12+); 0 when it is per CPU (one entry per CPU that carries a flow, each reported on its own).",
		nil, nil)
)

// statsCollector reads the other packages' counters at scrape time. Per-port
// series exist only for current ports, so label sets stay bounded.
type statsCollector struct{ a *Agent }

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAttached, descNetns, descRecov, descRead, descBad, descQDrops, descQWaits,
		descSent, descSendErr, descPkts, descBytes, descDrops, descFlowless, descReported, descDropReasons, descDropWhy, descFlowTable, descNotFirst, descMoved, descDatapath} {
		ch <- d
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	for mode, n := range a.reg.attachedByMode() {
		ch <- prometheus.MustNewConstMetric(descAttached, prometheus.GaugeValue, float64(n), mode)
	}
	if a.dp != nil {
		supported := 0.0
		if a.dp.DropReasonSupported() {
			supported = 1
		}
		ch <- prometheus.MustNewConstMetric(descDropWhy, prometheus.GaugeValue, supported)
		shared := 0.0
		if a.dp.SharedFlowTable() {
			shared = 1
		}
		ch <- prometheus.MustNewConstMetric(descFlowTable, prometheus.GaugeValue, shared)
		if st, err := a.dp.Stats(); err != nil {
			a.log.Warn("read datapath counters", "err", err)
		} else {
			for _, e := range []struct {
				name string
				v    uint64
			}{{"reports", st.Reports}, {"ring_full", st.RingFull}, {"unparsed", st.Unparsed},
				{"no_identity", st.NoIdentity}, {"flow_update_errors", st.FlowUpdateErrors},
				{"drop_reports", st.DropReports}, {"drops_folded", st.DropsSuppressed}, {"unwatched", st.Unwatched},
				{"slot_flush_lost", st.CacheFlushLost}, {"not_drops", st.NotDrops},
				{"sweep_reports", st.SweepReports}, {"sweep_bypassed", st.SweepBypassed},
				{"sweep_scanned", st.SweepScanned}, {"first_packets", st.FirstPackets}} {
				ch <- prometheus.MustNewConstMetric(descDatapath, prometheus.CounterValue, float64(e.v), e.name)
			}
		}
	}
	if a.att != nil {
		s := a.att.Stats()
		ch <- prometheus.MustNewConstMetric(descNotFirst, prometheus.CounterValue, float64(s.NotFirst))
		ch <- prometheus.MustNewConstMetric(descMoved, prometheus.CounterValue, float64(s.Moved))
	}
	if a.watch != nil {
		s := a.watch.Stats()
		ch <- prometheus.MustNewConstMetric(descNetns, prometheus.GaugeValue, float64(s.Namespaces))
		ch <- prometheus.MustNewConstMetric(descRecov, prometheus.CounterValue, float64(s.Recoveries))
	}
	if rd := a.reader.Load(); rd != nil {
		ch <- prometheus.MustNewConstMetric(descRead, prometheus.CounterValue, float64(rd.Events()))
		ch <- prometheus.MustNewConstMetric(descBad, prometheus.CounterValue, float64(rd.Malformed()))
	}
	if a.exp != nil {
		s := a.exp.Stats()
		ch <- prometheus.MustNewConstMetric(descQDrops, prometheus.CounterValue, float64(s.QueueDrops))
		ch <- prometheus.MustNewConstMetric(descQWaits, prometheus.CounterValue, float64(s.QueueWaits))
		for _, cs := range s.Collectors {
			ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(cs.Sent), cs.Collector)
			ch <- prometheus.MustNewConstMetric(descSendErr, prometheus.CounterValue, float64(cs.Errors), cs.Collector)
		}
	}
	ids := a.reg.ports()
	counters, err := a.dp.PortCountersOf(ids)
	if err != nil {
		a.log.Warn("read port counters", "err", err)
		return
	}
	drops := a.reported.dropsByPort()
	for i, id := range ids {
		name, netns, meta, ok := a.reg.portLabels(id)
		if !ok {
			continue
		}
		cnt := counters[i]
		var pod, podNS string
		if meta.Pod != nil {
			pod, podNS = meta.Pod.Name, meta.Pod.Namespace
		}
		port := strconv.Itoa(int(id))
		repIn, repOut := a.reported.get(id)
		for _, d := range []struct {
			name     string
			c        datapath.DirCounters
			reported uint64
		}{
			{"ingress", cnt.Ingress, repIn},
			{"egress", cnt.Egress, repOut},
		} {
			lv := []string{a.cfg.NodeName, port, name, netns, d.name, pod, podNS, meta.Network}
			ch <- prometheus.MustNewConstMetric(descPkts, prometheus.CounterValue, float64(d.c.Packets), lv...)
			ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(d.c.Bytes), lv...)
			ch <- prometheus.MustNewConstMetric(descDrops, prometheus.CounterValue, float64(d.c.Drops), lv...)
			ch <- prometheus.MustNewConstMetric(descFlowless, prometheus.CounterValue, float64(d.c.Flowless), lv...)
			ch <- prometheus.MustNewConstMetric(descReported, prometheus.CounterValue, float64(d.reported), lv...)
		}
		for _, rc := range drops[id] {
			lv := []string{a.cfg.NodeName, port, name, netns, rc.dir.String(), pod, podNS, meta.Network, rc.reason}
			ch <- prometheus.MustNewConstMetric(descDropReasons, prometheus.CounterValue, float64(rc.drops), lv...)
		}
	}
}
