// Package deploy holds nsint's Kubernetes manifests (kustomize: base/, the
// overlays kind/, local/, openshift/ and sharded/, and the component
// components/sharded-collectors that runs the collector as several replicas)
// and, in its tests only, checks them: rendered
// with kustomize in Go, held to the deployment rules (names, permissions,
// capabilities, probes), and applied by server-side dry run against a real
// kube-apiserver (pkg/k8s/k8stest). It has no code of its own.
package deploy
