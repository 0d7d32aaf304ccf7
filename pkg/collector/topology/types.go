package topology

// Document is the agent's GET /api/v1/topology answer (the fields the
// collector uses; unknown fields are ignored).
type Document struct {
	SwitchID   uint32 `json:"switchId"`
	Node       string `json:"node"`
	Generation uint64 `json:"generation"`
	Ports      []Port `json:"ports"`
}

// Port is one port of an agent: an interface (or a namespace's local stack)
// identified by its port ID. Pointers to a Port are shared read-only.
type Port struct {
	ID         uint16   `json:"id"`
	Name       string   `json:"name"`
	Ifindex    int      `json:"ifindex"`
	Netns      Netns    `json:"netns"`
	MAC        string   `json:"mac,omitempty"`
	IPs        []string `json:"ips,omitempty"`
	Kind       string   `json:"kind,omitempty"`
	Driver     string   `json:"driver,omitempty"`
	PCIAddress string   `json:"pciAddress,omitempty"`
	Pod        *Pod     `json:"pod,omitempty"`
	Network    string   `json:"network,omitempty"`
	Role       string   `json:"role,omitempty"`
	NetType    string   `json:"networkType,omitempty"`
	LocalStack bool     `json:"localStack,omitempty"`

	// Filled by the collector, not sent by agents.
	Node     string `json:"node"`
	SwitchID uint32 `json:"switchId"`
}

// Netns identifies a network namespace: its nsfs inode, and name or path
// when the agent knows them.
type Netns struct {
	Inode uint64 `json:"inode"`
	Name  string `json:"name,omitempty"`
	Path  string `json:"path,omitempty"`
}

// Pod names a Kubernetes pod.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Key identifies a port across the cluster.
type Key struct {
	SwitchID uint32
	Port     uint16
}
