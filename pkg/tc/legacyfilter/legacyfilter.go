// Package legacyfilter holds the numbers that identify and place nsint's
// legacy tc filters: the default priority, the highest priority ours may
// take, and the default handle. It is a leaf (no imports) so that
// configuration can offer and validate them without linking tc's netlink and
// eBPF dependencies; package tc explains how they are used.
package legacyfilter

// DefaultPriority puts our legacy filters ahead of every filter the kernel
// numbers itself (0x8000 and up, see MaxPriority) and of the round numbers
// tools choose (10, 50, 100, ...). It is not 1, the one tools that want to
// run first take: another kind of filter, or another protocol, at the
// priority of ours makes the kernel refuse that tool's add, so ours leaves 1
// to them.
const DefaultPriority uint16 = 2

// MaxPriority is the highest priority of ours: the one below the kernel's
// automatic range (0x8000 and up), where filters added without a priority
// go.
const MaxPriority uint16 = 0x8000 - 1

// DefaultHandle is the handle of our legacy filters unless configured
// otherwise; with the kind (bpf) and the name it tells ours apart.
const DefaultHandle uint32 = 0x1A55
