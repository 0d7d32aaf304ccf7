package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/collector/web"
)

// The addresses of the flow testbox report forges (hack/testbox/probe.go):
// no pod of the suite has them.
const (
	forgedSrc = "198.18.250.1"
	forgedDst = "198.18.250.2"
)

// serviceAccount creates the ServiceAccount ns/name (removed with its
// namespace) and returns a token of it.
func (e *env) serviceAccount(t *testing.T, ns, name string) string {
	t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := e.kube.CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return e.saToken(t, ns, name)
}

// wantStatus checks that GET u through c answers code.
func wantStatus(t *testing.T, c kubee2e.Caller, who, u string, code int) string {
	t.Helper()
	got, body, err := c.Status(u)
	if err != nil {
		t.Errorf("%s GET %s: %v", who, u, err)
		return ""
	}
	if got != code {
		t.Errorf("%s GET %s: %d, want %d", who, u, got, code)
	}
	return body
}

// metric returns the value of the series name{labels} (labels as in the
// exposition, e.g. `reason="unknown_source"`) in the text of a /metrics
// answer; 0 when it is absent.
func metric(t *testing.T, text, name, labels string) float64 {
	t.Helper()
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.Fields(v)[0], 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	return 0
}

// collectorMetrics returns the collector's /metrics, read with the
// collector's own ServiceAccount token (nsint-agent-reader may get /metrics).
func (e *env) collectorMetrics(t *testing.T) string {
	t.Helper()
	code, body, err := e.collectorAs(e.collectorIdentity.Token).Status(e.collector + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("collector /metrics: %d %v", code, err)
	}
	return body
}

