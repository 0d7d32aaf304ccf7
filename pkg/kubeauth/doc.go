// Package kubeauth lets an HTTP server accept only the callers Kubernetes
// says may call it, in the process (the pattern of kube-rbac-proxy): a
// request's bearer token is authenticated with a TokenReview and the
// authenticated user is authorized with a SubjectAccessReview, for a
// non-resource path ("get /metrics") or a resource ("get pods in
// namespace N"). Both answers are cached for a short TTL, keyed by a SHA-256
// of the token (and of the attributes), never by the token itself.
//
// Gate is the HTTP middleware: no token or a token TokenReview rejects →
// 401, authenticated but not allowed → 403, and when the API server cannot
// answer (a review request failed) → 503, so that a caller retries instead
// of concluding it lacks a permission; errors are never cached. The
// authenticated user is in the request's context (UserFrom). Counters of the
// denials by status code are exposed for Prometheus.
//
// CertFiles serves TLS from a certificate/key file pair that is re-read when
// the files change (the OpenShift service CA and cert-manager rotate them in
// place); TokenFileTransport is the client side: it sends the bearer token of
// a file, re-read when the file changes (projected ServiceAccount tokens
// rotate).
//
// Bearer tokens are never logged, returned in an error, put in a metric label
// or kept in memory beyond the request (the caches hold hashes); this package
// does not log at all. Tokens are only accepted over TLS: the wiring refuses
// to authenticate on plain HTTP.
package kubeauth
