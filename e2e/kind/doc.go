// Package kind holds the kind + Multus end-to-end suite, for machines with
// Docker: `make e2e-kind` (hack/kind/e2e.sh) starts a kind cluster with two
// workers, gives each worker a second interface eth1 on a Docker network of
// its own, installs the Multus thick plugin and nsint (deploy/overlays/kind,
// the image built and loaded into kind), runs this suite and deletes the
// cluster on every exit path.
//
// TestKindMultus runs only when NSINT_KIND_KUBECONFIG names the cluster's
// kubeconfig (hack/kind/e2e.sh sets it); otherwise it skips, saying so, so
// that `go test ./...` on a machine without Docker stays green. It creates a
// macvlan NetworkAttachmentDefinition over eth1 (static addresses from
// 198.18.100.128/25) and two testbox pods on the two workers in a
// namespace of its own, and reads the collector's API from the Docker host
// (HTTPS checked against cert-manager's CA, with the token of a ServiceAccount
// it creates that may read pods and nodes: every row). Not run on the build
// machines since the collector wants TLS and tokens (no Docker there).
//
// The other tests need no cluster: they hold the pinned versions
// (hack/kind/versions.env), the kind overlay, the scripts and the GitHub
// workflow to what the suite relies on.
package kind
