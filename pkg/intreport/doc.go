// Package intreport encodes and decodes INT Telemetry Reports: v0.5 (flow
// reports with a Switch Local header, drop reports with a Drop header) and
// v2.0 (group header plus INT individual reports), byte for byte as
// shared/INT-REPORTS.md and docs/int-reports.md describe them.
//
// It owns the wire format only: it opens no sockets, numbers no sequences per
// destination (SetSequence patches an encoded payload for the exporter that
// does) and knows nothing of flows, ports or kernels beyond the fields of
// Report.
//
// Encoding appends into a caller-provided buffer and allocates nothing.
// Decoding fills a caller-owned Decoded and allocates nothing once its
// Reports slice has grown; the Inner and DomainData slices it returns alias
// the payload, so they are valid only while the caller keeps that buffer
// unchanged. Every length is validated; failures are *FieldError or
// *VersionError values that match ErrTruncated, ErrMalformed,
// ErrUnknownMetadata or ErrUnsupportedVersion with errors.Is.
package intreport
