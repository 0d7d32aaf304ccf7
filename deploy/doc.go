// Package deploy holds nsint's Kubernetes manifests (kustomize: base/ and the
// overlays kind/ and openshift/) and, in its tests only, checks them: rendered
// with kustomize in Go, held to the deployment rules (names, permissions,
// capabilities, probes), and applied by server-side dry run against a real
// kube-apiserver (pkg/k8s/k8stest). It has no code of its own.
package deploy
