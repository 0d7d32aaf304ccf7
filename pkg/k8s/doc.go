// Package k8s adds Kubernetes names to the interfaces the agent discovers: the
// pod that owns a network namespace, and for each interface the network
// attachment (`<namespace>/<NetworkAttachmentDefinition>`), its role (primary or
// secondary) and its CNI type (sriov, macvlan, bridge, …).
//
// It owns two informers: one on the pods of this node only (field selector
// spec.nodeName) and one on NetworkAttachmentDefinitions. It reads each pod's
// k8s.v1.cni.cncf.io/network-status annotation (written by Multus) and matches
// its entries to interfaces by MAC, PCI address (SR-IOV device-info), IP
// address and finally interface name inside a namespace already attributed to
// the pod. Pods without the annotation are matched on eth0 by status.podIPs.
//
// It must not be needed: the agent works without it, and an unreachable API
// server only delays names (the informers retry quietly and count their
// errors). It never logs (client-go's watch error logging is replaced by
// counters) and reports each malformed annotation once per pod through
// Config.OnMalformed. It never attributes interfaces of the agent's own network
// namespace or of a hostNetwork pod, and it has no eBPF and no netlink.
//
// Lifetime: New builds clients without contacting the server; Run owns the
// informers until its context ends. Match, Changes and Stats are safe for
// concurrent use from any goroutine, before, during and after Run.
package k8s
