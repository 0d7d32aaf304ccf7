// Package cluster holds the end-to-end tests of nsint on a real one-node
// Kubernetes cluster (kubelet, containerd, Multus), the one `make cluster-up`
// starts (hack/local-cluster). `make e2e-cluster` brings the cluster up, runs
// them and takes it down on every exit path.
//
// The tests skip, saying so, unless KUBECONFIG and COLLECTOR (lines
// cluster-up prints, with COLLECTOR_TOKEN and COLLECTOR_CA: the collector and
// the agents serve HTTPS and want a bearer token) are set, so that
// `go test ./...` without a cluster stays green. They create pods in
// namespaces of their own (nsint-e2e-*), send traffic only between those pods
// (198.18.0.0/15 and fd00::/8) and, from a pod, to the node IP's APIs and the
// collector's report port; they read the live objects, the agent's topology
// API (with a token of the collector's ServiceAccount), the collector's API
// (as COLLECTOR_TOKEN, and as the accounts the tests create and bind), the
// PromQL answers of the Prometheus that make e2e-cluster starts to scrape the
// agents and the collector (PROMETHEUS: its base URL,
// hack/local-cluster/prometheus.sh) and, from the host, the pods' network
// namespaces. The last test uninstalls nsint.
package cluster
