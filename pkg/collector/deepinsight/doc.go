// Package deepinsight turns the agents' topology documents into the topology
// file Intel DeepInsight imports: every node is a switch (its INT switch ID),
// every pod network is a subnet, and every port is a link from its switch to
// the subnets its addresses belong to.
//
// The file written (`nsint-collector deepinsight-topology`) has this shape:
//
//	{
//	  "switches": [{"switchId": 3323068417, "name": "device:node-a", "deviceType": "legacy",
//	                "ip": "<node IP when known>", "hostname": "node-a"}],
//	  "subnets":  [{"ip_subnet": "198.18.1.0/24", "name": "default/macvlan-net 198.18.1.0/24", "subnet_id": 1}],
//	  "hosts":    [],
//	  "links":    [{"node1": "device:node-a", "port1": "5", "node2": "default/macvlan-net 198.18.1.0/24", "port2": "-1"}]
//	}
//
// A subnet is named after its network attachment ("<namespace>/<name>") and
// prefix, or the prefix alone for ports without a network (the pod's primary
// interface). Addresses the agent lists without a prefix length are taken as
// /24 (IPv4) or /64 (IPv6); link-local addresses are skipped. A local-stack
// port links to every subnet of its namespace; a port without addresses has
// no link. Subnet IDs number the prefixes in address order, so the same
// input always gives the same file.
//
// It owns only the conversion (Build is pure); fetching the documents is the
// caller's job (topology.FetchAll).
package deepinsight
