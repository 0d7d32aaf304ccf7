package deploy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
)

// allowedRules is every permission our ClusterRoles and Roles may grant, by
// role name: "group/resource verb" for API resources (core group empty) and
// "url verb" for non-resource URLs. A rule of ours that grants anything not
// listed here (a new verb, resource, group, URL or a wildcard), or a role not
// listed, fails TestRBACAllowList: widening the rights is a decision made here.
var allowedRules = map[string][]string{
	// Read the pods of its node and NetworkAttachmentDefinitions, for names.
	"nsint-agent": {
		"/pods get", "/pods list", "/pods watch",
		"k8s.cni.cncf.io/network-attachment-definitions get",
		"k8s.cni.cncf.io/network-attachment-definitions list",
		"k8s.cni.cncf.io/network-attachment-definitions watch",
	},
	// Who calls the API, and may they (TokenReview, SubjectAccessReview).
	"nsint-auth-delegator": {
		"authentication.k8s.io/tokenreviews create",
		"authorization.k8s.io/subjectaccessreviews create",
	},
	// The agents' API paths, for the collector (as the agent asks about
	// them: /nsint-agent/api/..., out of the API server's /api/* that every
	// authenticated user may get).
	"nsint-agent-reader": {"/nsint-agent/api/v1/topology get", "/nsint-agent/api/v1/namespaces get", "/metrics get"},
	// /metrics, for the monitoring stack.
	"nsint-metrics-reader": {"/metrics get"},
	// A team's view of its namespaces' flows: bound per namespace by RoleBinding.
	"nsint-flows-viewer": {"/pods get"},
}

// allowedBindings is every binding of ours: role it grants -> the
// ServiceAccounts (namespace/name) it grants it to.
var allowedBindings = map[string]struct {
	role     string
	subjects []string
}{
	"nsint-agent":          {"nsint-agent", []string{"nsint/nsint-agent"}},
	"nsint-auth-delegator": {"nsint-auth-delegator", []string{"nsint/nsint-agent", "nsint/nsint-collector"}},
	"nsint-agent-reader":   {"nsint-agent-reader", []string{"nsint/nsint-collector"}},
	"nsint-metrics-reader": {"nsint-metrics-reader", []string{"nsint/nsint-monitoring"}},
}

// ruleGrants lists what one rule grants in allowedRules' notation.
func ruleGrants(r rbacv1.PolicyRule) []string {
	var out []string
	for _, verb := range r.Verbs {
		for _, u := range r.NonResourceURLs {
			out = append(out, u+" "+verb)
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				out = append(out, g+"/"+res+" "+verb)
			}
		}
	}
	return out
}

// rbacProblems holds the roles and bindings among objs (ours; third-party
// components an overlay installs under their own names are left out) to
// allowedRules and allowedBindings, and returns every departure.
func rbacProblems(objs []*unstructured.Unstructured) []string {
	var problems []string
	for _, o := range objs {
		if thirdParty(o) {
			continue
		}
		id := o.GetKind() + " " + o.GetName()
		switch o.GetKind() {
		case "ClusterRole", "Role":
			var role rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", id, err))
				continue
			}
			allowed, ok := allowedRules[role.Name]
			if !ok {
				problems = append(problems, id+": not in the allow-list")
				continue
			}
			if role.AggregationRule != nil {
				problems = append(problems, id+": aggregates other roles")
			}
			for i, r := range role.Rules {
				grants := ruleGrants(r)
				if len(grants) == 0 {
					problems = append(problems, fmt.Sprintf("%s rule %d grants nothing: %+v", id, i, r))
				}
				for _, g := range grants {
					if !slices.Contains(allowed, g) {
						problems = append(problems, fmt.Sprintf("%s rule %d grants %q, beyond the allow-list", id, i, g))
					}
				}
			}
		case "ClusterRoleBinding", "RoleBinding":
			var b rbacv1.ClusterRoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %v", id, err))
				continue
			}
			want, ok := allowedBindings[b.Name]
			if !ok {
				problems = append(problems, id+": not in the allow-list")
				continue
			}
			if b.RoleRef.Name != want.role || b.RoleRef.Kind != "ClusterRole" {
				problems = append(problems, fmt.Sprintf("%s grants %s %s, want ClusterRole %s", id, b.RoleRef.Kind, b.RoleRef.Name, want.role))
			}
			var subjects []string
			for _, s := range b.Subjects {
				if s.Kind != rbacv1.ServiceAccountKind {
					problems = append(problems, fmt.Sprintf("%s: subject %s %s is not a ServiceAccount", id, s.Kind, s.Name))
				}
				subjects = append(subjects, s.Namespace+"/"+s.Name)
			}
			slices.Sort(subjects)
			if !slices.Equal(subjects, want.subjects) {
				problems = append(problems, fmt.Sprintf("%s binds %v, want %v", id, subjects, want.subjects))
			}
		}
	}
	return problems
}

