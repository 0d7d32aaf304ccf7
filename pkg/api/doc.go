// Package api serves nsint-agent's REST API: the topology that gives every
// INT port ID its meaning (GET /api/v1/topology), the watched namespaces
// (GET /api/v1/namespaces), health (/healthz), readiness (/readyz: initial
// discovery and attachment done) and Prometheus metrics (/metrics).
//
// It defines the JSON wire types and nothing else: the agent hands it a
// Source that answers from its own state. Handlers never block on the
// datapath. It does not authenticate: the agent puts pkg/kubeauth in front
// of Handler, open on OpenPath and authorizing every other path as
// AuthzPath, and asks HandlerWith for QuietHealth.
package api
