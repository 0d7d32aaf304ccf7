// Command nsint-demo is `make demo`: it builds a small node out of network
// namespaces (internal/fakenode: a bridge for the primary network, three pods
// with eth0 and a macvlan net1, an external host on the uplink), runs the real
// nsint-agent and nsint-collector against it, sends mixed traffic (TCP, UDP,
// ICMP, IPv4 and IPv6, drops) and prints the collector's view of net1 next to
// eth0 for each pod.
//
// It creates nothing in the machine's own network namespace: the namespaces
// are files in a temporary directory of its own, the agent runs with
// --host-netns=false on that directory, a private BPF filesystem and state
// directory, and every listener binds to 127.0.0.1. On every exit path
// (Ctrl-C, SIGTERM, SIGHUP, a closed output pipe, failure, DEMO_DURATION
// running out) it stops the processes it started, by PID, runs
// `nsint-agent cleanup` with the same directories, removes the node, unmounts
// the BPF filesystem and deletes its temporary directory. Only SIGKILL
// defeats this; its children then die with it (parent-death signal) and the
// mounts stay under $TMPDIR/nsint-demo-*. It exits 0 when the duration runs out or on a signal,
// 1 on a failure, 2 on a missing prerequisite.
package main
