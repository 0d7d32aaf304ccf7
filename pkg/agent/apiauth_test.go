package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/nsint/nsint/internal/certtest"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
)

// With --api-auth kubernetes the agent serves HTTPS and only to callers a
// real kube-apiserver authenticates and authorizes: the collector's
// service account reads everything, the monitoring stack's only /metrics
// (not the topology, though every authenticated user may get the API
// server's own /api/*), others get 401 or 403; /healthz and /readyz stay
// open and say nothing more than ok / not ready.
func TestAPIKubernetesAuth(t *testing.T) {
	netnstest.RequireRoot(t)
	env := k8stest.Start(t)
	env.ServiceAccountToken(t, "nsint", "nsint-agent")
	env.BindClusterRole(t, "system:auth-delegator", nil, "nsint", "nsint-agent")
	kubeconfig := k8stest.WriteKubeconfig(t, k8stest.ServiceAccountConfig(env.Admin, "nsint", "nsint-agent"))
	collector := env.ServiceAccountToken(t, "nsint", "nsint-collector")
	env.BindClusterRole(t, "nsint-agent-reader", []rbacv1.PolicyRule{{Verbs: []string{"get"},
		NonResourceURLs: []string{api.AuthzPath("/api/v1/topology"), api.AuthzPath("/api/v1/namespaces"), "/metrics"}}},
		"nsint", "nsint-collector")
	prometheus := env.ServiceAccountToken(t, "monitoring", "prometheus")
	env.BindClusterRole(t, "nsint-metrics-reader", []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}},
		"monitoring", "prometheus")
	nobody := env.ServiceAccountToken(t, "team", "app")

	ca, err := certtest.NewCA("agent test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(t.TempDir(), "agent", "nsint-agent", []string{"nsint-agent.nsint.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}

	dir := netnstest.Dir(t)
	var stopping struct {
		code int
		body string
	}
	var ta *testAgent
	get := func(path, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, "https://"+ta.apiAddr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Errorf("GET %s: %v", path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	s := seams{stopping: func(*Agent) { stopping.code, stopping.body = get("/readyz", "") }}
	ta = startAgent(t, dir, s, "--api-auth", "kubernetes", "--kubeconfig", kubeconfig,
		"--api-tls-cert", certFile, "--api-tls-key", keyFile, "--api-auth-cache-ttl", "2s")
	ta.waitReady(t)

	for _, c := range []struct {
		path, who, token string
		want             int
	}{
		{"/api/v1/topology", "no token", "", http.StatusUnauthorized},
		{"/api/v1/topology", "a garbage token", "garbage", http.StatusUnauthorized},
		{"/metrics", "no token", "", http.StatusUnauthorized},
		{"/api/v1/topology", "the collector", collector, http.StatusOK},
		{"/api/v1/namespaces", "the collector", collector, http.StatusOK},
		{"/metrics", "the collector", collector, http.StatusOK},
		{"/metrics", "prometheus", prometheus, http.StatusOK},
		{"/api/v1/topology", "prometheus", prometheus, http.StatusForbidden},
		{"/api/v1/namespaces", "prometheus", prometheus, http.StatusForbidden},
		{"/api/v1/topology", "an app", nobody, http.StatusForbidden},
		{"/metrics", "an app", nobody, http.StatusForbidden},
		{"/healthz", "no token", "", http.StatusOK},
		{"/readyz", "no token", "", http.StatusOK},
	} {
		if code, body := get(c.path, c.token); code != c.want {
			t.Errorf("GET %s by %s: %d %q, want %d", c.path, c.who, code, body, c.want)
		}
	}
	_, body := get("/api/v1/topology", collector)
	var topo api.Topology
	if err := json.Unmarshal([]byte(body), &topo); err != nil || topo.Node != "agent-test" {
		t.Errorf("topology for the collector: %v, node %q", err, topo.Node)
	}
	_, metrics := get("/metrics", prometheus)
	for _, want := range []string{`nsint_api_requests_denied_total{code="401"} 3`, `nsint_api_requests_denied_total{code="403"} 4`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Plain HTTP reaches nothing.
	if resp, err := http.Get("http://" + ta.apiAddr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("plain HTTP served /healthz")
		}
	}

	if err := ta.stop(t); err != nil {
		t.Fatal(err)
	}
	if stopping.code != http.StatusServiceUnavailable || stopping.body != "not ready\n" {
		t.Errorf("/readyz while stopping: %d %q, want 503 \"not ready\\n\" (no reason)", stopping.code, stopping.body)
	}
}

// A certificate that does not load stops the agent before anything is
// loaded, with an error naming the flag and the file.
func TestAPICertificateErrorNamesFlag(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "missing.crt")
	cfg, err := config.Parse([]string{"--node-name", "n", "--kubernetes", "off", "--api-tls-cert", cert,
		"--api-tls-key", filepath.Join(dir, "missing.key")}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	err = run(context.Background(), cfg, slog.New(slog.DiscardHandler), seams{})
	if err == nil || !strings.Contains(err.Error(), "--api-tls-cert "+cert) {
		t.Fatalf("error %v, want one naming --api-tls-cert %s", err, cert)
	}
}
