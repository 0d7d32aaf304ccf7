// Package access says which rows of the collector's views the caller of a
// request may see: a Scope in the request's context, set by the HTTP gate
// and read by every view.
package access

import "context"

// Scope says which rows the caller of a request may see.
type Scope interface {
	Namespace(ns string) bool // rows of pods in namespace ns
	Nodes() bool              // rows of node-level interfaces (no pod)
}

// All sees everything; it is the Scope when authentication is off.
var All Scope = all{}

type all struct{}

func (all) Namespace(string) bool { return true }
func (all) Nodes() bool           { return true }

type scopeKey struct{}

// WithScope returns ctx carrying s.
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// FromContext returns the Scope of ctx: All when none was set (auth off).
func FromContext(ctx context.Context) Scope {
	if s, ok := ctx.Value(scopeKey{}).(Scope); ok && s != nil {
		return s
	}
	return All
}