// TestRBACAllowList fails when any rule of our roles widens beyond
// allowedRules or any binding beyond allowedBindings, in every overlay; and
// shows that it would: a widened copy of each role is refused.
func TestRBACAllowList(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			for _, p := range rbacProblems(objs) {
				t.Error(p)
			}
			roles := 0
			for _, o := range objs {
				if thirdParty(o) || o.GetKind() != "ClusterRole" {
					continue
				}
				roles++
				for _, widen := range []func(r map[string]any){
					func(r map[string]any) { r["verbs"] = append(r["verbs"].([]any), "delete") },
					func(r map[string]any) { r["verbs"] = []any{"*"} },
					func(r map[string]any) {
						if _, ok := r["resources"]; ok {
							r["resources"] = append(r["resources"].([]any), "secrets")
						} else {
							r["nonResourceURLs"] = append(r["nonResourceURLs"].([]any), "/debug/pprof")
						}
					},
				} {
					wide := o.DeepCopy()
					rules, _, _ := unstructured.NestedSlice(wide.Object, "rules")
					widen(rules[0].(map[string]any))
					if err := unstructured.SetNestedSlice(wide.Object, rules, "rules"); err != nil {
						t.Fatal(err)
					}
					if len(rbacProblems([]*unstructured.Unstructured{wide})) == 0 {
						t.Errorf("ClusterRole %s widened (%v) passes the allow-list", o.GetName(), rules[0])
					}
				}
			}
			if roles < len(allowedRules) {
				t.Errorf("%d roles of ours rendered, want the %d of the allow-list", roles, len(allowedRules))
			}
		})
	}
}

// volumeFor returns the volume that holds file in c, and the path of file
// inside that volume.
func volumeFor(spec corev1.PodSpec, c corev1.Container, file string) (*corev1.Volume, string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for i := range spec.Volumes {
			if spec.Volumes[i].Name == m.Name {
				return &spec.Volumes[i], rel
			}
		}
	}
	return nil, ""
}

// flagValues returns the --name=value arguments of args.
func flagValues(args []string) map[string]string {
	out := map[string]string{}
	for _, a := range args {
		if name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "="); ok && strings.HasPrefix(a, "--") {
			out[name] = value
		}
	}
	return out
}

// secretFile checks that flag names a file of Secret secret (key tls.crt
// or tls.key, as the issuers write them).
func secretFile(t *testing.T, who string, spec corev1.PodSpec, c corev1.Container, flag, secret, key string) {
	t.Helper()
	file := flagValues(c.Args)[flag]
	v, rel := volumeFor(spec, c, file)
	if v == nil || v.Secret == nil || v.Secret.SecretName != secret || rel != key {
		t.Errorf("%s: --%s=%q is not key %s of Secret %s mounted (volume %+v)", who, flag, file, key, secret, v)
	}
}

func httpsProbes(t *testing.T, who string, c corev1.Container) {
	t.Helper()
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("%s: probe %+v is not HTTPS", who, p)
		}
	}
}

// nodeNetworks is the node network each overlay admits reports from.
var nodeNetworks = map[string]string{
	"base": "10.0.0.0/16", "overlays/sharded": "10.0.0.0/16", "overlays/openshift": "10.0.0.0/16",
	"overlays/kind": "172.18.0.0/16", "overlays/local": "198.18.200.0/30",
}

