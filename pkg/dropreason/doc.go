// Package dropreason maps the Linux kernel's drop reasons (enum skb_drop_reason,
// the reason of the skb:kfree_skb tracepoint since 5.17) to the 8-bit drop
// reason codes of INT Telemetry Reports.
//
// It owns the INT codes and their names, the one mapping table from kernel
// reason names to INT codes (the Intel switch.p4_16 numbering where one fits,
// a documented host-specific range otherwise) and a Resolver that turns the
// numeric values a running kernel uses into names and codes.
//
// Enum values differ between kernel versions, so the table is keyed by name
// and values are resolved at run time: the Resolver is built from the
// kernel's value-to-name table, which pkg/datapath reads from kernel BTF
// (DropReasonNames); never hard-code a value. A kernel without the enum
// (before 5.17) yields an empty Resolver whose lookups report unknown.
//
// The package does no I/O and imports no eBPF library, so the collector,
// which only names codes, links none; it keeps no global mutable state and
// never logs.
package dropreason