// Who sees what: a ServiceAccount that may view namespace A only (a
// RoleBinding of the built-in view role there) sees A's net1 flows and none
// of B's, and gets 403 for the collector's /metrics and for the agent's API;
// COLLECTOR_TOKEN sees both; no token gets 401 from the collector's API and
// the agent's, while the health endpoints stay open; each server counts the
// requests it denied.
func testWhoSeesWhat(t *testing.T, e *env, a, b pod) {
	team := e.serviceAccount(t, a.namespace, "team-a")
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: a.namespace, Name: "team-a-view"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "team-a", Namespace: a.namespace}},
	}
	if _, err := e.kube.RbacV1().RoleBindings(a.namespace).Create(context.Background(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	asTeam := e.collectorAs(team)
	kubee2e.Eventually(t, 60*time.Second, "team-a sees "+a.String()+"'s net1 and nothing of "+b.namespace, func() error {
		rows, err := asTeam.Flows(e.collector, url.Values{"iface": {"net1"}})
		if err != nil {
			return err
		}
		seenA := false
		for _, r := range rows {
			if r.Pod == nil || r.Pod.Namespace != a.namespace {
				t.Fatalf("team-a sees a row outside %s: %+v", a.namespace, r)
			}
			seenA = seenA || r.Pod.Name == a.name
		}
		if !seenA {
			return fmt.Errorf("no row of %s among %d", a, len(rows))
		}
		return nil
	})
	// Every view, not only the flows: the summary and the port list.
	var sum web.SummaryResponse
	if err := asTeam.GetJSON(e.collector+"/api/v1/summary", &sum); err != nil {
		t.Fatal(err)
	}
	for _, s := range sum.Interfaces {
		if s.Pod == nil || s.Pod.Namespace != a.namespace {
			t.Errorf("team-a's summary lists an interface outside %s: %+v", a.namespace, s)
		}
	}
	body := wantStatus(t, asTeam, "team-a", e.collector+"/api/v1/ports", http.StatusOK)
	if strings.Contains(body, b.namespace) {
		t.Errorf("team-a's port list names %s", b.namespace)
	}
	// The same views with COLLECTOR_TOKEN hold both namespaces.
	rows, err := e.flows(url.Values{"iface": {"net1"}})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Pod != nil {
			seen[r.Pod.Namespace] = true
		}
	}
	if !seen[a.namespace] || !seen[b.namespace] {
		t.Errorf("COLLECTOR_TOKEN sees net1 rows of %v, want both %s and %s", seen, a.namespace, b.namespace)
	}

	before401 := metric(t, e.collectorMetrics(t), "nsint_collector_http_requests_denied_total", `code="401"`)
	before403 := metric(t, e.collectorMetrics(t), "nsint_collector_http_requests_denied_total", `code="403"`)
	wantStatus(t, asTeam, "team-a", e.collector+"/metrics", http.StatusForbidden)
	wantStatus(t, e.viewer, "COLLECTOR_TOKEN", e.collector+"/metrics", http.StatusForbidden)
	none := e.collectorAs("")
	for _, p := range []string{"/api/v1/flows", "/api/v1/summary", "/api/v1/ports", "/metrics"} {
		wantStatus(t, none, "no token", e.collector+p, http.StatusUnauthorized)
	}
	wantStatus(t, e.collectorAs("not-a-token"), "a bad token", e.collector+"/api/v1/flows", http.StatusUnauthorized)
	wantStatus(t, none, "no token", e.collector+"/healthz", http.StatusOK)
	m := e.collectorMetrics(t)
	if got := metric(t, m, "nsint_collector_http_requests_denied_total", `code="401"`); got < before401+5 {
		t.Errorf("collector: 401s counted %v, want at least %v", got, before401+5)
	}
	if got := metric(t, m, "nsint_collector_http_requests_denied_total", `code="403"`); got < before403+2 {
		t.Errorf("collector: 403s counted %v, want at least %v", got, before403+2)
	}

	// The agent: only readers of its paths (the collector's account); open
	// health endpoints that say nothing more than ok.
	noneA := e.agent("")
	for _, p := range []string{"/api/v1/topology", "/api/v1/namespaces", "/metrics"} {
		wantStatus(t, noneA, "no token", agentAPI+p, http.StatusUnauthorized)
		wantStatus(t, e.agent(team), "team-a", agentAPI+p, http.StatusForbidden)
		wantStatus(t, e.agent(e.viewer.Token), "COLLECTOR_TOKEN", agentAPI+p, http.StatusForbidden)
		wantStatus(t, e.collectorIdentity, "the collector's account", agentAPI+p, http.StatusOK)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if body := wantStatus(t, noneA, "no token", agentAPI+p, http.StatusOK); strings.TrimSpace(body) != "ok" {
			t.Errorf("agent %s answers %q, want only ok", p, body)
		}
	}
	am := wantStatus(t, e.collectorIdentity, "the collector's account", agentAPI+"/metrics", http.StatusOK)
	if got := metric(t, am, "nsint_api_requests_denied_total", `code="401"`); got < 3 {
		t.Errorf("agent: 401s counted %v, want at least 3", got)
	}
	if got := metric(t, am, "nsint_api_requests_denied_total", `code="403"`); got < 6 {
		t.Errorf("agent: 403s counted %v, want at least 6", got)
	}
	// Plain HTTP is not served.
	if resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + nodeIP + ":4048/api/v1/topology"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the agent serves its topology over plain HTTP")
		}
	}
}

