package api

import "github.com/nsint/nsint/pkg/netif"

// Topology is the answer of GET /api/v1/topology. Every port ID a report of
// this agent can carry is in Ports.
type Topology struct {
	SwitchID   uint32 `json:"switchId"`
	Node       string `json:"node"`
	Generation uint64 `json:"generation"` // increases whenever Ports changes
	Ports      []Port `json:"ports"`
	// Links repeats the ports in the shape the original INT Host Reporter
	// served, so existing DeepInsight topology scripts keep working.
	Links []Link `json:"links"`
	// GonePorts are ports whose interface or namespace went away in the
	// last minutes: their last reports leave as they go, and a collector
	// that never saw them must still be able to name them.
	GonePorts []Port `json:"gonePorts,omitempty"`
}

// Port is one port ID and the interface (or local stack) it stands for.
type Port struct {
	ID          uint16        `json:"id"`
	Name        string        `json:"name"`
	Ifindex     netif.Ifindex `json:"ifindex"` // 0 for a local-stack port
	Netns       Netns         `json:"netns"`
	MAC         string        `json:"mac"`
	IPs         []string      `json:"ips"`
	Kind        string        `json:"kind,omitempty"`
	Driver      string        `json:"driver,omitempty"`
	PCIAddress  string        `json:"pciAddress,omitempty"`
	OperState   string        `json:"operState,omitempty"`
	LocalStack  bool          `json:"localStack,omitempty"`
	Pod         *Pod          `json:"pod,omitempty"`
	Network     string        `json:"network,omitempty"` // <namespace>/<name> of the NetworkAttachmentDefinition
	Role        string        `json:"role,omitempty"`    // primary or secondary
	NetworkType string        `json:"networkType,omitempty"`
	AttachMode  string        `json:"attachMode,omitempty"` // tcx or tc; empty while not attached
	// Counters are the port's totals when the topology was read, for
	// interfaces (not local-stack ports): what crossed the hooks, and what
	// the agent's reports carried of it.
	Counters *PortCounters `json:"counters,omitempty"`
}

// PortCounters are a port's totals in each direction.
type PortCounters struct {
	Ingress DirCounters `json:"ingress"`
	Egress  DirCounters `json:"egress"`
}

// DirCounters are what crossed one hook of a port since the agent began
// counting it. Packets − Flowless − Reported, once the interface has been
// quiet for the report interval and a second, is what no report carries.
type DirCounters struct {
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	Drops    uint64 `json:"drops"`
	Flowless uint64 `json:"flowless"` // not IP, or truncated: in no flow, no report
	Reported uint64 `json:"reported"` // packets of the agent's reports naming the port
}

// LocalStackName is the name of a namespace's local-stack port: traffic that
// starts or ends in that namespace's own stack. No Linux interface can have
// it (':' is invalid in interface names).
const LocalStackName = ":stack"

// Netns is a network namespace as the API shows it: its identity (the nsfs
// inode) and how the agent found it.
type Netns struct {
	Inode netif.Netns `json:"inode"`
	Name  string      `json:"name,omitempty"`
	Path  string      `json:"path,omitempty"`
	Host  bool        `json:"host,omitempty"`
}

// Pod names the Kubernetes pod a port belongs to.
type Pod struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Link is a port in the original INT Host Reporter's topology shape.
type Link struct {
	Port  uint16   `json:"port"`
	Name  string   `json:"name"`
	Netns string   `json:"netns"`
	MAC   string   `json:"mac"`
	IPs   []string `json:"ips"`
}

// Namespace is one entry of GET /api/v1/namespaces.
type Namespace struct {
	Netns
	Interfaces int    `json:"interfaces"`
	LocalPort  uint16 `json:"localPort,omitempty"`
	Pod        *Pod   `json:"pod,omitempty"`
}
