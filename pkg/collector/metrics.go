package collector

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/dropreason"
)

const ns = "nsint_collector_"

// metrics exports the collector's counters. Per-interface series are built
// at scrape time from the flow table's per-port totals, so the label sets of
// ports that left the topology disappear with their totals.
type metrics struct {
	c        *Collector
	registry *prometheus.Registry
	latency  prometheus.Histogram

	ifaceReports, ifacePackets, ifaceBytes, ifaceDrops *prometheus.Desc

	datagrams, reports, errors, kernelDrops, lost, unresolved, pendingOverflow           *prometheus.Desc
	pendingNow, resolveFailures, fetches, evictions, flows, seqOverflow, empty, rejected *prometheus.Desc

	agentReports, agentLost, agentInfo *prometheus.Desc

	// OTLP export, described only when it is on.
	otlpRecords, otlpExported, otlpDropped, otlpDroppedPackets, otlpDroppedBytes, otlpDroppedDrops *prometheus.Desc
	otlpRequests, otlpFailed, otlpQueued, otlpQueueSize, otlpPendingRows                           *prometheus.Desc
}

// ifaceLabels name one port of one node: the port ID keeps series of
// same-named interfaces apart (every pod has an eth0).
var ifaceLabels = []string{"node", "port", "interface", "netns", "pod_namespace", "pod", "network", "direction"}

func newMetrics(c *Collector) *metrics {
	m := &metrics{c: c, registry: prometheus.NewRegistry()}
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    ns + "hop_latency_seconds",
		Help:    "Hop latency of flow reports (v2.0 hop latency, or egress minus ingress timestamp).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12), // 1 µs .. ~4 s
	})
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(ns+name, help, labels, nil)
	}
	m.ifaceReports = d("interface_reports_total", "INT reports per interface and direction.", ifaceLabels...)
	m.ifacePackets = d("interface_packets_total", "Packets per interface and direction (v2.0 counters, else one per report).", ifaceLabels...)
	m.ifaceBytes = d("interface_bytes_total", "Bytes per interface and direction (v2.0 counters, else the reported packet's IP length).", ifaceLabels...)
	m.ifaceDrops = d("interface_drops_total", "Drops per interface, direction and INT drop reason (a v2.0 drop report's count, else one per drop report).", append(ifaceLabels, "reason_code", "reason")...)
	m.datagrams = d("datagrams_total", "UDP datagrams received.")
	m.reports = d("reports_total", "INT reports decoded, by kind.", "kind")
	m.errors = d("errors_total", "Datagrams not used, by reason (receive and decode errors).", "reason")
	m.kernelDrops = d("socket_drops_total", "Datagrams the kernel dropped because the receive buffer was full (SO_RXQ_OVFL).")
	m.lost = d("lost_reports_total", "Reports missing from sequence-number gaps, over all agents.")
	m.unresolved = d("resolution_failures_total", "Reports whose ports were unknown on arrival (queued for later resolution).")
	m.pendingOverflow = d("pending_overflow_total", "Unresolved reports dropped because the pending queue was full.")
	m.pendingNow = d("pending_reports", "Reports waiting for their ports to resolve.")
	m.resolveFailures = d("topology_fetch_errors_total", "Failed topology fetches from agents.")
	m.fetches = d("topology_fetches_total", "Topology fetches from agents.")
	m.evictions = d("flow_evictions_total", "Flow rows evicted (least recently seen) because the table was full.")
	m.flows = d("flows", "Flow rows in the table.")
	m.seqOverflow = d("sequence_sources_overflow_total", "Reports whose source was not tracked for gaps because too many sources were.")
	m.rejected = d("reports_rejected_total", "Reports dropped unseen, by reason: unknown_source (their source address is no agent whose topology was fetched from it, nor a static --agents host).", "reason")
	m.empty = d("empty_reports_total", "Reports whose counters were present and zero (nothing crossed): no row was created or updated.")
	// Per agent: one series per tracked source address (at most
	// --max-sources), labelled by the address, which does not change when
	// the agent's node becomes known; agent_info gives the node.
	m.agentReports = d("agent_reports_total", "Sequenced reports received per agent (source address).", "agent")
	m.agentLost = d("agent_lost_reports_total", "Reports missing from sequence-number gaps per agent (source address): their counts are missing from every total.", "agent")
	m.agentInfo = d("agent_info", "Always 1: the node and switch ID of each agent (source address); node is empty while its topology is unknown.", "agent", "node", "switch_id")
	m.otlpRecords = d("otlp_records_total", "Flow records made for OTLP export (one per row that changed in an interval, holding its increments).")
	m.otlpExported = d("otlp_records_exported_total", "Flow records the OTLP endpoint accepted.")
	m.otlpDropped = d("otlp_records_dropped_total", "Flow records (row increments) given up, by reason: export_failed (retried for --otlp-max-retry-time), queue_full, shutdown (flush out of time), evicted (row evicted before export).", "reason")
	m.otlpDroppedPackets = d("otlp_dropped_packets_total", "Packets the dropped flow records held.")
	m.otlpDroppedBytes = d("otlp_dropped_bytes_total", "Bytes the dropped flow records held.")
	m.otlpDroppedDrops = d("otlp_dropped_drops_total", "Drops (packets the stack discarded) the dropped flow records held.")
	m.otlpRequests = d("otlp_requests_total", "OTLP export requests (attempts) made.")
	m.otlpFailed = d("otlp_requests_failed_total", "OTLP export requests that failed (each is retried with backoff).")
	m.otlpQueued = d("otlp_queue_records", "Flow records waiting for export.")
	m.otlpQueueSize = d("otlp_queue_capacity_records", "Flow records the export queue holds at most (--otlp-queue-size).")
	m.otlpPendingRows = d("otlp_pending_rows", "Rows changed since their last export and not yet made into records.")
	m.registry.MustRegister(m, m.latency)
	return m
}