// A pod that is no agent sends INT reports claiming the node's switch ID
// and the port ID of a's net1, of a flow between addresses no pod has: the
// collector counts them as rejected (unknown_source) and no view ever shows
// the flow; the real agent's rows keep coming.
func testForgedReports(t *testing.T, e *env, a pod) {
	topo := e.topology(t)
	var port uint16
	for _, p := range podPorts(topo, a) {
		if p.Name == "net1" {
			port = p.ID
		}
	}
	if port == 0 {
		t.Fatalf("%s has no net1 in the agent's topology", a)
	}
	forger := e.startPodWith(t, a.namespace, "forger", map[string]string{}, nil)
	before := metric(t, e.collectorMetrics(t), "nsint_collector_reports_rejected_total", `reason="unknown_source"`)
	const n = 20
	out := e.mustExec(t, forger, "testbox", "report", nodeIP, "32766", strconv.FormatUint(uint64(topo.SwitchID), 10),
		strconv.Itoa(int(port)), strconv.Itoa(n))
	if !strings.Contains(out, fmt.Sprintf("sent=%d", n)) {
		t.Fatalf("testbox report: %s", out)
	}
	var rejected float64
	kubee2e.Eventually(t, 30*time.Second, "the forged reports counted as rejected", func() error {
		rejected = metric(t, e.collectorMetrics(t), "nsint_collector_reports_rejected_total", `reason="unknown_source"`)
		if rejected <= before {
			return fmt.Errorf("nsint_collector_reports_rejected_total{reason=\"unknown_source\"} %v, was %v", rejected, before)
		}
		return nil
	})
	t.Logf("%s sent %d forged reports: rejected %v -> %v", forger, n, before, rejected)
	// Never shown, in any view, for as long as a real report takes to show.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		rows, err := e.flows(url.Values{})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Src == forgedSrc || r.Dst == forgedDst || r.Src == forgedDst || r.Dst == forgedSrc {
				t.Fatalf("a forged row is shown: %+v", r)
			}
		}
		var sum web.SummaryResponse
		if err := e.viewer.GetJSON(e.collector+"/api/v1/summary", &sum); err != nil {
			t.Fatal(err)
		}
		for _, ag := range sum.Agents {
			if ag.Source == forger.eth0 {
				t.Fatalf("the forger %s is listed as an agent: %+v", forger.eth0, ag)
			}
		}
		time.Sleep(time.Second)
	}
	// The real agent is still heard: a's own traffic arrives.
	kubee2e.Eventually(t, 30*time.Second, "a fresh flow of "+a.String(), func() error {
		since := time.Now()
		_, _ = e.exec(t, forger, "ping", "-c", "2", "-i", "0.2", "-W", "1", a.eth0)
		rows, err := e.flows(url.Values{"iface": {a.String() + ":eth0"}})
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.LastSeen.After(since.Add(-time.Second)) {
				return nil
			}
		}
		return fmt.Errorf("no row of %s eth0 seen since %s", a, since.Format(time.RFC3339))
	})
}

// The agent's and the collector's APIs from inside a pod (what any workload
// could try): without a token 401; with the pod's own ServiceAccount token,
// an account bound to nsint-agent-reader, the agent answers, over TLS checked
// against the harness's CA for the agents' Service name.
func testAPIFromPod(t *testing.T, e *env, ns string) {
	ca, err := os.ReadFile(e.caFile)
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nsint-ca"}, Data: map[string]string{"ca.crt": string(ca)}}
	if _, err := e.kube.CoreV1().ConfigMaps(ns).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.serviceAccount(t, ns, "agent-reader")
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-agent-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "nsint-agent-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "agent-reader", Namespace: ns}},
	}
	if _, err := e.kube.RbacV1().ClusterRoleBindings().Create(context.Background(), crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), crb.Name, metav1.DeleteOptions{})
	})
	withToken := func(p *corev1.Pod) {
		p.Spec.ServiceAccountName = "agent-reader"
		p.Spec.AutomountServiceAccountToken = nil
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nsint-ca"}}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: "ca", MountPath: "/ca", ReadOnly: true})
	}
	prober := e.startPodWith(t, ns, "prober", map[string]string{}, withToken)
	const token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	get := func(url string, args ...string) string {
		t.Helper()
		cmd := append([]string{"testbox", "get", "-ca", "/ca/ca.crt"}, args...)
		out := e.mustExec(t, prober, append(cmd, url)...)
		return strings.TrimSpace(out)
	}
	for _, c := range []struct {
		url, name string
		token     bool
		want      int
	}{
		{agentAPI + "/api/v1/topology", agentName, false, 401},
		{agentAPI + "/metrics", agentName, false, 401},
		{e.collector + "/api/v1/flows", "", false, 401},
		{agentAPI + "/api/v1/topology", agentName, true, 200},
		{agentAPI + "/metrics", agentName, true, 200},
		{agentAPI + "/healthz", agentName, false, 200},
	} {
		var args []string
		if c.name != "" {
			args = append(args, "-server-name", c.name)
		}
		if c.token {
			args = append(args, "-token-file", token)
		}
		out := get(c.url, args...)
		if !strings.HasPrefix(out, fmt.Sprintf("status=%d ", c.want)) {
			t.Errorf("from %s: GET %s (token %v): %s, want status %d", prober, c.url, c.token, out, c.want)
		}
	}
	// The agent's certificate does not name anything else.
	if out, err := e.exec(t, prober, "testbox", "get", "-ca", "/ca/ca.crt", "-server-name", "kubernetes.default.svc",
		agentAPI+"/healthz"); err == nil {
		t.Errorf("the agent's certificate passed for another name: %s", out)
	}
}
