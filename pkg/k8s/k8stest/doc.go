// Package k8stest runs a real kube-apiserver and etcd for tests (through
// controller-runtime's envtest, with binaries built by hack/kube-bins/build.sh),
// renders nsint's kustomize manifests, and applies objects to the server.
//
// It is for tests only. Tests that use it skip, saying why and how to build the
// binaries, only when the binaries are absent. The servers bind to 127.0.0.1
// and are stopped at test cleanup.
package k8stest