// TestSecurityWiring checks in every overlay that the agents and the
// collector serve HTTPS with their own certificates and check tokens, that
// the collector reaches the agents over verified TLS with a projected token
// of its own, and that only the node network may send reports.
func TestSecurityWiring(t *testing.T) {
	for _, dir := range overlays {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			var ds appsv1.DaemonSet
			find(t, objs, "DaemonSet", "nsint-agent", &ds)
			agent := ds.Spec.Template.Spec.Containers[0]
			af := flagValues(agent.Args)
			if af["api-auth"] != "kubernetes" {
				t.Errorf("agent: --api-auth=%q, want kubernetes", af["api-auth"])
			}
			secretFile(t, "agent", ds.Spec.Template.Spec, agent, "api-tls-cert", "nsint-agent-tls", "tls.crt")
			secretFile(t, "agent", ds.Spec.Template.Spec, agent, "api-tls-key", "nsint-agent-tls", "tls.key")
			httpsProbes(t, "agent", agent)

			var agentSvc corev1.Service
			find(t, objs, "Service", "nsint-agent", &agentSvc)
			if agentSvc.Spec.ClusterIP != corev1.ClusterIPNone || len(agentSvc.Spec.Selector) == 0 ||
				!labels.SelectorFromSet(agentSvc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
				t.Errorf("agent Service: want headless and selecting the agent pods, got %+v", agentSvc.Spec)
			}
			if len(agentSvc.Spec.Ports) != 1 || agentSvc.Spec.Ports[0].Port != agent.Ports[0].ContainerPort ||
				agentSvc.Spec.Ports[0].TargetPort.String() != agent.Ports[0].Name {
				t.Errorf("agent Service ports %+v, want the API port %+v", agentSvc.Spec.Ports, agent.Ports)
			}
			agentName := agentSvc.Name + "." + agentSvc.Namespace + ".svc"

			var dep appsv1.Deployment
			find(t, objs, "Deployment", "nsint-collector", &dep)
			spec := dep.Spec.Template.Spec
			coll := spec.Containers[0]
			cf := flagValues(coll.Args)
			if cf["api-auth"] != "kubernetes" {
				t.Errorf("collector: --api-auth=%q, want kubernetes", cf["api-auth"])
			}
			secretFile(t, "collector", spec, coll, "api-tls-cert", "nsint-collector-tls", "tls.crt")
			secretFile(t, "collector", spec, coll, "api-tls-key", "nsint-collector-tls", "tls.key")
			httpsProbes(t, "collector", coll)
			if cf["agent-tls-server-name"] != agentName {
				t.Errorf("collector: --agent-tls-server-name=%q, want the agents' Service name %s", cf["agent-tls-server-name"], agentName)
			}
			checkAgentCA(t, dir, spec, coll, cf["agent-tls-ca"])

			// The token: projected, the default audience (the agents'
			// TokenReview accepts it), never an automounted one.
			v, rel := volumeFor(spec, coll, cf["agent-token-file"])
			var token *corev1.ServiceAccountTokenProjection
			if v != nil && v.Projected != nil {
				for _, s := range v.Projected.Sources {
					if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == rel {
						token = s.ServiceAccountToken
					}
				}
			}
			if token == nil || token.Audience != "" || token.ExpirationSeconds == nil || *token.ExpirationSeconds > 3600 {
				t.Errorf("collector: --agent-token-file=%q is not a projected ServiceAccount token of the default audience, valid at most an hour (volume %+v)",
					cf["agent-token-file"], v)
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Error("collector pod: automountServiceAccountToken is not false")
			}
			var sa corev1.ServiceAccount
			find(t, objs, "ServiceAccount", spec.ServiceAccountName, &sa)
			if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
				t.Errorf("ServiceAccount %s: automountServiceAccountToken is not false", sa.Name)
			}

			checkCollectorPolicy(t, objs, &dep, nodeNetworks[dir], dir == "overlays/openshift")
			switch dir {
			case "overlays/openshift":
				checkServiceCA(t, objs, &ds)
			case "overlays/kind":
				checkCertManager(t, objs, agentName)
			}
		})
	}
}

// checkAgentCA: the CA the collector checks the agents against is ca.crt of
// ConfigMap nsint-ca (OpenShift: the injected service-ca.crt, mapped to
// ca.crt), or in the kind overlay only the ca.crt item of cert-manager's CA
// Secret — never a key.
func checkAgentCA(t *testing.T, dir string, spec corev1.PodSpec, c corev1.Container, file string) {
	t.Helper()
	v, rel := volumeFor(spec, c, file)
	if v == nil || rel != "ca.crt" {
		t.Fatalf("collector: --agent-tls-ca=%q is not a mounted ca.crt", file)
	}
	wantKey := map[string]string{"overlays/openshift": "service-ca.crt"}[dir]
	switch {
	case dir == "overlays/kind":
		s := v.Secret
		if s == nil || s.SecretName != "nsint-ca-tls" || len(s.Items) != 1 || s.Items[0].Key != "ca.crt" || s.Items[0].Path != "ca.crt" {
			t.Errorf("kind collector: the agents' CA is not only ca.crt of Secret nsint-ca-tls: %+v", v)
		}
	case v.ConfigMap == nil || v.ConfigMap.Name != "nsint-ca":
		t.Errorf("collector: --agent-tls-ca is not in ConfigMap nsint-ca: %+v", v)
	case wantKey == "" && len(v.ConfigMap.Items) != 0:
		t.Errorf("collector: ConfigMap nsint-ca mounted with items %+v, want key ca.crt as it is", v.ConfigMap.Items)
	case wantKey != "" && (len(v.ConfigMap.Items) != 1 || v.ConfigMap.Items[0].Key != wantKey || v.ConfigMap.Items[0].Path != "ca.crt"):
		t.Errorf("collector: ConfigMap nsint-ca items %+v, want %s as ca.crt", v.ConfigMap.Items, wantKey)
	}
}

