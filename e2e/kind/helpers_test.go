package kind

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/collector/web"
)

const (
	kubeconfigEnv = "NSINT_KIND_KUBECONFIG"
	collectorEnv  = "NSINT_KIND_COLLECTOR" // optional: the collector's base URL
	testboxImage  = "nsint.local/testbox:dev"
	trafficPort   = 7000
	nadName       = "kind-net1"
	networksAnnot = "k8s.v1.cni.cncf.io/networks"
	statusAnnot   = "k8s.v1.cni.cncf.io/network-status"
)

var nadResource = schema.GroupVersionResource{Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions"}

// cluster is the kind cluster hack/kind/up.sh made.
type cluster struct {
	kube      kubernetes.Interface
	dyn       dynamic.Interface
	collector string
	// viewer asks the collector over TLS (checked against cert-manager's
	// nsint-ca) with the token of an account that may read pods and nodes
	// everywhere: it sees every row.
	viewer kubee2e.Caller
}

func clusterFromEnv(t *testing.T) *cluster {
	t.Helper()
	kc := os.Getenv(kubeconfigEnv)
	if kc == "" {
		t.Skip(kubeconfigEnv + " is not set: the kind + Multus suite needs Docker and the cluster of hack/kind/up.sh; run `make e2e-kind`")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", kc, err)
	}
	c := &cluster{}
	if c.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	c.collector = strings.TrimRight(os.Getenv(collectorEnv), "/")
	if c.collector == "" {
		c.collector = c.collectorURL(t)
	}
	t.Logf("collector API at %s", c.collector)
	c.viewer = c.viewerCaller(t)
	return c
}

// viewerCaller makes a ServiceAccount that may get pods and nodes everywhere
// (removed when the test ends) and returns a Caller with its token, checking
// the collector's certificate (it is reached by node IP) for its Service name.
func (c *cluster) viewerCaller(t *testing.T) kubee2e.Caller {
	t.Helper()
	ctx := context.Background()
	secret, err := c.kube.CoreV1().Secrets("nsint").Get(ctx, "nsint-ca-tls", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the CA of the collector's certificate: %v", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, secret.Data["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	client, err := kubee2e.TLSClient(caFile, "nsint-collector.nsint.svc")
	if err != nil {
		t.Fatal(err)
	}
	const name = "nsint-e2e-kind-viewer"
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list", "watch"}}}}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: "nsint"}}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "nsint"}}
	t.Cleanup(func() {
		_ = c.kube.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = c.kube.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{})
		_ = c.kube.CoreV1().ServiceAccounts("nsint").Delete(ctx, name, metav1.DeleteOptions{})
	})
	for _, create := range []func() error{
		func() error {
			_, err := c.kube.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.kube.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := c.kube.CoreV1().ServiceAccounts("nsint").Create(ctx, sa, metav1.CreateOptions{})
			return err
		},
	} {
		if err := create(); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	exp := int64(3600)
	tr, err := c.kube.CoreV1().ServiceAccounts("nsint").CreateToken(ctx, name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return kubee2e.Caller{Client: client, Token: tr.Status.Token}
}

// collectorURL finds the collector: in the kind overlay it runs in the host
// network of a node, whose address the Docker host reaches.
func (c *cluster) collectorURL(t *testing.T) string {
	t.Helper()
	var u string
	kubee2e.Eventually(t, 2*time.Minute, "a running collector", func() error {
		pods, err := c.kube.CoreV1().Pods("nsint").List(context.Background(),
			metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nsint-collector"})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Status.HostIP != "" && p.DeletionTimestamp == nil {
				u = "https://" + p.Status.HostIP + ":8080"
				return nil
			}
		}
		return fmt.Errorf("%d collector pods, none running", len(pods.Items))
	})
	return u
}

// workers returns the names of the nodes that are not control planes.
func (c *cluster) workers(t *testing.T) []string {
	t.Helper()
	nodes, err := c.kube.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp {
			out = append(out, n.Name)
		}
	}
	slices.Sort(out)
	if len(out) != 2 {
		t.Fatalf("want 2 workers, found %v", out)
	}
	return out
}

// createNAD creates the test's network: a bridge-mode macvlan over the
// workers' second interface eth1, with the addresses the pods ask for
// (static IPAM), so that the two nodes never hand out the same one.
func (c *cluster) createNAD(t *testing.T, namespace string) {
	t.Helper()
	config := `{"cniVersion": "0.4.0", "name": "` + nadName + `", "plugins": [
  {"type": "macvlan", "master": "eth1", "mode": "bridge", "capabilities": {"ips": true}, "ipam": {"type": "static"}}]}`
	nad := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "k8s.cni.cncf.io/v1",
		"kind":       "NetworkAttachmentDefinition",
		"metadata":   map[string]any{"name": nadName, "namespace": namespace},
		"spec":       map[string]any{"config": config},
	}}
	if _, err := c.dyn.Resource(nadResource).Namespace(namespace).Create(context.Background(), nad, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create NetworkAttachmentDefinition %s/%s: %v", namespace, nadName, err)
	}
}

