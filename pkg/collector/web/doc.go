// Package web serves the collector's views over HTTP: the JSON API
// (/api/v1/flows, /api/v1/ports, /api/v1/summary, /api/v1/stats,
// /api/v1/agents), /metrics, /healthz and the page at / whose assets are
// embedded in the binary (nothing is fetched from the internet).
//
// It owns query parsing and validation (a bad value is a 400 naming the
// parameter and the value) and response shapes; it reads the flow table, the
// resolver and the per-agent report counts and never changes them.
package web
