package k8s_test

import (
	"context"
	"io"
	"net"
	"net/url"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/nsint/nsint/pkg/k8s"
)

// TestAgentPermissions asks the API server's authorizer what the agent's
// ServiceAccount, bound exactly as deploy/base binds it, may do: everything the
// enricher needs, and none of a list of things it must not do.
func TestAgentPermissions(t *testing.T) {
	env, _ := startServer(t)
	user := "system:serviceaccount:" + agentNS + ":" + agentSA
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNS, "system:authenticated"}
	can := func(verb, group, resource, sub, ns string) bool {
		t.Helper()
		r, err := env.Kube.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), &authv1.SubjectAccessReview{
			Spec: authv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &authv1.ResourceAttributes{
				Verb: verb, Group: group, Resource: resource, Subresource: sub, Namespace: ns,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return r.Status.Allowed
	}
	for _, verb := range []string{"get", "list", "watch"} {
		for _, ns := range []string{"", podNS} {
			if !can(verb, "", "pods", "", ns) {
				t.Errorf("agent may not %s pods (namespace %q)", verb, ns)
			}
			if !can(verb, "k8s.cni.cncf.io", "network-attachment-definitions", "", ns) {
				t.Errorf("agent may not %s network-attachment-definitions (namespace %q)", verb, ns)
			}
		}
	}
	forbidden := []struct{ verb, group, resource, sub string }{
		{"create", "", "pods", ""}, {"update", "", "pods", ""}, {"patch", "", "pods", ""}, {"delete", "", "pods", ""},
		{"update", "", "pods", "status"}, {"create", "", "pods", "exec"}, {"get", "", "pods", "log"},
		{"get", "", "secrets", ""}, {"list", "", "secrets", ""}, {"list", "", "configmaps", ""},
		{"list", "", "nodes", ""}, {"list", "", "services", ""}, {"list", "", "serviceaccounts", ""},
		{"create", "", "serviceaccounts", "token"}, {"create", "k8s.cni.cncf.io", "network-attachment-definitions", ""},
		{"delete", "k8s.cni.cncf.io", "network-attachment-definitions", ""}, {"list", "apps", "daemonsets", ""},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", ""}, {"escalate", "rbac.authorization.k8s.io", "clusterroles", ""},
		{"impersonate", "", "users", ""}, {"use", "security.openshift.io", "securitycontextconstraints", ""},
		{"list", "apiextensions.k8s.io", "customresourcedefinitions", ""}, {"*", "*", "*", ""},
	}
	for _, f := range forbidden {
		if can(f.verb, f.group, f.resource, f.sub, podNS) || can(f.verb, f.group, f.resource, f.sub, "") {
			t.Errorf("agent may %s %s/%s %s: deploy/ grants more than it needs", f.verb, f.group, f.resource, f.sub)
		}
	}
	// The check can fail: the admin may do what the agent may not.
	r, err := env.Kube.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authv1.SelfSubjectAccessReview{
		Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{Verb: "list", Resource: "secrets"}},
	}, metav1.CreateOptions{})
	if err != nil || !r.Status.Allowed {
		t.Errorf("admin may not list secrets (%v): the review is not telling", err)
	}
}

// TestEnricherWithoutServer runs against an address where no server listens
// at first: Run keeps going, counts the failures and logs nothing; names
// arrive once the server is reachable.
func TestEnricherWithoutServer(t *testing.T) {
	env, agentCfg := startServer(t)
	// Reserve a loopback port, then free it: connections are refused until a
	// forwarder to the real server listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := rest.CopyConfig(agentCfg)
	upstream := hostPort(t, cfg.Host)
	cfg.Host = "https://" + addr

	e := runEnricher(t, k8s.Config{NodeName: nodeName, REST: cfg})
	waitFor(t, e, "a failed list counted", func() bool { return e.Stats().WatchErrors > 0 })
	if s := e.Stats(); s.PodsSynced || s.Pods != 0 {
		t.Errorf("stats without a server: %+v", s)
	}

	createPod(t, env.Kube, "pod-late", nodeName)
	forward(t, addr, upstream)
	waitFor(t, e, "pods synced once the server is reachable", func() bool { s := e.Stats(); return s.PodsSynced && s.Pods == 1 })
	if s := e.Stats(); s.LastWatchError == "" {
		t.Errorf("no last error recorded: %+v", s)
	}
}

// hostPort returns the host:port of an API server URL.
func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil || u.Port() == "" {
		t.Fatalf("API server address %q: no host:port (%v)", rawURL, err)
	}
	return u.Host
}

// forward listens on addr (loopback) and relays each connection to upstream
// until the test ends.
func forward(t *testing.T, addr, upstream string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s again: %v", addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go relay(ctx, c, upstream)
		}
	}()
}

func relay(ctx context.Context, c net.Conn, upstream string) {
	defer c.Close()
	var d net.Dialer
	u, err := d.DialContext(ctx, "tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	go func() {
		<-ctx.Done()
		c.Close()
		u.Close()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
	<-done
}
