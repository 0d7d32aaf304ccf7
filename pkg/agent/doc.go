// Package agent wires nsint-agent together: interface discovery (ifacewatch)
// drives port allocation (ports), datapath configuration and TC attachment
// (datapath, tc); the perf reader's events become INT reports (intreport)
// sent by the exporter; the API (api) serves the resulting topology and
// metrics.
//
// It is the one package besides cmd/ that logs. Its lifetime is Run's
// context: when it ends, discovery and reading stop, queued reports are
// flushed, and attachments stay in place (TCX links pinned, legacy filters
// left) so that a restarted agent replaces its programs without a gap.
// `nsint-agent cleanup` removes them for good.
package agent
