package api

import "strings"

// AuthzPathPrefix is put before the agent's /api/... paths in the
// SubjectAccessReviews that authorize them (AuthzPath).
const AuthzPathPrefix = "/nsint-agent"

// AuthzPath is the non-resource path a SubjectAccessReview asks "get"
// about for a request to the agent's path p. The API server's own paths
// start with /api too, and its default role system:discovery lets every
// authenticated user get /api/*; asked as they are, the agent's
// /api/v1/topology and /api/v1/namespaces would be open to every service
// account in the cluster. So they are asked as /nsint-agent/api/v1/topology
// and /nsint-agent/api/v1/namespaces (what a ClusterRole's nonResourceURLs
// must name); /metrics stays /metrics, what monitoring roles grant.
func AuthzPath(p string) string {
	if p == "/metrics" {
		return p
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return AuthzPathPrefix + p
}

// OpenPath reports whether p is served without authentication when the
// API requires it: the kubelet's probes, /healthz and /readyz.
func OpenPath(p string) bool { return p == "/healthz" || p == "/readyz" }
