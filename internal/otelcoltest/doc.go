// Package otelcoltest runs a real OpenTelemetry Collector for tests: the
// binary hack/otelcol/build.sh builds from the Go module proxy (and caches),
// with its OTLP/HTTP receiver on a free loopback port writing what it
// receives to a file (the file exporter's OTLP JSON lines), which ReadLogs
// parses.
//
// A Collector is a process this package started: Stop ends it by its PID
// (SIGTERM, then SIGKILL after a grace period) and every test's cleanup does
// so, whether the test passed or not.
package otelcoltest
