package k8stest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Env is a running kube-apiserver with its etcd.
type Env struct {
	// Admin is a client configuration with every permission (system:masters).
	Admin *rest.Config
	// Kube is a clientset for Admin.
	Kube kubernetes.Interface
}

// RepoRoot returns the repository's root directory (the one whose go.mod
// declares github.com/nsint/nsint).
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/nsint/nsint\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("repository root (go.mod of github.com/nsint/nsint) not found above the working directory")
		}
		dir = parent
	}
}

// KubeVersion returns the Kubernetes version hack/kube-bins pins.
func KubeVersion(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(RepoRoot(tb), "hack", "kube-bins", "kube-apiserver", "go.mod")
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(fields) >= 2 && fields[0] == "k8s.io/kubernetes" {
			return fields[1]
		}
	}
	tb.Fatalf("%s: no k8s.io/kubernetes requirement", path)
	return ""
}

// AssetsDir returns the directory holding kube-apiserver and etcd:
// $KUBEBUILDER_ASSETS, else $NSINT_KUBE_BINS, else the cache directory
// hack/kube-bins/build.sh fills. It skips the test when the binaries are absent.
func AssetsDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = os.Getenv("NSINT_KUBE_BINS")
	}
	if dir == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				tb.Skipf("kube-apiserver and etcd: no KUBEBUILDER_ASSETS and no home directory (%v); run hack/kube-bins/build.sh", err)
			}
			cache = filepath.Join(home, ".cache")
		}
		dir = filepath.Join(cache, "nsint", "kube-bins", KubeVersion(tb))
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if fi, err := os.Stat(filepath.Join(dir, bin)); err != nil || fi.Mode()&0o111 == 0 {
			tb.Skipf("%s not found in %s: run hack/kube-bins/build.sh (or set KUBEBUILDER_ASSETS) to run the tests against a real API server", bin, dir)
		}
	}
	return dir
}

// Start runs kube-apiserver and etcd on 127.0.0.1 with the CustomResourceDefinitions
// found in crdDirs installed, and stops them at cleanup.
func Start(tb testing.TB, crdDirs ...string) *Env {
	tb.Helper()
	te := &envtest.Environment{
		BinaryAssetsDirectory: AssetsDir(tb),
		CRDDirectoryPaths:     crdDirs,
		ErrorIfCRDPathMissing: true,
	}
	// Loopback only: the API server on 127.0.0.1; envtest gives etcd the
	// address "localhost" resolves to (127.0.0.1 or ::1).
	te.ControlPlane.GetAPIServer().SecureServing.Address = "127.0.0.1"
	cfg, err := te.Start()
	if err != nil {
		tb.Fatalf("start kube-apiserver and etcd: %v", err)
	}
	tb.Cleanup(func() {
		if err := te.Stop(); err != nil {
			tb.Errorf("stop kube-apiserver and etcd: %v", err)
		}
	})
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &Env{Admin: cfg, Kube: kube}
}

// CRDDir returns the directory of the CustomResourceDefinitions the tests
// install: the NetworkAttachmentDefinition CRD and minimal CRDs of our own for
// the OpenShift kinds the manifests use.
func CRDDir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(RepoRoot(tb), "hack", "envtest", "crds")
}

// ServiceAccountConfig returns a copy of base that impersonates the service
// account namespace/name with the groups a real service-account token has.
func ServiceAccountConfig(base *rest.Config, namespace, name string) *rest.Config {
	cfg := rest.CopyConfig(base)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", namespace, name),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
	}
	return cfg
}