// checkCollectorPolicy: UDP 32766 only from the node network (and, on
// OpenShift, host-network pods as OVN-Kubernetes labels their namespaces),
// HTTP from anywhere, nothing else.
func checkCollectorPolicy(t *testing.T, objs []*unstructured.Unstructured, dep *appsv1.Deployment, cidr string, openshift bool) {
	t.Helper()
	var np networkingv1.NetworkPolicy
	find(t, objs, "NetworkPolicy", "nsint-collector", &np)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy selector %v does not select the collector pods (%v)", np.Spec.PodSelector, err)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) {
		t.Errorf("NetworkPolicy types %v, want Ingress", np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 2 {
		t.Fatalf("NetworkPolicy: want a rule for reports and one for HTTP, got %+v", np.Spec.Ingress)
	}
	reports, web := np.Spec.Ingress[0], np.Spec.Ingress[1]
	if len(reports.Ports) != 1 || reports.Ports[0].Protocol == nil || *reports.Ports[0].Protocol != corev1.ProtocolUDP ||
		reports.Ports[0].Port == nil || reports.Ports[0].Port.IntValue() != 32766 {
		t.Errorf("NetworkPolicy reports rule ports %+v, want UDP 32766 only", reports.Ports)
	}
	var blocks []string
	hostNet := false
	for _, f := range reports.From {
		switch {
		case f.IPBlock != nil:
			blocks = append(blocks, f.IPBlock.CIDR)
		case openshift && f.PodSelector == nil && f.NamespaceSelector != nil &&
			len(f.NamespaceSelector.MatchLabels) == 1 && f.NamespaceSelector.MatchLabels["policy-group.network.openshift.io/host-network"] == "":
			hostNet = true
		default:
			t.Errorf("NetworkPolicy reports rule admits %+v", f)
		}
	}
	if !slices.Equal(blocks, []string{cidr}) || openshift != hostNet {
		t.Errorf("NetworkPolicy admits reports from %v (host network %v), want %s (host network %v)", blocks, hostNet, cidr, openshift)
	}
	if p, err := netip.ParsePrefix(cidr); err != nil || p.Bits() < 8 {
		t.Errorf("node network %q: %v", cidr, err)
	}
	if len(web.From) != 0 || len(web.Ports) != 1 || web.Ports[0].Protocol == nil || *web.Ports[0].Protocol != corev1.ProtocolTCP ||
		web.Ports[0].Port == nil || web.Ports[0].Port.IntValue() != 8080 {
		t.Errorf("NetworkPolicy HTTP rule %+v, want TCP 8080 from anywhere and nothing else", web)
	}
}

// checkServiceCA: OpenShift's service CA issues into exactly the Secrets the
// pods mount, injects its CA into nsint-ca, and the PodMonitor scrapes over
// TLS with that CA, the agents' Service name and a token that may read
// /metrics only.
func checkServiceCA(t *testing.T, objs []*unstructured.Unstructured, ds *appsv1.DaemonSet) {
	t.Helper()
	const servingCert = "service.beta.openshift.io/serving-cert-secret-name"
	for svc, secret := range map[string]string{"nsint-agent": "nsint-agent-tls", "nsint-collector": "nsint-collector-tls"} {
		var s corev1.Service
		find(t, objs, "Service", svc, &s)
		if s.Annotations[servingCert] != secret {
			t.Errorf("Service %s: %s = %q, want %s", svc, servingCert, s.Annotations[servingCert], secret)
		}
	}
	var ca corev1.ConfigMap
	find(t, objs, "ConfigMap", "nsint-ca", &ca)
	if ca.Annotations["service.beta.openshift.io/inject-cabundle"] != "true" {
		t.Errorf("ConfigMap nsint-ca: no inject-cabundle annotation: %v", ca.Annotations)
	}
	var pm struct {
		Spec struct {
			PodMetricsEndpoints []struct {
				Scheme    string `json:"scheme"`
				TLSConfig struct {
					ServerName string `json:"serverName"`
					CA         struct {
						ConfigMap corev1.ConfigMapKeySelector `json:"configMap"`
					} `json:"ca"`
				} `json:"tlsConfig"`
				Authorization struct {
					Type        string                   `json:"type"`
					Credentials corev1.SecretKeySelector `json:"credentials"`
				} `json:"authorization"`
			} `json:"podMetricsEndpoints"`
		} `json:"spec"`
	}
	find(t, objs, "PodMonitor", "nsint-agent", &pm)
	ep := pm.Spec.PodMetricsEndpoints[0]
	if ep.Scheme != "https" || ep.TLSConfig.ServerName != "nsint-agent.nsint.svc" ||
		ep.TLSConfig.CA.ConfigMap.Name != "nsint-ca" || ep.TLSConfig.CA.ConfigMap.Key != "service-ca.crt" {
		t.Errorf("PodMonitor TLS %+v, want https, nsint-agent.nsint.svc and the CA of nsint-ca", ep)
	}
	if ep.Authorization.Type != "Bearer" {
		t.Errorf("PodMonitor authorization %+v, want a bearer token", ep.Authorization)
	}
	var tok corev1.Secret
	find(t, objs, "Secret", ep.Authorization.Credentials.Name, &tok)
	account := tok.Annotations[corev1.ServiceAccountNameKey]
	if tok.Type != corev1.SecretTypeServiceAccountToken || ep.Authorization.Credentials.Key != corev1.ServiceAccountTokenKey ||
		!slices.Equal(allowedBindings["nsint-metrics-reader"].subjects, []string{"nsint/" + account}) {
		t.Errorf("PodMonitor token: Secret %s of type %s for %q, want a token of the account bound to nsint-metrics-reader only",
			tok.Name, tok.Type, account)
	}
	for b, want := range allowedBindings {
		if b != "nsint-metrics-reader" && slices.Contains(want.subjects, "nsint/"+account) {
			t.Errorf("the monitoring account %s is bound to %s too", account, b)
		}
	}
	// The SCC allows every volume type the DaemonSet uses.
	var scc struct {
		Volumes []string `json:"volumes"`
	}
	find(t, objs, "SecurityContextConstraints", "nsint-agent", &scc)
	for _, v := range ds.Spec.Template.Spec.Volumes {
		kind := volumeKind(v)
		if !slices.Contains(scc.Volumes, kind) {
			t.Errorf("SCC volumes %v lack %s (volume %s)", scc.Volumes, kind, v.Name)
		}
	}
}

func volumeKind(v corev1.Volume) string {
	switch {
	case v.Secret != nil:
		return "secret"
	case v.ConfigMap != nil:
		return "configMap"
	case v.HostPath != nil:
		return "hostPath"
	case v.EmptyDir != nil:
		return "emptyDir"
	case v.Projected != nil:
		return "projected"
	}
	return "other"
}

// checkCertManager: the kind overlay's Certificates issue the two Secrets the
// pods mount, for the Services' names, from the CA whose certificate the
// collector reads.
func checkCertManager(t *testing.T, objs []*unstructured.Unstructured, agentName string) {
	t.Helper()
	type cert struct {
		Spec struct {
			SecretName string   `json:"secretName"`
			DNSNames   []string `json:"dnsNames"`
			IsCA       bool     `json:"isCA"`
			IssuerRef  struct {
				Name string `json:"name"`
			} `json:"issuerRef"`
		} `json:"spec"`
	}
	for name, dns := range map[string]string{"nsint-agent-tls": agentName, "nsint-collector-tls": "nsint-collector.nsint.svc"} {
		var c cert
		find(t, objs, "Certificate", name, &c)
		if c.Spec.SecretName != name || !slices.Contains(c.Spec.DNSNames, dns) || c.Spec.IssuerRef.Name != "nsint-ca" {
			t.Errorf("Certificate %s: %+v, want Secret %s for %s from Issuer nsint-ca", name, c.Spec, name, dns)
		}
	}
	var ca cert
	find(t, objs, "Certificate", "nsint-ca", &ca)
	if !ca.Spec.IsCA || ca.Spec.SecretName != "nsint-ca-tls" {
		t.Errorf("Certificate nsint-ca: %+v, want a CA in Secret nsint-ca-tls", ca.Spec)
	}
	var issuer struct {
		Spec struct {
			CA struct {
				SecretName string `json:"secretName"`
			} `json:"ca"`
		} `json:"spec"`
	}
	find(t, objs, "Issuer", "nsint-ca", &issuer)
	if issuer.Spec.CA.SecretName != "nsint-ca-tls" {
		t.Errorf("Issuer nsint-ca signs with %q, want nsint-ca-tls", issuer.Spec.CA.SecretName)
	}
}
