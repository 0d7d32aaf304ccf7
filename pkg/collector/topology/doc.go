// Package topology fetches the agents' /api/v1/topology documents and turns
// the port IDs of INT reports into interfaces (node, name, namespace, pod,
// network).
//
// It owns the per-agent cache and its refresh: a Resolver answers lookups from
// an immutable snapshot without blocking, and a background loop (Run) fetches
// topologies when asked (an unknown switch or port was seen) or periodically,
// replacing the snapshot only when an agent's generation changed. It never
// logs; fetch failures are counted and returned by Stats.
package topology
