package access

import "context"

// Scope says which rows the caller of a request may see.
type Scope interface {
	Namespace(ns string) bool // rows of pods in namespace ns
	Nodes() bool              // rows of node-level interfaces (no pod)
}

// All sees everything: every namespace and the node-level rows. It is the
// Scope of a request when authentication is off.
var All Scope = all{}

type all struct{}

func (all) Namespace(string) bool { return true }
func (all) Nodes() bool           { return true }

type scopeKey struct{}

// WithScope returns ctx carrying s. A nil s is stored as None: a gate that
// failed to compute a scope must not widen it to All.
func WithScope(ctx context.Context, s Scope) context.Context {
	if s == nil {
		s = None
	}
	return context.WithValue(ctx, scopeKey{}, s)
}

// FromContext returns the Scope stored by WithScope, or All when none was set
// (authentication off).
func FromContext(ctx context.Context) Scope {
	if s, ok := ctx.Value(scopeKey{}).(Scope); ok {
		return s
	}
	return All
}

// None sees nothing.
var None Scope = none{}

type none struct{}

func (none) Namespace(string) bool { return false }
func (none) Nodes() bool           { return false }

// Namespaces is a Scope that sees the pods of the listed namespaces and, when
// nodes is true, the node-level rows. It is what tests and simple gates use.
func Namespaces(nodes bool, ns ...string) Scope {
	set := make(map[string]struct{}, len(ns))
	for _, n := range ns {
		set[n] = struct{}{}
	}
	return nsSet{set: set, nodes: nodes}
}

type nsSet struct {
	set   map[string]struct{}
	nodes bool
}

func (s nsSet) Namespace(ns string) bool { _, ok := s.set[ns]; return ok }
func (s nsSet) Nodes() bool              { return s.nodes }

// IsAll reports whether s is All, so a view can skip per-row checks.
func IsAll(s Scope) bool {
	_, ok := s.(all)
	return ok
}
