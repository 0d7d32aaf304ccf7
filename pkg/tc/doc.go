// Package tc attaches and detaches one SchedCLS program per (interface,
// direction) inside any network namespace, with TCX links where the kernel
// has them and legacy clsact + cls_bpf filters where it does not.
//
// It owns:
//   - the choice of mode (ResolveMode, after HaveTCX, a cached feature probe;
//     never a kernel version comparison);
//   - TCX links pinned under <PinDir>/tcx/<netns-inode>/<ifindex>_<direction>,
//     so a restarted agent updates its own links in place (no gap in
//     observation, no duplicates);
//   - legacy filters that carry our kind (bpf), name ("nsint-ingress"/
//     "nsint-egress") and handle, at a priority chosen per hook;
//   - the order on each hook: ours runs first, so that no one else's verdict
//     can hide a packet from it (Place, Placement, legacyplan.go);
//   - Cleanup, which removes every pin and filter that is provably ours,
//     and nothing else.
//
// Ours goes first without displacing anyone: a new TCX link is attached at
// the head; a legacy filter of ours takes a free priority ahead of every
// other filter (never renumbering, replacing or deleting one). An existing
// attachment of ours gets a new program in place, which keeps its position,
// unless something has been put ahead of it since: then ours moves to the
// head, handing over through a pass-through program so that no packet is
// counted by two programs of ours (moveTCX, applyLegacy). Where nothing can
// go ahead (a legacy filter at priority 1) ours still attaches, and the
// Placement and Stats.NotFirst say so.
//
// It must not touch what it did not create: only links pinned under our
// directory are ever updated or detached; a clsact qdisc is created only
// when absent and no qdisc is ever deleted; a filter is changed or removed
// only when its kind, name and handle are ours. It never logs.
//
// Namespace switching happens only on a locked OS thread that stays locked
// (and is discarded by the Go runtime) if it cannot be switched back. The
// Attacher keeps no reference to a namespace between calls (an open
// namespace file or netlink socket would keep a dead pod's namespace alive),
// so every call opens and closes what it needs.
//
// An interface or namespace that vanishes before or during a call yields an
// error that matches ErrInterfaceGone; callers count it and do not retry.
package tc
