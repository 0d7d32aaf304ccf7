package deploy

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/yaml"

	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
)

var overlays = []string{"base", "overlays/kind", "overlays/local", "overlays/openshift", "overlays/sharded"}

// agentCapabilities are the capabilities the DaemonSet adds, and the only ones.
var agentCapabilities = []string{"BPF", "NET_ADMIN", "PERFMON", "SYS_ADMIN"}

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return k8stest.Render(t, filepath.Join(k8stest.RepoRoot(t), "deploy", dir))
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatalf("%s %s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
}

// thirdParty reports whether obj belongs to a component an overlay installs
// under its own names (Multus) or a definition of someone else's API.
func thirdParty(o *unstructured.Unstructured) bool {
	return o.GetKind() == "CustomResourceDefinition" || strings.Contains(o.GetName(), "multus") ||
		(o.GetKind() == "NetworkAttachmentDefinition" && o.GetName() == "macvlan-net")
}

func TestManifestsFollowTheRules(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			for _, o := range objs {
				if thirdParty(o) {
					if dir == "base" || dir == "overlays/openshift" {
						t.Errorf("%s %s: third-party objects belong only to the kind overlay", o.GetKind(), o.GetName())
					}
					continue
				}
				if !strings.HasPrefix(o.GetName(), "nsint") {
					t.Errorf("%s %s: name lacks the nsint- prefix", o.GetKind(), o.GetName())
				}
			}

			var ds appsv1.DaemonSet
			find(t, objs, "DaemonSet", "nsint-agent", &ds)
			spec := ds.Spec.Template.Spec
			if !spec.HostNetwork {
				t.Error("agent: hostNetwork is not set")
			}
			if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
				t.Errorf("agent: want one toleration of every taint, got %+v", spec.Tolerations)
			}
			c := spec.Containers[0]
			sc := c.SecurityContext
			if sc == nil || (sc.Privileged != nil && *sc.Privileged) || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("agent: want unprivileged with a read-only root filesystem, got %+v", sc)
			}
			var added []string
			for _, c := range sc.Capabilities.Add {
				added = append(added, string(c))
			}
			slices.Sort(added)
			if !slices.Equal(added, agentCapabilities) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
				t.Errorf("agent: capabilities add %v drop %v, want add %v drop [ALL]", added, sc.Capabilities.Drop, agentCapabilities)
			}
			if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
				t.Error("agent: want liveness /healthz and readiness /readyz probes")
			}
			if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
				t.Errorf("agent: requests and limits missing: %+v", c.Resources)
			}
			env := map[string]corev1.EnvVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			if e := env["NSINT_NODE_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
				t.Errorf("agent: NSINT_NODE_NAME not from spec.nodeName: %+v", e)
			}
			if e := env["NSINT_NODE_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
				t.Errorf("agent: NSINT_NODE_IP not from status.hostIP: %+v", e)
			}
			if env["NSINT_API_ADDR"].Value != "$(NSINT_NODE_IP):4048" {
				t.Errorf("agent: NSINT_API_ADDR = %q, want the node IP, port 4048", env["NSINT_API_ADDR"].Value)
			}
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range c.VolumeMounts {
				mounts[m.MountPath] = m
			}
			if m, ok := mounts["/var/run/netns"]; !ok || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
				t.Errorf("agent: /var/run/netns must be mounted with HostToContainer propagation: %+v", m)
			}
			for _, p := range []string{"/sys/fs/bpf", "/var/lib/nsint"} {
				if _, ok := mounts[p]; !ok {
					t.Errorf("agent: %s not mounted", p)
				}
			}

			var role rbacv1.ClusterRole
			find(t, objs, "ClusterRole", "nsint-agent", &role)
			want := []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"k8s.cni.cncf.io"}, Resources: []string{"network-attachment-definitions"}, Verbs: []string{"get", "list", "watch"}},
			}
			if len(role.Rules) != len(want) {
				t.Fatalf("agent ClusterRole rules %+v, want %+v", role.Rules, want)
			}
			for i := range want {
				r := role.Rules[i]
				if !slices.Equal(r.APIGroups, want[i].APIGroups) || !slices.Equal(r.Resources, want[i].Resources) ||
					!slices.Equal(r.Verbs, want[i].Verbs) || len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
					t.Errorf("agent ClusterRole rule %d: %+v, want %+v", i, r, want[i])
				}
			}
			var svc corev1.Service
			find(t, objs, "Service", "nsint-collector", &svc)
			var udp bool
			for _, p := range svc.Spec.Ports {
				udp = udp || (p.Protocol == corev1.ProtocolUDP && p.Port == 32766)
			}
			if !udp {
				t.Errorf("collector Service lacks UDP 32766: %+v", svc.Spec.Ports)
			}
			var dep appsv1.Deployment
			find(t, objs, "Deployment", "nsint-collector", &dep)

			checkScrapeAnnotations(t, &ds)
			if dir == "overlays/sharded" {
				checkSharded(t, objs, &dep, &ds)
			}
			if dir == "overlays/openshift" {
				checkSCC(t, objs, &ds)
				checkPodMonitor(t, objs, &ds)
			}
		})
	}
}

