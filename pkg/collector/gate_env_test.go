package collector

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nsint/nsint/internal/certtest"
	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
	"github.com/nsint/nsint/pkg/kubeauth"
)

// reviewerEnv starts a kube-apiserver with the collector's service account
// allowed to create reviews, and returns it with a kubeconfig of that
// account.
func reviewerEnv(t *testing.T) (*k8stest.Env, string) {
	t.Helper()
	env := k8stest.Start(t)
	env.ServiceAccountToken(t, "nsint", "nsint-collector")
	env.BindClusterRole(t, "system:auth-delegator", nil, "nsint", "nsint-collector")
	return env, k8stest.WriteKubeconfig(t, k8stest.ServiceAccountConfig(env.Admin, "nsint", "nsint-collector"))
}

func tlsClient(ca *certtest.CA) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
}

// With --api-auth kubernetes the collector serves HTTPS; /healthz and the
// page are open, the API needs an authenticated user (a bearer token, or
// the token an OAuth proxy forwards), /metrics a user allowed to get it.
func TestCollectorGate(t *testing.T) {
	env, kubeconfig := reviewerEnv(t)
	viewer := env.ServiceAccountToken(t, "team-a", "viewer")
	monitoring := env.ServiceAccountToken(t, "monitoring", "prometheus")
	env.BindClusterRole(t, "nsint-metrics-reader", []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}},
		"monitoring", "prometheus")

	ca, err := certtest.NewCA("collector test CA")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.WriteServing(t.TempDir(), "collector", "nsint-collector", nil, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(1)
	cfg.APIAuth, cfg.TLSCert, cfg.TLSKey, cfg.Kubeconfig = APIAuthKubernetes, certFile, keyFile, kubeconfig
	_, _, base := startCollector(t, cfg, false)
	base = "https" + strings.TrimPrefix(base, "http")
	client := tlsClient(ca)
	get := func(path, header, token string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set(header, token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const bearer, forwarded = "Authorization", kubeauth.ForwardedTokenHeader
	for _, c := range []struct {
		path, who, header, token string
		want                     int
	}{
		{"/healthz", "anyone", "", "", http.StatusOK},
		{"/", "anyone", "", "", http.StatusOK},
		{"/app.js", "anyone", "", "", http.StatusOK},
		{"/style.css", "anyone", "", "", http.StatusOK},
		{"/api/v1/flows", "anyone", "", "", http.StatusUnauthorized},
		{"/api/v1/summary", "a garbage token", bearer, "Bearer garbage", http.StatusUnauthorized},
		{"/api/v1/agents", "anyone", "", "", http.StatusUnauthorized},
		{"/no/such/path", "anyone", "", "", http.StatusUnauthorized},
		{"/metrics", "anyone", "", "", http.StatusUnauthorized},
		{"/metrics", "a viewer", bearer, "Bearer " + viewer, http.StatusForbidden},
		{"/metrics", "prometheus", bearer, "Bearer " + monitoring, http.StatusOK},
		{"/api/v1/flows", "a viewer", bearer, "Bearer " + viewer, http.StatusOK},
		{"/api/v1/flows", "a viewer behind an OAuth proxy", forwarded, viewer, http.StatusOK},
	} {
		if code, body := get(c.path, c.header, c.token); code != c.want {
			t.Errorf("GET %s by %s: %d %q, want %d", c.path, c.who, code, body, c.want)
		}
	}
	_, metrics := get("/metrics", bearer, "Bearer "+monitoring)
	for _, want := range []string{
		`nsint_collector_http_requests_denied_total{code="401"} 5`,
		`nsint_collector_http_requests_denied_total{code="403"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(base + "/healthz"); err == nil {
		t.Error("a client without the CA reached the collector")
	}
}

// The Scope of a request is what the user may do in Kubernetes: the pods of
// the namespaces where they may get pods (all, with a cluster-wide grant),
// node-level rows when they may get nodes.
func TestCollectorScopeFromPermissions(t *testing.T) {
	env, kubeconfig := reviewerEnv(t)
	ctx := t.Context()
	teamA := env.ServiceAccountToken(t, "team-a", "dev")
	env.ServiceAccountToken(t, "team-b", "dev")
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
	if _, err := env.Kube.RbacV1().Roles("team-a").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "dev-pod-reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "dev"}}}
	if _, err := env.Kube.RbacV1().RoleBindings("team-a").Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	admin := env.ServiceAccountToken(t, "ops", "admin")
	env.BindClusterRole(t, "test-cluster-viewer", []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods", "nodes"}}},
		"ops", "admin")
	nobody := env.ServiceAccountToken(t, "team-c", "nobody")

	kube, err := kubeauth.NewClient(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	gate := newGate(kube, time.Minute)
	var mu sync.Mutex
	reviews := map[string]int{}
	srv := httptest.NewServer(gate.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := access.FromContext(r.Context())
		fmt.Fprintf(w, "team-a:%v team-b:%v nodes:%v", s.Namespace("team-a"), s.Namespace("team-b"), s.Nodes())
		// Asked twice, reviewed once.
		s.Namespace("team-b")
		if us, ok := s.(*userScope); ok {
			u, _ := kubeauth.UserFrom(r.Context())
			mu.Lock()
			reviews[u.Name] = us.reviews
			mu.Unlock()
		}
	})))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		who, token, want string
		reviews          int
	}{
		{"system:serviceaccount:team-a:dev", teamA, "team-a:true team-b:false nodes:false", 4},
		{"system:serviceaccount:ops:admin", admin, "team-a:true team-b:true nodes:true", 2},
		{"system:serviceaccount:team-c:nobody", nobody, "team-a:false team-b:false nodes:false", 4},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/flows", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != c.want {
			t.Errorf("%s: %d %q, want %q", c.who, resp.StatusCode, b, c.want)
		}
		mu.Lock()
		if reviews[c.who] != c.reviews {
			t.Errorf("%s: %d reviews, want %d (each question once per request)", c.who, reviews[c.who], c.reviews)
		}
		mu.Unlock()
	}
}

// tlsAgent serves a topology over TLS with a certificate that names only
// nsint-agent.nsint.svc (agents are reached by IP), and only to the bearer
// token of the file it is given.
type tlsAgent struct {
	port      int
	mu        sync.Mutex
	tokenFile string
	seen      []string // "ok" or "bad" for each request
}

func startTLSAgent(t *testing.T, ca *certtest.CA, tokenFile string, doc topology.Document) *tlsAgent {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := ca.WriteServing(dir, "agent", "nsint-agent", []string{DefaultAgentServerName}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := kubeauth.LoadCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	a := &tlsAgent{tokenFile: tokenFile}
	fake := newFakeAgent(t, doc)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want, err := os.ReadFile(a.tokenFile)
		if err != nil {
			t.Error(err)
		}
		ok := r.Header.Get("Authorization") == "Bearer "+strings.TrimSpace(string(want))
		a.mu.Lock()
		a.seen = append(a.seen, map[bool]string{true: "ok", false: "bad"}[ok])
		a.mu.Unlock()
		if !ok {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		fake.srv.Config.Handler.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(tls.NewListener(ln, cf.TLSConfig()))
	t.Cleanup(func() { srv.Close() })
	a.port = ln.Addr().(*net.TCPAddr).Port
	return a
}

func (a *tlsAgent) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// The collector asks agents over https, verifying them with --agent-tls-ca
// for --agent-tls-server-name, and sends the token of --agent-token-file,
// read again after it changed.
func TestCollectorReachesHTTPSAgent(t *testing.T) {
	ca, err := certtest.NewCA("agents CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, tokenFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("first-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const sw = 0x0a000001
	agent := startTLSAgent(t, ca, tokenFile, twoPodTopology(sw))

	cfg := testConfig(agent.port)
	cfg.AgentTLSCA, cfg.AgentTokenFile = caFile, tokenFile
	c, _, _ := startCollector(t, cfg, false)
	c.Resolver().Request(netip.MustParseAddr("127.0.0.1"), sw)
	eventually(t, "the agent's topology is fetched over https", func() bool {
		return c.Resolver().Lookup(topology.Key{SwitchID: sw, Port: 5}) != nil
	})
	if got := agent.requests(); len(got) == 0 || got[0] != "ok" {
		t.Fatalf("agent saw %v, want the token", got)
	}
	if as := c.Resolver().Agents(); len(as) != 1 || as[0].URL != fmt.Sprintf("https://127.0.0.1:%d", agent.port) {
		t.Errorf("agents %+v", as)
	}

	// The kubelet rotates the projected token: the next requests carry
	// the new one.
	time.Sleep(10 * time.Millisecond) // a new mtime even on coarse clocks
	if err := os.WriteFile(tokenFile+".new", []byte("second-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tokenFile+".new", tokenFile); err != nil {
		t.Fatal(err)
	}
	client, err := agentClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", agent.port)
	if _, err := topology.Fetch(context.Background(), client, base); err != nil {
		t.Fatalf("fetch after the token rotated: %v", err)
	}
	if got := agent.requests(); got[len(got)-1] != "ok" {
		t.Errorf("after rotation the agent saw %v", got)
	}

	// Without the server name override the certificate (no IP in it) does
	// not verify; with another CA nothing does.
	noName := cfg
	noName.AgentTLSServerName = ""
	if client, err = agentClient(noName); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Fetch(context.Background(), client, base); err == nil {
		t.Error("verified an agent certificate for a name it lacks")
	}
	other, err := certtest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	otherFile := filepath.Join(dir, "other.crt")
	if err := other.WriteCA(otherFile); err != nil {
		t.Fatal(err)
	}
	otherCA := cfg
	otherCA.AgentTLSCA = otherFile
	if client, err = agentClient(otherCA); err != nil {
		t.Fatal(err)
	}
	if _, err := topology.Fetch(context.Background(), client, base); err == nil {
		t.Error("verified an agent against another CA")
	}
	// The token never goes over plain HTTP.
	var sawToken bool
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawToken = r.Header.Get("Authorization") != ""
	}))
	t.Cleanup(plain.Close)
	if client, err = agentClient(cfg); err != nil {
		t.Fatal(err)
	}
	topology.Fetch(context.Background(), client, plain.URL)
	if sawToken {
		t.Error("the agent token was sent over plain HTTP")
	}
}

// Configuration errors name the flag.
func TestAuthConfigErrors(t *testing.T) {
	for _, c := range []struct {
		set  func(*Config)
		want string
	}{
		{func(c *Config) { c.APIAuth = "kubernetes" }, `invalid api-tls-cert ""`},
		{func(c *Config) { c.APIAuth = "oauth" }, `invalid api-auth "oauth"`},
		{func(c *Config) { c.TLSCert = "x" }, `invalid api-tls-key ""`},
		{func(c *Config) { c.AuthCacheTTL = -time.Second }, `invalid api-auth-cache-ttl "-1s"`},
		{func(c *Config) { c.AgentTLSCA = "/nonexistent/ca.crt" }, `invalid agent-tls-ca "/nonexistent/ca.crt"`},
		{func(c *Config) { c.AgentTokenFile = "/nonexistent/token" }, `invalid agent-token-file "/nonexistent/token"`},
		{func(c *Config) { c.TLSCert, c.TLSKey = "/nonexistent/c", "/nonexistent/k" }, `invalid api-tls-cert "/nonexistent/c"`},
	} {
		cfg := testConfig(1)
		c.set(&cfg)
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want %s", err, c.want)
		}
	}
}