func (m *metrics) observeLatency(ns uint32) { m.latency.Observe(float64(ns) / 1e9) }

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.ifaceReports, m.ifacePackets, m.ifaceBytes, m.ifaceDrops,
		m.datagrams, m.reports, m.errors, m.kernelDrops, m.lost, m.unresolved, m.pendingOverflow,
		m.pendingNow, m.resolveFailures, m.fetches, m.evictions, m.flows, m.seqOverflow, m.empty, m.rejected,
		m.agentReports, m.agentLost, m.agentInfo} {
		ch <- d
	}
	if m.c.otlp != nil {
		for _, d := range []*prometheus.Desc{m.otlpRecords, m.otlpExported, m.otlpDropped, m.otlpDroppedPackets,
			m.otlpDroppedBytes, m.otlpDroppedDrops, m.otlpRequests, m.otlpFailed, m.otlpQueued, m.otlpQueueSize,
			m.otlpPendingRows} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	c := m.c
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	c.table.EachPortTotals(func(t flowtable.PortTotals) {
		p := t.Port
		podNS, pod := "", ""
		if p.Pod != nil {
			podNS, pod = p.Pod.Namespace, p.Pod.Name
		}
		l := []string{p.Node, strconv.Itoa(int(p.ID)), p.Name, p.Netns.Name, podNS, pod, p.Network, t.Direction.String()}
		counter(m.ifaceReports, t.Reports, l...)
		counter(m.ifacePackets, t.Packets, l...)
		counter(m.ifaceBytes, t.Bytes, l...)
		for code, n := range t.DropReasons {
			counter(m.ifaceDrops, n, append(l, strconv.Itoa(int(code)), reasonName(code))...)
		}
	})
	s := c.Stats()
	counter(m.datagrams, s.Datagrams)
	counter(m.reports, s.FlowReports, "flow")
	counter(m.reports, s.DropReports, "drop")
	for reason, n := range s.Errors {
		counter(m.errors, n, reason)
	}
	counter(m.kernelDrops, s.SocketDrops)
	counter(m.lost, s.LostReports)
	counter(m.unresolved, s.Unresolved)
	counter(m.pendingOverflow, s.PendingOverflow)
	gauge(m.pendingNow, float64(s.Pending))
	counter(m.resolveFailures, s.Topology.FetchErrors)
	counter(m.fetches, s.Topology.Fetches)
	counter(m.evictions, s.Table.Evictions)
	gauge(m.flows, float64(s.Table.Flows))
	counter(m.seqOverflow, s.SequenceOverflow)
	counter(m.empty, s.EmptyReports)
	counter(m.rejected, s.Rejected, "unknown_source")
	for _, a := range c.Agents() {
		counter(m.agentReports, a.Reports, a.Source)
		counter(m.agentLost, a.LostReports, a.Source)
		gauge(m.agentInfo, 1, a.Source, a.Node, strconv.FormatUint(uint64(a.SwitchID), 10))
	}
	if o := s.OTLP; o != nil {
		counter(m.otlpRecords, o.Records)
		counter(m.otlpExported, o.Exported)
		for reason, n := range o.Dropped {
			counter(m.otlpDropped, n, reason)
		}
		counter(m.otlpDroppedPackets, o.DroppedPackets)
		counter(m.otlpDroppedBytes, o.DroppedBytes)
		counter(m.otlpDroppedDrops, o.DroppedDrops)
		counter(m.otlpRequests, o.Requests)
		counter(m.otlpFailed, o.FailedRequests)
		gauge(m.otlpQueued, float64(o.Queued))
		gauge(m.otlpQueueSize, float64(o.QueueSize))
		gauge(m.otlpPendingRows, float64(o.PendingRows))
	}
}

// reasonName names an INT drop reason code, "code N" when it has no name.
func reasonName(code uint8) string {
	if n := dropreason.CodeName(code); n != "" {
		return n
	}
	return "code " + strconv.Itoa(int(code))
}
