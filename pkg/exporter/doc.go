// Package exporter sends encoded INT Telemetry Reports over UDP to one or more
// collectors.
//
// It owns the path from "a report exists" to "a datagram left the socket": a
// bounded queue of preallocated slots between the producer (the report reader)
// and one sender goroutine, per-(collector, hw_id) sequence numbers, batching
// with sendmmsg(2) and UDP segmentation offload, and the accounting of what was queued, dropped, sent and
// refused. It does not decide when to report (the datapath does), does not
// define the wire format (pkg/intreport does) and never logs: failures are
// counted in Stats and, at most once per second per collector, handed to
// Config.OnSendError for the caller to log.
//
// Lifetime and pitfalls:
//
//   - New resolves collector host names once; a name whose address changes
//     later is not followed. It opens one connected UDP socket per collector;
//     a collector without a route at start is not an error, its socket is
//     connected later (every Config.RetryInterval while there is something to
//     send), and the reports meant for it meanwhile are counted as dropped.
//   - Config.Replicas is the exception: a name with one address per
//     collector replica (a headless Service), resolved in New and every
//     Config.ReplicaRefresh while Run runs (a goroutine Run owns). Each agent
//     sends to the one replica rendezvous hashing of its node name picks
//     (package replica), so a replica added takes about 1/N of the nodes
//     and a replica gone from the name hands its nodes to the others, and no
//     other node moves. A move opens a new socket and numbers from 0 again:
//     collectors see a restart, never a gap counted as loss. A failed lookup
//     keeps the replica chosen; a replica that is dead but still in the name
//     loses its reports (counted) until the name drops it.
//   - Enqueue encodes the report into a free slot (sequence number 0). On a
//     full queue it waits while Run runs (Run frees slots as it sends, and
//     wakes it), and returns false and counts a queue drop otherwise — before
//     Run, after it returned. It may be called from several goroutines, but
//     one producer is the intended use.
//   - Run is the only sender. It patches the sequence number of each slot per
//     collector just before sending, so every collector sees its own gap-free
//     numbering per hw_id, and frees a slot only once every collector had its
//     turn. A collector that refuses (ICMP port unreachable, ECONNREFUSED) or
//     cannot be routed (ENETUNREACH) loses its own reports only; the others
//     are not delayed beyond one bounded wait on a full socket buffer.
//   - Runs of equal-size reports in a batch go out as one message with
//     UDP_SEGMENT: the kernel cuts it into one datagram per report, so the
//     collector sees exactly what separate sends would give, at a third of
//     the CPU (2.7–3.6x more datagrams per CPU-second on loopback). A route
//     that refuses it (no checksum offload, IPsec, SO_NO_CHECK) makes that
//     collector fall back to one datagram per message for good, resending
//     from the refused report; Stats.Collectors[].Segmented tells which.
//   - Memory is fixed at New: QueueLen slots of SlotSize bytes plus one batch of
//     message headers. Nothing grows while a collector is unreachable.
//   - Close releases the sockets; it stops a running Run first.
package exporter
