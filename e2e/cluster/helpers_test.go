package cluster

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/flowtable"
)

const (
	agentNamespace = "nsint"
	nodeIP         = "198.18.200.1"
	agentAPI       = "https://" + nodeIP + ":4048"
	// agentName is the name the agents' serving certificate is issued for
	// (the headless Service of deploy/), checked when reaching them by IP.
	agentName      = "nsint-agent.nsint.svc"
	macvlanNetwork = "default/nsint-macvlan"
	testboxImage   = "nsint.local/testbox:dev"
	netnsDir       = "/run/netns"
	clusterWork    = "/var/lib/nsint-cluster"
	echoPort       = "7000"
	closedPort     = "7999"
)

// env is the live cluster the tests talk to.
type env struct {
	kubeconfig string
	collector  string
	kube       kubernetes.Interface
	kubectl    string
	// prometheus is the base URL of the suite's Prometheus (PROMETHEUS,
	// which make e2e-cluster sets).
	prometheus string
	// caFile is the CA of the agents' and the collector's certificates
	// (COLLECTOR_CA); viewer calls the collector with COLLECTOR_TOKEN (it
	// may read pods and nodes everywhere: every row); agentTLS checks the
	// agents' certificates for agentName.
	caFile            string
	viewer            kubee2e.Caller
	collectorTLS      *http.Client
	agentTLS          *http.Client
	collectorIdentity kubee2e.Caller
}

func clusterEnv(t *testing.T) *env {
	t.Helper()
	kc, coll := os.Getenv("KUBECONFIG"), os.Getenv("COLLECTOR")
	if kc == "" || coll == "" {
		t.Skip("KUBECONFIG and COLLECTOR are not set: run `make e2e-cluster` (or `make cluster-up` and export its four lines)")
	}
	token, caFile := os.Getenv("COLLECTOR_TOKEN"), os.Getenv("COLLECTOR_CA")
	if token == "" || caFile == "" {
		t.Fatal("COLLECTOR is set but COLLECTOR_TOKEN or COLLECTOR_CA is not: export all four lines of make cluster-up")
	}
	if os.Geteuid() != 0 {
		t.Skip("the cluster tests read the pods' network namespaces from the host: run as root")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		bins, err := os.ReadFile(filepath.Join(clusterWork, "bins"))
		if err != nil {
			t.Fatalf("KUBECTL not set and no %s/bins: %v", clusterWork, err)
		}
		kubectl = filepath.Join(strings.TrimSpace(string(bins)), "kubectl")
	}
	collectorTLS, err := kubee2e.TLSClient(caFile, "")
	if err != nil {
		t.Fatal(err)
	}
	agentTLS, err := kubee2e.TLSClient(caFile, agentName)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{kubeconfig: kc, collector: strings.TrimRight(coll, "/"), kube: kube, kubectl: kubectl,
		prometheus: strings.TrimRight(os.Getenv("PROMETHEUS"), "/"), caFile: caFile,
		viewer: kubee2e.Caller{Client: collectorTLS, Token: token}, collectorTLS: collectorTLS, agentTLS: agentTLS}
	// The agents are read as the collector reads them: with a token of its
	// ServiceAccount (bound to nsint-agent-reader).
	e.collectorIdentity = kubee2e.Caller{Client: agentTLS, Token: e.saToken(t, agentNamespace, "nsint-collector")}
	return e
}

// saToken returns a token (valid an hour) of the ServiceAccount ns/name.
func (e *env) saToken(t *testing.T, ns, name string) string {
	t.Helper()
	var token string
	kubee2e.Eventually(t, 30*time.Second, "a token of "+ns+"/"+name, func() error {
		exp := int64(3600)
		tr, err := e.kube.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), name,
			&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		token = tr.Status.Token
		return nil
	})
	return token
}

// agent asks the agent's API with token (empty: none), checking its
// certificate for agentName.
func (e *env) agent(token string) kubee2e.Caller {
	return kubee2e.Caller{Client: e.agentTLS, Token: token}
}

// collectorAs asks the collector's API with token (empty: none).
func (e *env) collectorAs(token string) kubee2e.Caller {
	return kubee2e.Caller{Client: e.collectorTLS, Token: token}
}

func (e *env) topology(t *testing.T) api.Topology {
	t.Helper()
	var topo api.Topology
	kubee2e.Eventually(t, 30*time.Second, "agent topology", func() error {
		return e.collectorIdentity.GetJSON(agentAPI+"/api/v1/topology", &topo)
	})
	return topo
}

// flows returns the collector's flow rows that match query, as
// COLLECTOR_TOKEN sees them (every row).
func (e *env) flows(query url.Values) ([]flowtable.Row, error) {
	return e.viewer.Flows(e.collector, query)
}

// pod is a testbox pod of a test.
type pod struct {
	namespace, name string
	net1v4, net1v6  string
	eth0            string
}

func (p pod) String() string { return p.namespace + "/" + p.name }

