// Package ports hands out the node-unique port IDs that INT reports carry in
// their ingress and egress port fields.
//
// It owns the mapping from an interface identity (network namespace inode,
// ifindex) to a 16-bit ID, plus one local-stack port per namespace (ifindex
// 0), and its persistence in <stateDir>/ports.json. IDs are stable across
// agent restarts while the namespace lives, and a released ID is handed out
// again only after the allocation cursor has gone once through the whole range
// (a collector must not mistake a new pod for an old one).
//
// It must not attach anything, enter namespaces or log: it returns wrapped
// errors and exposes counters (InUse, Exhausted, Saves). Running out of IDs is
// ErrExhausted, never a silent wrap.
//
// Every change is written to disk before the call that made it returns
// (temporary file, fsync, rename, fsync of the directory). Concurrent callers
// share one write ("group commit"): a caller waits for a write that started
// after its change, so a crash can lose no ID that a caller was given.
package ports
