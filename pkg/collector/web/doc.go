// Package web serves the collector's views over HTTP: the JSON API
// (/api/v1/flows, /api/v1/ports, /api/v1/summary, /api/v1/stats,
// /api/v1/agents), /metrics, /healthz and the page at / whose assets are
// embedded in the binary (nothing is fetched from the internet).
//
// It owns query parsing and validation (a bad value is a 400 naming the
// parameter and the value) and response shapes; it reads the flow table, the
// resolver and the per-agent report counts and never changes them.
//
// Every view that lists rows, interfaces, ports or agents shows only what the
// request's access.Scope may see (pods of its namespaces; node-level
// interfaces and every agent only with its nodes; otherwise the agents of the
// nodes its pods are on). The scope is applied where rows are selected, so
// sort, limit and totals are those of the visible rows. Without a scope in
// the context (no authentication) everything is visible. Who the caller is
// and what its scope is, the gate in front of this handler decides.
package web
