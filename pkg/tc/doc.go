// Package tc attaches and detaches one SchedCLS program per (interface,
// direction) inside any network namespace, with TCX links where the kernel
// has them and legacy clsact + cls_bpf filters where it does not.
//
// It owns:
//   - the choice of mode (HaveTCX, a cached feature probe; never a kernel
//     version comparison);
//   - TCX links pinned under <PinDir>/tcx/<netns-inode>/<ifindex>_<direction>,
//     so a restarted agent updates its own links in place (no gap in
//     observation, no duplicates);
//   - legacy filters that carry our name ("nsint-ingress"/"nsint-egress"),
//     our priority and our handle, replaced in place on re-attach;
//   - Cleanup, which removes every pin, filter and state file that is
//     provably ours, and nothing else.
//
// It must not touch what it did not create: TCX programs are appended
// without an anchor and only links pinned under our directory are ever
// replaced or detached; a clsact qdisc is created only when absent and no
// qdisc is ever deleted; a filter is removed only when its kind, name,
// priority and handle all match ours. It never logs.
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
