// Package ifacewatch discovers network namespaces and their interfaces, event
// driven, and reports them as typed events in order per namespace.
//
// It owns: following the namespace directories (fsnotify; /var/run/netns by
// default, a missing directory is watched for creation), waiting for a new
// file's bind mount (nsfs), one rtnetlink socket and one goroutine per
// namespace (links and IPv4/IPv6 addresses on the same socket), re-listing a
// namespace after any socket error so nothing is lost silently, interface
// selection rules, and a snapshot of the current state.
//
// It must not: know about eBPF, TC or Kubernetes; change anything in the
// namespaces it watches (it only reads); log (errors are returned or kept for
// LastError, and counted in Stats); key anything by interface name or ifindex
// alone — identity is a netif.ID: the namespace's nsfs inode and the ifindex.
//
// Lifetime: New opens nothing; Run opens everything and releases everything
// (sockets, namespace fds, goroutines) before it returns. Each watched
// namespace holds an fd on its nsfs file and a netlink socket inside it, which
// keep the namespace alive until its file is removed from every watched
// directory; then the worker reports IfaceRemoved for each of its interfaces,
// NetnsRemoved, and closes both. Namespace switching happens only in
// openRTNL, through internal/netns (a fresh locked OS thread that is discarded
// if it cannot switch back).
//
// Delivery: see Watcher.Run. In short, per-namespace FIFO queues, a single
// round-robin dispatcher to the consumer's channel; per-namespace order is
// guaranteed, order across namespaces is not. Changes are reported as the
// difference between what the consumer was told and the kernel's state, so a
// burst may coalesce (an interface renamed twice yields one IfaceChanged with
// the final name), and a re-list after ENOBUFS reports only what changed.
//
// Device facts: Kind is the rtnetlink link kind, or physical / vf /
// loopback for devices without one. Driver and PCI address come from ethtool
// ETHTOOL_GDRVINFO on the namespace's socket and IFLA_PARENT_DEV_NAME, never
// from /sys/class/net (which shows the host's namespace); an SR-IOV VF is
// recognised by /sys/bus/pci/devices/<pci>/physfn, which is global.
// LinkNetns turns IFLA_LINK_NETNSID into an inode with RTM_GETNSID queries
// against the host and the watched namespaces.
//
// Mounts: inotify sees neither a bind mount appearing on a namespace file nor
// its unmount, so the watcher also polls /proc/self/mountinfo for changes of
// the mount table (an event, not a timer): a waiting file is retried at
// once, and a file that was unmounted (or remounted with another namespace)
// is handled like a removal (and an addition). In a container the namespace
// directory must be mounted with mount propagation from the host
// (HostToContainer), or no bind mount is ever seen.
//
// Known limits: the ethtool query is by name, so a device renamed in the
// instant between its announcement and the query is retried with the next
// message about it; nsfs inode numbers are reused by the kernel (see
// netif.Netns); a rule value cannot contain "," or "=".
package ifacewatch