// checkScrapeAnnotations holds the agent pods' Prometheus annotations to the
// API's port and path.
func checkScrapeAnnotations(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	ann := ds.Spec.Template.Annotations
	c := ds.Spec.Template.Spec.Containers[0]
	if len(c.Ports) != 1 || c.Ports[0].Name != "api" {
		t.Fatalf("agent: want one container port named api, got %+v", c.Ports)
	}
	want := map[string]string{
		"prometheus.io/scrape": "true",
		"prometheus.io/scheme": "https",
		"prometheus.io/port":   strconv.Itoa(int(c.Ports[0].ContainerPort)),
		"prometheus.io/path":   "/metrics",
	}
	for k, v := range want {
		if ann[k] != v {
			t.Errorf("agent pod annotation %s = %q, want %q", k, ann[k], v)
		}
	}
}

// checkPodMonitor holds the PodMonitor to the agent pods: it selects them,
// scrapes the API port by name, and keeps the per-port series' pod label.
func checkPodMonitor(t *testing.T, objs []*unstructured.Unstructured, ds *appsv1.DaemonSet) {
	t.Helper()
	var pm struct {
		Spec struct {
			Selector            metav1.LabelSelector `json:"selector"`
			PodMetricsEndpoints []struct {
				Port        string `json:"port"`
				Path        string `json:"path"`
				Relabelings []struct {
					Action string `json:"action"`
					Regex  string `json:"regex"`
				} `json:"relabelings"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	find(t, objs, "PodMonitor", "nsint-agent", &pm)
	sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("PodMonitor selector %v does not select the agent pods %v", sel, ds.Spec.Template.Labels)
	}
	if len(pm.Spec.PodMetricsEndpoints) != 1 {
		t.Fatalf("PodMonitor: want one endpoint, got %+v", pm.Spec.PodMetricsEndpoints)
	}
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Port != ds.Spec.Template.Spec.Containers[0].Ports[0].Name || ep.Path != "/metrics" {
		t.Errorf("PodMonitor endpoint %+v, want the agent's port %q and /metrics", ep, ds.Spec.Template.Spec.Containers[0].Ports[0].Name)
	}
	dropsPod := false
	for _, r := range ep.Relabelings {
		dropsPod = dropsPod || (r.Action == "labeldrop" && r.Regex == "pod")
	}
	if !dropsPod {
		t.Error("PodMonitor keeps the target's pod label: the per-port series' pod would become exported_pod")
	}
}

// checkSCC holds the SecurityContextConstraints to what the DaemonSet uses.
func checkSCC(t *testing.T, objs []*unstructured.Unstructured, ds *appsv1.DaemonSet) {
	t.Helper()
	var scc struct {
		metav1.TypeMeta          `json:",inline"`
		metav1.ObjectMeta        `json:"metadata"`
		AllowPrivilegedContainer bool     `json:"allowPrivilegedContainer"`
		AllowHostNetwork         bool     `json:"allowHostNetwork"`
		AllowHostDirVolumePlugin bool     `json:"allowHostDirVolumePlugin"`
		AllowHostPID             bool     `json:"allowHostPID"`
		AllowHostIPC             bool     `json:"allowHostIPC"`
		ReadOnlyRootFilesystem   bool     `json:"readOnlyRootFilesystem"`
		AllowedCapabilities      []string `json:"allowedCapabilities"`
		Users                    []string `json:"users"`
	}
	find(t, objs, "SecurityContextConstraints", "nsint-agent", &scc)
	caps := slices.Clone(scc.AllowedCapabilities)
	slices.Sort(caps)
	if scc.AllowPrivilegedContainer || scc.AllowHostPID || scc.AllowHostIPC || !scc.AllowHostNetwork ||
		!scc.AllowHostDirVolumePlugin || !scc.ReadOnlyRootFilesystem || !slices.Equal(caps, agentCapabilities) {
		t.Errorf("SCC grants more or less than the DaemonSet uses: %+v", scc)
	}
	sa := "system:serviceaccount:" + ds.Namespace + ":" + ds.Spec.Template.Spec.ServiceAccountName
	if !slices.Equal(scc.Users, []string{sa}) {
		t.Errorf("SCC users %v, want exactly [%s]", scc.Users, sa)
	}
	if se := ds.Spec.Template.Spec.Containers[0].SecurityContext.SELinuxOptions; se == nil || se.Type != "spc_t" {
		t.Errorf("openshift agent: want SELinux type spc_t, got %+v", se)
	}
}

// TestManifestsApplyToAServer applies every rendered object by server-side dry
// run (strict field validation) to a real kube-apiserver with the
// NetworkAttachmentDefinition CRD and our minimal OpenShift CRDs installed.
// Namespaces are created for real first, since a dry-run object cannot live in
// a namespace that does not exist.
func TestManifestsApplyToAServer(t *testing.T) {
	root := k8stest.RepoRoot(t)
	env := k8stest.Start(t, k8stest.CRDDir(t), filepath.Join(root, "deploy", "overlays", "kind", "network-attachment-definition-crd.yaml"))
	ctx := t.Context()
	applier := k8stest.NewApplier(t, env.Admin)
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			namespaces := map[string]bool{}
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					namespaces[o.GetName()] = true
				} else if ns := o.GetNamespace(); ns != "" {
					namespaces[ns] = true
				}
			}
			for ns := range namespaces {
				createNamespace(ctx, t, env, ns)
			}
			for _, o := range objs {
				if err := applier.Apply(ctx, o, true); err != nil {
					t.Errorf("server-side dry run: %v", err)
				}
			}
			t.Logf("%d objects admitted by server-side dry run", len(objs))
		})
	}
	// A broken manifest must fail: the check is not vacuous.
	bad := render(t, "base")[0].DeepCopy()
	bad.Object["spec"] = map[string]any{"noSuchField": true}
	if err := applier.Apply(ctx, bad, true); err == nil {
		t.Errorf("a %s with an unknown field was admitted", bad.GetKind())
	}
}

func createNamespace(ctx context.Context, t *testing.T, env *k8stest.Env, name string) {
	t.Helper()
	_, err := env.Kube.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return
	}
	if _, err := env.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

// checkSharded holds the sharded-collectors component to its design: several
// collector replicas, a headless Service of only the ready ones whose ports
// and selector reach them, and agents configured (validly) to choose one
// replica through that name, with the rest of their configuration as in the
// base.
func checkSharded(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment, ds *appsv1.DaemonSet) {
	t.Helper()
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("collector replicas %v, want at least 2", dep.Spec.Replicas)
	}
	var svc corev1.Service
	find(t, objs, "Service", "nsint-collector-replicas", &svc)
	if svc.Namespace != dep.Namespace {
		t.Errorf("replicas Service in namespace %q, the collector in %q", svc.Namespace, dep.Namespace)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.PublishNotReadyAddresses {
		t.Errorf("replicas Service: clusterIP %q publishNotReadyAddresses %v, want headless and ready replicas only",
			svc.Spec.ClusterIP, svc.Spec.PublishNotReadyAddresses)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("replicas Service selector %v does not select the collector pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
	}
	var udp bool
	for _, p := range svc.Spec.Ports {
		udp = udp || (p.Protocol == corev1.ProtocolUDP && p.Port == 32766 && p.TargetPort.String() == "reports")
	}
	if !udp {
		t.Errorf("replicas Service lacks UDP 32766 to the reports port: %+v", svc.Spec.Ports)
	}

	var cm, baseCM corev1.ConfigMap
	find(t, objs, "ConfigMap", "nsint-agent", &cm)
	find(t, render(t, "base"), "ConfigMap", "nsint-agent", &baseCM)
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(file, []byte(cm.Data["agent.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file as the DaemonSet's agent reads it: with its other flags (the
	// API's certificate among them).
	args := []string{"--config", file, "--node-name", "node-a"}
	for _, a := range ds.Spec.Template.Spec.Containers[0].Args {
		if !strings.HasPrefix(a, "--config") {
			args = append(args, a)
		}
	}
	cfg, err := config.Parse(args, nil, io.Discard)
	if err != nil {
		t.Fatalf("sharded agent.yaml: %v", err)
	}
	if cfg.CollectorReplicas != "nsint-collector-replicas.nsint.svc:32766" || len(cfg.Collectors) != 0 {
		t.Errorf("agent collectors %v, replicas %q: want only the replicas' Service", cfg.Collectors, cfg.CollectorReplicas)
	}
	// The component repeats the base's agent.yaml: apart from the
	// collector keys, the two must not drift.
	var sharded, base map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["agent.yaml"]), &sharded); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(baseCM.Data["agent.yaml"]), &base); err != nil {
		t.Fatal(err)
	}
	for _, m := range []map[string]any{sharded, base} {
		delete(m, "collector")
		delete(m, "collector-replicas")
		delete(m, "collector-refresh")
	}
	if !reflect.DeepEqual(sharded, base) {
		t.Errorf("sharded agent.yaml drifted from the base's:\n%v\nbase:\n%v", sharded, base)
	}
	if cm.Data["watchlist.yaml"] != baseCM.Data["watchlist.yaml"] {
		t.Error("the sharded overlay lost the base's watchlist.yaml")
	}
}
