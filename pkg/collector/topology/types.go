package topology

import "github.com/nsint/nsint/pkg/api"

// Document is the agent's GET /api/v1/topology answer; the wire type is the
// agent's own (pkg/api), so both sides read and write the same fields.
type Document = api.Topology

// Netns identifies a network namespace: its nsfs inode, and name or path
// when the agent knows them.
type Netns = api.Netns

// Pod names a Kubernetes pod.
type Pod = api.Pod

// Port is one port of an agent as the collector keeps it: the agent's port
// (an interface, or a namespace's local stack, identified by its port ID) and
// the node and switch it belongs to. Pointers to a Port are shared read-only.
type Port struct {
	api.Port

	// Filled by the collector, not sent by agents.
	Node     string `json:"node"`
	SwitchID uint32 `json:"switchId"`
}

// Key identifies a port across the cluster.
type Key struct {
	SwitchID uint32
	Port     uint16
}