// startPod creates a testbox pod with a Multus net1 (serving TCP and UDP echo)
// and waits until it runs and Multus has written its network status.
func (e *env) startPod(t *testing.T, namespace, name string, annotations map[string]string) pod {
	t.Helper()
	return e.startPodWith(t, namespace, name, annotations, nil)
}

// startPodWith is startPod with the pod changed by edit before it is created
// (nil: unchanged). Annotations not nil and without the Multus one: eth0 only.
func (e *env) startPodWith(t *testing.T, namespace, name string, annotations map[string]string, edit func(*corev1.Pod)) pod {
	t.Helper()
	if annotations == nil {
		annotations = map[string]string{nadv1.NetworkAttachmentAnnot: macvlanNetwork}
	}
	zero := int64(0)
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  new(bool),
			Containers: []corev1.Container{{
				Name: "box", Image: testboxImage, ImagePullPolicy: corev1.PullNever,
				Command: []string{"/bin/testbox", "serve", echoPort},
			}},
		},
	}
	if edit != nil {
		edit(p)
	}
	if _, err := e.kube.CoreV1().Pods(namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kubee2e.DeletePod(e.kube, namespace, name, time.Minute) }) // best effort: the namespace goes too
	out := pod{namespace: namespace, name: name}
	kubee2e.Eventually(t, 90*time.Second, "pod "+out.String()+" running with a network status", func() error {
		live, err := e.kube.CoreV1().Pods(namespace).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if live.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("phase %s", live.Status.Phase)
		}
		out.eth0 = live.Status.PodIP
		statuses, err := kubee2e.NetworkStatus(live)
		if err != nil {
			return err
		}
		for _, s := range statuses {
			if s.Interface != "net1" {
				continue
			}
			for _, ip := range s.IPs {
				if strings.Contains(ip, ":") {
					out.net1v6 = ip
				} else {
					out.net1v4 = ip
				}
			}
		}
		if annotations[nadv1.NetworkAttachmentAnnot] != "" && out.net1v4 == "" {
			return fmt.Errorf("no net1 in the network status %v", statuses)
		}
		return nil
	})
	return out
}

// exec runs a command in the pod's container through kubectl (the API
// server, the kubelet and containerd's streaming server).
func (e *env) exec(t *testing.T, p pod, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.kubectl, append([]string{"--kubeconfig", e.kubeconfig, "-n", p.namespace, "exec", p.name, "--"}, args...)...)
	if os.Getenv("KUBECACHEDIR") == "" {
		cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *env) mustExec(t *testing.T, p pod, args ...string) string {
	t.Helper()
	out, err := e.exec(t, p, args...)
	if err != nil {
		t.Fatalf("exec in %s: %v: %v\n%s", p, args, err, out)
	}
	return out
}

// ports returns the topology's ports of one pod.
func podPorts(topo api.Topology, p pod) []api.Port {
	var out []api.Port
	for _, port := range topo.Ports {
		if port.Pod != nil && port.Pod.Namespace == p.namespace && port.Pod.Name == p.name {
			out = append(out, port)
		}
	}
	return out
}

// ourAttachments lists, per hook of every interface in the pods' namespaces
// (/run/netns/cni-*), what of ours is attached there: TCX programs named
// nsint_* and cls_bpf filters named nsint-*. Read from the host.
func ourAttachments(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(netnsDir, "cni-*"))
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][]string{}
	for _, f := range files {
		if err := attachmentsIn(f, found); err != nil {
			t.Logf("%s: %v (namespace gone?)", f, err)
		}
	}
	return found
}

func attachmentsIn(file string, found map[string][]string) error {
	ns, err := netns.GetFromPath(file)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return err
	}
	base := filepath.Base(file)
	for _, l := range links {
		name := base + "/" + l.Attrs().Name
		for parent, dir := range map[uint32]string{netlink.HANDLE_MIN_INGRESS: "ingress", netlink.HANDLE_MIN_EGRESS: "egress"} {
			filters, err := h.FilterList(l, parent)
			if err != nil {
				continue
			}
			for _, f := range filters {
				if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "nsint-") {
					found[name+" "+dir] = append(found[name+" "+dir], "tc "+bf.Name)
				}
			}
		}
		err := inNetns(ns, func() error {
			for at, dir := range map[ebpf.AttachType]string{ebpf.AttachTCXIngress: "ingress", ebpf.AttachTCXEgress: "egress"} {
				res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: at})
				if err != nil {
					continue
				}
				for _, p := range res.Programs {
					prog, err := ebpf.NewProgramFromID(p.ID)
					if err != nil {
						continue
					}
					info, err := prog.Info()
					prog.Close()
					if err == nil && strings.HasPrefix(info.Name, "nsint_") {
						found[name+" "+dir] = append(found[name+" "+dir], "tcx "+info.Name)
					}
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// inNetns runs f on a thread in ns and then throws the thread away (it is not
// returned to the host's namespace, so no goroutine ever runs in a pod's).
func inNetns(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}
