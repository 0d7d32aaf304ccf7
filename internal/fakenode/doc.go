// Package fakenode builds a Kubernetes-like node entirely out of network
// namespaces, for the end-to-end suite and the demo:
//
//	pod-N: eth0 (veth) ──── vethN ─┐
//	       net1 (macvlan) ─┐       br0 (primary network, 198.18.0.1/24, fd00:0:0:1::1/64)
//	                       │  node namespace (forwards; br0, vethN, uplink)
//	                       └─ uplink (198.19.1.1/24) ─── ext: eth0 (198.19.1.2/24, 198.18.200.2)
//
// The pods' net1 is a macvlan whose parent is the node's uplink, moved into the
// pod and renamed, standing in for an SR-IOV VF on the same wire. Every
// namespace is a file in the given directory with the given prefix; nothing
// is created in the caller's own network namespace, and Close removes all of
// it.
package fakenode
