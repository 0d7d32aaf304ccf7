// Package collector is nsint's INT collector: it receives Telemetry Reports
// (v0.5 and v2.0) over UDP, resolves their port IDs to interfaces through the
// agents' topology APIs, aggregates them into a bounded flow table and serves
// the views (REST, web page, Prometheus metrics) and, with an OTLP endpoint,
// exports the rows' increments as OpenTelemetry log records (otlpexport).
//
// It owns the wiring and the ingest path: reading datagrams in batches
// (recvmmsg, with the kernel's SO_RXQ_OVFL drop counter), decoding with
// pkg/intreport, sequence-gap accounting per (source address, switch ID,
// hw_id, format) and per agent (source address; restarts are not losses),
// the list of agents (source, switch ID) it received from — with sharded
// replicas, the nodes this replica serves — and the bounded
// queue of reports whose ports are not known yet (replayed after each
// topology change). Parsing inner packets, the flow table, topology
// resolution and the HTTP views live in the sub-packages.
//
// Reports count only from agents: a datagram is used only when its source
// address is a known agent (topology.SourceAgent: its topology was fetched
// from that address, or it is the host of a static agent URL). Until the
// first fetch from a new source ends, its reports wait in the pending queue;
// once that fetch failed, they and the source's later reports are dropped and
// counted as rejected (Stats.Rejected), in no row, total or agent list.
//
// Counters per report: a v2.0 report with nsint's domain-specific counters
// adds its packets and bytes since the previous report. A report without
// counters (every v0.5 report, or a v2.0 reporter that sends none) stands for
// the one packet it carries: packets +1, bytes + that packet's IP length (IPv4
// total length, IPv6 payload length + 40; the captured length for non-IP
// frames), so v0.5 figures are a count of reported packets, not of all
// traffic. A drop report adds to drops (by INT reason), never to packets: as
// many as its packet counter says (the agent folds a flow's drops within its
// rate limit into one report), one when it has no counters. A report whose
// counters are present but count no packet (nothing crossed) is counted as
// empty and creates or touches no row: a row always has packets or drops. Hop
// latency comes from the v2.0 hop-latency field, else egress − ingress
// timestamp (v0.5: mod 2^32, flow reports only).
//
// With Config.APIAuth "kubernetes" the HTTP views sit behind a
// pkg/kubeauth gate (gate.go): /healthz and the page open, /metrics for users
// allowed to get it, the rest for authenticated users, each request carrying
// an access.Scope built from what the user may get (pods per namespace,
// nodes). Agents are asked over https with Config.AgentTLSCA, sending the
// token of Config.AgentTokenFile.
//
// It never logs: Run returns errors and Stats exposes every counter. Nothing
// it receives can crash it; memory is bounded by Config (flows, pending
// reports, tracked sequences, agents) and the fixed read buffers.
package collector
