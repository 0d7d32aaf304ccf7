package cluster

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
	"github.com/nsint/nsint/pkg/netif"
)

// TestCluster runs in order: the checks that only read, the traffic, who
// may see it and who may send reports, what the suite's Prometheus scraped
// of it, the pod life cycle, the agent's restart, and last the uninstall.
func TestCluster(t *testing.T) {
	e := clusterEnv(t)
	run := fmt.Sprintf("%d", time.Now().Unix()%100000)
	nsA := kubee2e.Namespace(t, e.kube, "nsint-e2e-a-"+run)
	nsB := kubee2e.Namespace(t, e.kube, "nsint-e2e-b-"+run)

	t.Run("AgentUnprivilegedWithDeployRights", func(t *testing.T) { testAgentRights(t, e) })
	a := e.startPod(t, nsA, "pod-a", nil)
	b := e.startPod(t, nsB, "pod-b", nil)
	t.Run("TrafficAndViews", func(t *testing.T) { testTraffic(t, e, a, b) })
	t.Run("DropWithReason", func(t *testing.T) { testDrop(t, e, a, b) })
	t.Run("WhoSeesWhat", func(t *testing.T) { testWhoSeesWhat(t, e, a, b) })
	t.Run("ReportsOnlyFromAgents", func(t *testing.T) { testForgedReports(t, e, a) })
	t.Run("APIsFromAPod", func(t *testing.T) { testAPIFromPod(t, e, nsA) })
	t.Run("Prometheus", func(t *testing.T) { testPrometheus(t, e, a, b) })
	t.Run("NewPodAndDeletedPod", func(t *testing.T) { testPodLifecycle(t, e, nsA, b) })
	t.Run("MalformedNetworkStatus", func(t *testing.T) { testMalformed(t, e, nsB) })
	t.Run("AgentRestartKeepsPortIDs", func(t *testing.T) { testAgentRestart(t, e, a, b) })
	t.Run("Uninstall", func(t *testing.T) { testUninstall(t, e) })
}

