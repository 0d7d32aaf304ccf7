package netif

import "fmt"

// Netns identifies a network namespace by its nsfs inode number: what stat(2)
// on a namespace file (/var/run/netns/x, /proc/<pid>/ns/net) and the kernel's
// net->ns.inum both give. 0 is no namespace.
type Netns uint64

// Ifindex is an interface's index inside its network namespace. Ifindexes
// are local to a namespace: every pod has an ifindex 2. 0 is no device; in
// an ID it names the namespace's local stack.
type Ifindex uint32

// ID identifies an interface on the node: its namespace and its ifindex
// there. Ifindex 0 names the namespace's local stack (the port that stands
// for traffic starting or ending in the namespace itself).
type ID struct {
	Netns   Netns
	Ifindex Ifindex
}

// LocalStack returns the identity of namespace ns's local stack.
func LocalStack(ns Netns) ID { return ID{Netns: ns} }

// IsLocalStack reports whether id names a namespace's local stack rather
// than a device.
func (id ID) IsLocalStack() bool { return id.Ifindex == 0 }

// String returns "<netns inode>/<ifindex>".
func (id ID) String() string { return fmt.Sprintf("%d/%d", id.Netns, id.Ifindex) }

// Direction is the TC hook at which a packet is seen. The zero value is no
// direction (a report that names none).
type Direction uint8

// The two TC hooks.
const (
	// Ingress is the hook for packets the interface receives.
	Ingress Direction = iota + 1
	// Egress is the hook for packets the interface sends.
	Egress
)

// Directions lists both hooks, ingress first.
var Directions = [...]Direction{Ingress, Egress}

// Valid reports whether d is Ingress or Egress.
func (d Direction) Valid() bool { return d == Ingress || d == Egress }

// String returns "ingress" or "egress".
func (d Direction) String() string {
	switch d {
	case Ingress:
		return "ingress"
	case Egress:
		return "egress"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}
