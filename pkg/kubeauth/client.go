package kubeauth

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient returns the client reviews are asked with: from kubeconfig, or
// the in-cluster configuration when kubeconfig is empty.
func NewClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		where := "in-cluster configuration"
		if kubeconfig != "" {
			where = "kubeconfig " + kubeconfig
		}
		return nil, fmt.Errorf("client for TokenReview and SubjectAccessReview: %s: %w", where, err)
	}
	cfg.UserAgent = "nsint-auth"
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for TokenReview and SubjectAccessReview: %w", err)
	}
	return kube, nil
}