func render(t *testing.T, kind, name string, into any) {
	t.Helper()
	for _, o := range k8stest.Render(t, filepath.Join(k8stest.RepoRoot(t), "deploy", "base")) {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("deploy/base has no %s %s", kind, name)
}

func agentPods(t *testing.T, e *env) []corev1.Pod {
	t.Helper()
	pods, err := e.kube.CoreV1().Pods(agentNamespace).List(context.Background(),
		metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=nsint-agent"})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// The live agent pod is not privileged, has exactly deploy/'s capabilities,
// runs as its own ServiceAccount, and that account may do exactly what
// deploy/'s ClusterRole grants.
func testAgentRights(t *testing.T, e *env) {
	var want appsv1.DaemonSet
	render(t, "DaemonSet", "nsint-agent", &want)
	wantCaps := want.Spec.Template.Spec.Containers[0].SecurityContext.Capabilities

	pods := agentPods(t, e)
	if len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning {
		t.Fatalf("want one running agent pod, got %d", len(pods))
	}
	p := pods[0]
	if p.Spec.ServiceAccountName != "nsint-agent" {
		t.Errorf("agent runs as ServiceAccount %q", p.Spec.ServiceAccountName)
	}
	sc := p.Spec.Containers[0].SecurityContext
	if sc == nil || (sc.Privileged != nil && *sc.Privileged) {
		t.Fatalf("agent container is privileged or has no securityContext: %+v", sc)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("agent allows privilege escalation")
	}
	got, wantAdd := capNames(sc.Capabilities.Add), capNames(wantCaps.Add)
	if !slices.Equal(got, wantAdd) || !slices.Equal(capNames(sc.Capabilities.Drop), capNames(wantCaps.Drop)) {
		t.Errorf("live capabilities add %v drop %v, deploy/ grants add %v drop %v",
			got, sc.Capabilities.Drop, wantAdd, wantCaps.Drop)
	}
	// The running process's effective set, read from the host.
	var wantEff uint64
	for _, c := range wantAdd {
		bit, ok := capBits[c]
		if !ok {
			t.Fatalf("capability %s: bit unknown to the test", c)
		}
		wantEff |= 1 << bit
	}
	if eff := hostCapEff(t); eff != wantEff {
		t.Errorf("agent process effective capabilities %#x, want %#x (%v)", eff, wantEff, wantAdd)
	}

	var role rbacv1.ClusterRole
	render(t, "ClusterRole", "nsint-agent", &role)
	live, err := e.kube.RbacV1().ClusterRoles().Get(context.Background(), "nsint-agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(live.Rules) != fmt.Sprint(role.Rules) {
		t.Errorf("live ClusterRole rules %v, deploy/ has %v", live.Rules, role.Rules)
	}
	for _, c := range []struct {
		account, group, resource, verb string
		allowed                        bool
	}{
		{"nsint-agent", "", "pods", "list", true}, {"nsint-agent", "", "pods", "watch", true},
		{"nsint-agent", "k8s.cni.cncf.io", "network-attachment-definitions", "list", true},
		{"nsint-agent", "authentication.k8s.io", "tokenreviews", "create", true},
		{"nsint-agent", "authorization.k8s.io", "subjectaccessreviews", "create", true},
		{"nsint-agent", "", "pods", "create", false}, {"nsint-agent", "", "pods", "delete", false},
		{"nsint-agent", "", "secrets", "get", false}, {"nsint-agent", "", "nodes", "list", false},
		{"nsint-agent", "k8s.cni.cncf.io", "network-attachment-definitions", "update", false},
		{"nsint-agent", "authentication.k8s.io", "tokenreviews", "list", false},
		{"nsint-collector", "authentication.k8s.io", "tokenreviews", "create", true},
		{"nsint-collector", "authorization.k8s.io", "subjectaccessreviews", "create", true},
		{"nsint-collector", "", "pods", "list", false}, {"nsint-collector", "", "secrets", "get", false},
		{"nsint-collector", "", "nodes", "get", false},
	} {
		if got := e.may(t, c.account, &authv1.ResourceAttributes{Group: c.group, Resource: c.resource, Verb: c.verb}, nil); got != c.allowed {
			t.Errorf("%s %s %s/%s: allowed=%v, want %v", c.account, c.verb, c.group, c.resource, got, c.allowed)
		}
	}
	// The agents' paths, as the agent asks about them: for the collector,
	// not for the agent itself.
	for _, path := range []string{"/nsint-agent/api/v1/topology", "/nsint-agent/api/v1/namespaces", "/metrics"} {
		if !e.may(t, "nsint-collector", nil, &authv1.NonResourceAttributes{Path: path, Verb: "get"}) {
			t.Errorf("nsint-collector may not get %s", path)
		}
		if e.may(t, "nsint-agent", nil, &authv1.NonResourceAttributes{Path: path, Verb: "get"}) {
			t.Errorf("nsint-agent may get %s", path)
		}
	}
}

// may asks the API server whether the ServiceAccount nsint/account may do
// what res or nonRes describes.
func (e *env) may(t *testing.T, account string, res *authv1.ResourceAttributes, nonRes *authv1.NonResourceAttributes) bool {
	t.Helper()
	sar := &authv1.SubjectAccessReview{Spec: authv1.SubjectAccessReviewSpec{
		User:                  "system:serviceaccount:" + agentNamespace + ":" + account,
		Groups:                []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNamespace, "system:authenticated"},
		ResourceAttributes:    res,
		NonResourceAttributes: nonRes,
	}}
	r, err := e.kube.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r.Status.Allowed
}

func capNames(cs []corev1.Capability) []string {
	var out []string
	for _, c := range cs {
		out = append(out, strings.TrimPrefix(string(c), "CAP_"))
	}
	slices.Sort(out)
	return out
}

var capBits = map[string]uint{"NET_ADMIN": 12, "NET_RAW": 13, "SYS_ADMIN": 21, "SYS_RESOURCE": 24, "PERFMON": 38, "BPF": 39}

// hostCapEff returns the effective capabilities of the agent process, found
// from the host by its command line.
func hostCapEff(t *testing.T) uint64 {
	t.Helper()
	for _, f := range mustGlob(t, "/proc/[0-9]*/cmdline") {
		cmd, err := os.ReadFile(f)
		if err != nil || !strings.HasPrefix(string(cmd), "/nsint-agent\x00") {
			continue
		}
		status, err := os.ReadFile(filepath.Join(filepath.Dir(f), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
				eff, err := strconv.ParseUint(v, 16, 64)
				if err != nil {
					t.Fatal(err)
				}
				return eff
			}
		}
	}
	t.Fatal("no /nsint-agent process on the host")
	return 0
}

// Traffic over eth0 and net1 of two pods in two namespaces; the collector
// views by interface name and by pod.
func testTraffic(t *testing.T, e *env, a, b pod) {
	if a.net1v4 == "" || b.net1v4 == "" {
		t.Fatalf("pods without net1: %+v %+v", a, b)
	}
	e.mustExec(t, a, "ping", "-c", "3", "-i", "0.2", "-W", "2", b.net1v4)
	e.mustExec(t, b, "ping", "-c", "3", "-i", "0.2", "-W", "2", a.net1v4)
	e.mustExec(t, a, "ping", "-c", "3", "-i", "0.2", "-W", "2", b.eth0)
	if out := e.mustExec(t, a, "testbox", "send", "tcp", b.net1v4, echoPort, "5"); !strings.Contains(out, "answered=5") {
		t.Errorf("TCP over net1: %s", out)
	}
	if out := e.mustExec(t, a, "testbox", "send", "udp", b.net1v4, echoPort, "5"); !strings.Contains(out, "answered=") {
		t.Errorf("UDP over net1: %s", out)
	}
	v6 := a.net1v6 != "" && b.net1v6 != ""
	if v6 {
		// Duplicate address detection may hold the addresses for a moment.
		kubee2e.Eventually(t, 20*time.Second, "ping6 over net1", func() error {
			out, err := e.exec(t, a, "ping6", "-c", "2", "-i", "0.2", "-W", "2", b.net1v6)
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
		e.mustExec(t, a, "testbox", "send", "tcp", b.net1v6, echoPort, "3")
	} else {
		t.Log("the macvlan network has no IPv6 here: IPv4 only")
	}

	protos := []string{"icmp", "tcp", "udp"}
	if v6 {
		protos = append(protos, "icmpv6")
	}
	kubee2e.Eventually(t, 30*time.Second, "flows of both pods' net1", func() error {
		rows, err := e.flows(url.Values{"iface": {"net1"}})
		if err != nil {
			return err
		}
		seen := map[string]map[string]bool{}
		for _, r := range rows {
			if r.Interface != "net1" {
				return fmt.Errorf("iface=net1 lists a row of %q", r.Interface)
			}
			if r.Pod == nil {
				return fmt.Errorf("net1 row without a pod: %+v", r)
			}
			if r.Network != macvlanNetwork {
				return fmt.Errorf("net1 row of %s/%s names network %q, want %q", r.Pod.Namespace, r.Pod.Name, r.Network, macvlanNetwork)
			}
			key := r.Pod.Namespace + "/" + r.Pod.Name
			if seen[key] == nil {
				seen[key] = map[string]bool{}
			}
			seen[key][strings.ToLower(r.Proto)] = true
		}
		for _, p := range []pod{a, b} {
			for _, proto := range protos {
				if !seen[p.String()][proto] {
					return fmt.Errorf("no %s flow at %s net1 (seen %v)", proto, p, seen)
				}
			}
		}
		return nil
	})

	rows, err := e.flows(url.Values{"iface": {a.String() + ":net1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		t.Fatalf("iface=%s:net1 lists nothing", a)
	}
	for _, r := range rows {
		if r.Pod == nil || r.Pod.Namespace != a.namespace || r.Pod.Name != a.name || r.Interface != "net1" {
			t.Errorf("iface=%s:net1 lists a row of another port: %+v", a, r)
		}
	}
	eth0, err := e.flows(url.Values{"iface": {"eth0"}})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range eth0 {
		found = found || (r.Pod != nil && r.Pod.Name == a.name && strings.EqualFold(r.Proto, "icmp"))
	}
	if !found {
		t.Errorf("the ping over eth0 is not in iface=eth0: %+v", eth0)
	}
}

// A datagram to a closed UDP port is dropped in the receiving pod; the
// collector shows the drop and its reason at that pod's net1.
func testDrop(t *testing.T, e *env, a, b pod) {
	kubee2e.Eventually(t, 30*time.Second, "a drop at "+b.String()+" net1", func() error {
		_, _ = e.exec(t, a, "testbox", "send", "udp", b.net1v4, closedPort, "3")
		var resp web.FlowsResponse
		q := url.Values{"iface": {b.String() + ":net1"}, "drops": {"true"}}
		if err := e.viewer.GetJSON(e.collector+"/api/v1/flows?"+q.Encode(), &resp); err != nil {
			return err
		}
		for _, r := range resp.Flows {
			if r.DstPort != 7999 || r.Drops == 0 || strings.ToLower(r.Proto) != "udp" {
				continue
			}
			for code := range r.DropReasons {
				if resp.DropReasonNames[code] == "" {
					return fmt.Errorf("drop reason %s has no name", code)
				}
				t.Logf("drop at %s net1: reason %s (%s)", b, code, resp.DropReasonNames[code])
				return nil
			}
		}
		return fmt.Errorf("no drop row with a reason to UDP port %s: %+v", closedPort, resp.Flows)
	})
}

// A pod created now is in the topology within seconds; once deleted its
// ports leave the agent's topology and the collector's port list.
func testPodLifecycle(t *testing.T, e *env, ns string, peer pod) {
	created := time.Now()
	c := e.startPod(t, ns, "pod-late", nil)
	var ids []uint16
	kubee2e.Eventually(t, 15*time.Second, "ports of "+c.String()+" in the topology", func() error {
		ports := podPorts(e.topology(t), c)
		names := map[string]bool{}
		ids = ids[:0]
		for _, p := range ports {
			names[p.Name] = true
			ids = append(ids, p.ID)
		}
		if !names["eth0"] || !names["net1"] {
			return fmt.Errorf("ports %v", ports)
		}
		return nil
	})
	t.Logf("pod named in the topology %s after its creation", time.Since(created).Round(100*time.Millisecond))
	collectorHas := func() (bool, error) {
		var resp struct {
			Ports []struct {
				ID  uint16 `json:"id"`
				Pod *struct {
					Name string `json:"name"`
				} `json:"pod"`
			} `json:"ports"`
		}
		if err := e.viewer.GetJSON(e.collector+"/api/v1/ports", &resp); err != nil {
			return false, err
		}
		for _, p := range resp.Ports {
			if p.Pod != nil && p.Pod.Name == "pod-late" {
				return true, nil
			}
		}
		return false, nil
	}
	// Traffic over eth0 so that the collector learns the ports.
	kubee2e.Eventually(t, 45*time.Second, "pod-late in the collector's port list", func() error {
		_, _ = e.exec(t, c, "ping", "-c", "2", "-i", "0.2", "-W", "1", peer.eth0)
		if ok, err := collectorHas(); err != nil || !ok {
			return fmt.Errorf("not listed (err %v)", err)
		}
		return nil
	})
	if err := kubee2e.DeletePod(e.kube, ns, "pod-late", time.Minute); err != nil {
		t.Fatal(err)
	}
	kubee2e.Eventually(t, 30*time.Second, "ports of the deleted pod leave the topology", func() error {
		for _, p := range e.topology(t).Ports {
			if slices.Contains(ids, p.ID) {
				return fmt.Errorf("port %d (%s) still there", p.ID, p.Name)
			}
		}
		return nil
	})
	kubee2e.Eventually(t, 90*time.Second, "ports of the deleted pod leave the collector's port list", func() error {
		if ok, err := collectorHas(); err != nil || ok {
			return fmt.Errorf("still listed (err %v)", err)
		}
		return nil
	})
}

// A pod whose network-status annotation is malformed keeps its ports in the
// topology (monitored), the agent warns, and net1 carries no network name.
func testMalformed(t *testing.T, e *env, ns string) {
	m := e.startPod(t, ns, "pod-malformed", nil)
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"[{not json"}}}`, nadv1.NetworkStatusAnnot)
	_, err := e.kube.CoreV1().Pods(ns).Patch(context.Background(), m.name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubee2e.Eventually(t, 20*time.Second, "net1 of the malformed pod monitored without names", func() error {
		topo := e.topology(t)
		var netns netif.Netns
		for _, p := range topo.Ports {
			if p.Pod != nil && p.Pod.Name == m.name && p.Name == "eth0" {
				netns = p.Netns.Inode
			}
		}
		if netns == 0 {
			return fmt.Errorf("eth0 of %s not named by its pod IP", m)
		}
		for _, p := range topo.Ports {
			if p.Netns.Inode == netns && p.Name == "net1" {
				if p.Network != "" {
					return fmt.Errorf("net1 still names network %q", p.Network)
				}
				if p.AttachMode == "" {
					return fmt.Errorf("net1 not attached")
				}
				return nil
			}
		}
		return fmt.Errorf("no net1 port in the pod's namespace")
	})
	kubee2e.Eventually(t, 20*time.Second, "the agent's warning", func() error {
		pods := agentPods(t, e)
		if len(pods) == 0 {
			return fmt.Errorf("no agent pod")
		}
		raw, err := e.kube.CoreV1().Pods(agentNamespace).GetLogs(pods[0].Name, &corev1.PodLogOptions{}).DoRaw(context.Background())
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, m.name) {
				return nil
			}
		}
		return fmt.Errorf("no WARN line naming %s in the agent's log", m.name)
	})
}

// Deleting the agent pod: the DaemonSet recreates it, every port keeps its
// ID, and each hook has exactly one attachment of ours.
func testAgentRestart(t *testing.T, e *env, a, b pod) {
	before := portIDs(e.topology(t))
	old := agentPods(t, e)
	if len(old) != 1 {
		t.Fatalf("%d agent pods", len(old))
	}
	if err := e.kube.CoreV1().Pods(agentNamespace).Delete(context.Background(), old[0].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	kubee2e.Eventually(t, 120*time.Second, "a new agent pod ready", func() error {
		pods := agentPods(t, e)
		if len(pods) != 1 || pods[0].UID == old[0].UID {
			return fmt.Errorf("%d agent pods, the old one still there", len(pods))
		}
		for _, c := range pods[0].Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("not ready")
	})
	after := portIDs(e.topology(t))
	for key, id := range before {
		got, ok := after[key]
		if !ok && !e.podExists(t, key) {
			// A pod an earlier test deleted: its namespace was still being
			// torn down before the restart, and is gone now.
			t.Logf("port %s: its pod is gone", key)
			continue
		}
		if !ok || got != id {
			t.Errorf("port %s: ID %d before the restart, %d after (present %v)", key, id, got, ok)
		}
	}
	for _, p := range []pod{a, b} {
		if _, ok := after[p.String()+":net1"]; !ok {
			t.Errorf("%s net1 missing after the restart", p)
		}
	}
	atts := ourAttachments(t)
	net1Hooks := 0
	for hook := range atts {
		if strings.HasSuffix(hook, "/net1 ingress") || strings.HasSuffix(hook, "/net1 egress") {
			net1Hooks++
		}
	}
	if net1Hooks < 4 {
		t.Errorf("want both hooks of both pods' net1 attached, found %d net1 hooks: %v", net1Hooks, atts)
	}
	for hook, atts := range atts {
		if len(atts) != 1 {
			t.Errorf("%s: %d attachments of ours, want 1: %v", hook, len(atts), atts)
		}
	}
}

// podExists reports whether the pod of a portIDs key (namespace/pod:interface)
// is still in the API server.
func (e *env) podExists(t *testing.T, key string) bool {
	t.Helper()
	nsName, _, _ := strings.Cut(key, ":")
	ns, name, _ := strings.Cut(nsName, "/")
	_, err := e.kube.CoreV1().Pods(ns).Get(context.Background(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	return true
}

// portIDs maps the ports of running pods (namespace/pod:interface) to their
// IDs. Ports without a pod are left out: they belong to namespaces being torn
// down (the pods of earlier tests).
func portIDs(topo api.Topology) map[string]uint16 {
	ids := map[string]uint16{}
	for _, p := range topo.Ports {
		if p.Pod != nil {
			ids[p.Pod.Namespace+"/"+p.Pod.Name+":"+p.Name] = p.ID
		}
	}
	return ids
}

// Deleting what the overlay applied, then `nsint-agent cleanup` on the node
// as docs/operations.md says, leaves no attachment, pin or state file.
func testUninstall(t *testing.T, e *env) {
	root := k8stest.RepoRoot(t)
	out, err := exec.Command(e.kubectl, "--kubeconfig", e.kubeconfig, "delete", "-k",
		filepath.Join(root, "deploy", "overlays", "local"), "--wait=true", "--timeout=120s").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl delete -k deploy/overlays/local: %v\n%s", err, out)
	}
	kubee2e.Eventually(t, 60*time.Second, "the agent pod gone", func() error {
		if n := len(agentPods(t, e)); n > 0 {
			return fmt.Errorf("%d agent pods", n)
		}
		for _, f := range mustGlob(t, "/proc/[0-9]*/cmdline") {
			if cmd, err := os.ReadFile(f); err == nil && strings.HasPrefix(string(cmd), "/nsint-agent\x00") {
				return fmt.Errorf("agent process %s still runs", f)
			}
		}
		return nil
	})
	state, bpffs := filepath.Join(clusterWork, "node", "state"), filepath.Join(clusterWork, "node", "bpffs")
	// The stopped agent leaves its attachments (observation goes on), its
	// pins and its port state: that is what the cleanup must remove.
	if len(ourAttachments(t)) == 0 {
		t.Error("no attachment of ours before the cleanup: nothing to check")
	}
	if len(mustGlob(t, filepath.Join(state, "*"))) == 0 {
		t.Error("no state file before the cleanup: nothing to check")
	}
	cmd := exec.Command(filepath.Join(root, "bin", "nsint-agent"), "cleanup", "--state-dir", state, "--bpffs", bpffs,
		"--netns-dir", netnsDir, "--host-netns=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nsint-agent cleanup: %v\n%s", err, out)
	} else {
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
	if atts := ourAttachments(t); len(atts) != 0 {
		t.Errorf("attachments of ours left: %v", atts)
	}
	// maps.debug and progs.debug are the kernel's own files at a BPF
	// filesystem's root.
	var pins []string
	_ = filepath.Walk(bpffs, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && filepath.Dir(path) != bpffs {
			pins = append(pins, path)
		}
		return nil
	})
	if len(pins) != 0 {
		t.Errorf("pins left: %v", pins)
	}
	if files := mustGlob(t, filepath.Join(state, "*")); len(files) != 0 {
		t.Errorf("state files left: %v", files)
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