// pod is a running testbox pod of the test.
type pod struct {
	namespace, name, node string
	eth0, net1            string // addresses, without prefix length
}

func (p pod) String() string { return p.namespace + "/" + p.name }

// startPod runs testbox talk on node with net1 at net1Addr (in the /24 of the
// NAD), sending to peers, and waits until it runs and Multus has written a
// network status that has net1.
func (c *cluster) startPod(t *testing.T, namespace, name, node, net1Addr string, peers []string) pod {
	t.Helper()
	networks, err := json.Marshal([]map[string]any{{
		"name": nadName, "namespace": namespace, "interface": "net1", "ips": []string{net1Addr + "/24"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	grace, yes := int64(1), true
	spec := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name,
			Labels:      map[string]string{"app.kubernetes.io/name": "nsint-e2e-testbox"},
			Annotations: map[string]string{networksAnnot: string(networks)}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{"kubernetes.io/hostname": node},
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  new(bool),
			Containers: []corev1.Container{{
				Name: "testbox", Image: testboxImage, ImagePullPolicy: corev1.PullNever,
				Args: append([]string{"talk", "-port", fmt.Sprint(trafficPort)}, peers...),
				SecurityContext: &corev1.SecurityContext{
					RunAsNonRoot: &yes, AllowPrivilegeEscalation: new(bool),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
	if _, err := c.kube.CoreV1().Pods(namespace).Create(context.Background(), spec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := pod{namespace: namespace, name: name, node: node}
	kubee2e.Eventually(t, 3*time.Minute, "pod "+p.String()+" running with net1 in its network status", func() error {
		live, err := c.kube.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if live.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s (%s)", live.Status.Phase, waitingReasons(live))
		}
		p.eth0 = live.Status.PodIP
		var statuses []struct {
			Name      string   `json:"name"`
			Interface string   `json:"interface"`
			IPs       []string `json:"ips"`
		}
		raw := live.Annotations[statusAnnot]
		if err := json.Unmarshal([]byte(raw), &statuses); err != nil {
			return fmt.Errorf("network status %q: %v", raw, err)
		}
		for _, s := range statuses {
			if s.Interface == "net1" && slices.Contains(s.IPs, net1Addr) {
				p.net1 = net1Addr
				return nil
			}
		}
		return fmt.Errorf("no net1 with %s in the network status %s", net1Addr, raw)
	})
	return p
}

func waitingReasons(p *corev1.Pod) string {
	var out []string
	for _, s := range p.Status.ContainerStatuses {
		if s.State.Waiting != nil {
			out = append(out, s.State.Waiting.Reason+": "+s.State.Waiting.Message)
		}
	}
	return strings.Join(out, "; ")
}

// flows returns the collector's flow rows that match query.
func (c *cluster) flows(query url.Values) ([]flowtable.Row, error) {
	return c.viewer.Flows(c.collector, query)
}

func (c *cluster) ports() ([]*topology.Port, error) {
	var resp web.PortsResponse
	err := c.viewer.GetJSON(c.collector+"/api/v1/ports", &resp)
	return resp.Ports, err
}

// agents describes the collector's agents, for failure messages.
func (c *cluster) agents() string {
	var resp struct {
		Agents []topology.AgentStatus `json:"agents"`
	}
	if err := c.viewer.GetJSON(c.collector+"/api/v1/agents", &resp); err != nil {
		return err.Error()
	}
	var out []string
	for _, a := range resp.Agents {
		s := fmt.Sprintf("%s node=%q ports=%d", a.URL, a.Node, a.Ports)
		if a.LastError != "" {
			s += " error=" + a.LastError
		}
		out = append(out, s)
	}
	return "agents: [" + strings.Join(out, "; ") + "]"
}
