// Package otlpexport sends the collector's flow rows to an OpenTelemetry
// endpoint (OTLP over HTTP) as log records, one record per row that changed
// since the previous export, carrying that row's increments (deltas): a store
// that sums a row's records gets the row's totals. Attribute names are the
// OpenTelemetry semantic conventions' where one exists (Attributes lists them
// all; docs/operations.md documents them).
//
// It owns the export loop, a bounded queue of records, retry with exponential
// backoff, and the counters of what was exported and what was given up. It
// uses the OpenTelemetry Go SDK (a LoggerProvider whose one Processor is this
// package's queue) and its OTLP/HTTP log exporter; it never logs.
//
// Memory stays bounded while the endpoint is down: the queue holds at most
// Config.QueueSize records, and increments are only taken from the flow
// table while the queue has room, so they keep adding up in the table's rows
// meanwhile. What is given up is counted by reason: a batch still failing
// after Config.MaxRetryTime, records still queued when a shutdown's flush
// runs out of time, and increments of rows evicted from the table before
// they could be taken. Run ends on its context with a final export of every
// change (bounded by Config.Timeout).
package otlpexport
