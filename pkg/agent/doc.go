// Package agent wires nsint-agent together: interface discovery (ifacewatch)
// drives port allocation (ports), datapath configuration and TC attachment
// (datapath, tc); the report reader's events become INT reports (intreport)
// sent by the exporter; the API (api) serves the resulting topology and
// metrics.
//
// It is the one package besides cmd/ that logs. Its long-running parts
// (discovery, Kubernetes naming, the watchlist, the sweeper, the report reader,
// the exporter, the API server) run under one supervisor: the first to fail
// stops the agent, which Run then returns as a *ComponentError naming it. Its
// lifetime is Run's context, or that first failure: when it ends, the agent
// answers not ready, discovery stops, a last sweep takes every flow's
// unreported counts, the report ring and the export queue are drained, and
// attachments stay in place (TCX links pinned, legacy filters left), still
// counting into this start's pinned maps, so that the next agent replaces
// its programs without a gap and reports what they counted meanwhile
// (recover.go). `nsint-agent cleanup` removes them for good.
package agent
