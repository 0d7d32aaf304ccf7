// Package access carries which rows the caller of a collector request may
// see: a Scope in the request's context.
//
// It owns only the vocabulary. Deriving a Scope from a caller (a bearer token
// checked with SubjectAccessReview) is the HTTP gate's job; applying it is the
// job of every view that lists rows, agents, topology or pods. A request
// without a Scope (authentication off) sees everything: FromContext returns
// All. Scope values must be safe for concurrent use and cheap to call per row;
// implementations that ask the API server should answer from a cache built
// before the view runs.
package access
