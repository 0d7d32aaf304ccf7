package kubeauth_test

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nsint/nsint/internal/certtest"
	"github.com/nsint/nsint/pkg/k8s/k8stest"
	"github.com/nsint/nsint/pkg/kubeauth"
)

// server is a TLS server behind a Gate that asks a real kube-apiserver, as
// a service account allowed only to create reviews (system:auth-delegator).
type server struct {
	env    *k8stest.Env
	gate   *kubeauth.Gate
	url    string
	client *http.Client // trusts the server's CA
	ca     *certtest.CA
	cert   string // certificate and key files the server serves
	key    string
}

func startServer(t *testing.T, ttl time.Duration) *server {
	t.Helper()
	env := k8stest.Start(t)
	env.ServiceAccountToken(t, "nsint", "reviewer")
	env.BindClusterRole(t, "system:auth-delegator", nil, "nsint", "reviewer")
	kube, err := kubernetes.NewForConfig(k8stest.ServiceAccountConfig(env.Admin, "nsint", "reviewer"))
	if err != nil {
		t.Fatal(err)
	}
	gate := &kubeauth.Gate{
		Authn: kubeauth.NewAuthenticator(kube, ttl),
		Authz: kubeauth.NewAuthorizer(kube, ttl),
		Needs: func(r *http.Request) kubeauth.Need {
			if r.URL.Path == "/healthz" {
				return kubeauth.Open()
			}
			return kubeauth.GetPath(r)
		},
	}
	mux := http.NewServeMux()
	for _, p := range []string{"/topology", "/metrics", "/healthz"} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			who := "nobody"
			if u, ok := kubeauth.UserFrom(r.Context()); ok {
				who = u.Name
			}
			io.WriteString(w, p+" for "+who)
		})
	}
	ca, err := certtest.NewCA("kubeauth test CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := ca.WriteServing(dir, "server", "nsint-agent", []string{"nsint-agent.nsint.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := kubeauth.LoadCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, cf, gate.Wrap(mux))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	return &server{env: env, gate: gate, url: url, client: client, ca: ca, cert: certFile, key: keyFile}
}

// get returns the status and body of GET path with token ("" for none).
func (s *server) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var (
	topologyRule = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/topology"}}}
	metricsRule  = []rbacv1.PolicyRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/metrics"}}}
)

// Who may read what (paths of our own: under /api/, every authenticated user
// may get what the API server's system:discovery role grants): 401 without a token or with one the API server does
// not know, 403 for a user without the path, 200 with it; health is open.
// No answer carries a token.
func TestGateWithRealAPIServer(t *testing.T) {
	s := startServer(t, 30*time.Second)
	topoToken := s.env.ServiceAccountToken(t, "team", "topology-reader")
	s.env.BindClusterRole(t, "test-topology-reader", topologyRule, "team", "topology-reader")
	metricsToken := s.env.ServiceAccountToken(t, "monitoring", "prometheus")
	s.env.BindClusterRole(t, "test-metrics-reader", metricsRule, "monitoring", "prometheus")
	nobody := s.env.ServiceAccountToken(t, "team", "nobody")

	for _, c := range []struct {
		name, path, token string
		want              int
	}{
		{"no token", "/topology", "", http.StatusUnauthorized},
		{"garbage token", "/topology", "not-a-token", http.StatusUnauthorized},
		{"no token on metrics", "/metrics", "", http.StatusUnauthorized},
		{"topology reader reads topology", "/topology", topoToken, http.StatusOK},
		{"topology reader on metrics", "/metrics", topoToken, http.StatusForbidden},
		{"metrics reader reads metrics", "/metrics", metricsToken, http.StatusOK},
		{"metrics reader on topology", "/topology", metricsToken, http.StatusForbidden},
		{"no permissions", "/metrics", nobody, http.StatusForbidden},
		{"health without token", "/healthz", "", http.StatusOK},
		{"health with garbage token", "/healthz", "not-a-token", http.StatusOK},
	} {
		code, body := s.get(t, c.path, c.token)
		if code != c.want {
			t.Errorf("%s: GET %s = %d %q, want %d", c.name, c.path, code, body, c.want)
		}
		if c.token != "" && strings.Contains(body, c.token) {
			t.Errorf("%s: the answer carries the token", c.name)
		}
	}
	if _, body := s.get(t, "/topology", topoToken); body != "/topology for system:serviceaccount:team:topology-reader" {
		t.Errorf("handler saw %q", body)
	}
	if _, body := s.get(t, "/healthz", ""); body != "/healthz for nobody" {
		t.Errorf("health handler saw %q", body)
	}
	// X-Forwarded-Access-Token only when asked for.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, s.url+"/topology", nil)
	req.Header.Set(kubeauth.ForwardedTokenHeader, topoToken)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forwarded token without ForwardedToken: %d, want 401", resp.StatusCode)
	}
	d := s.gate.Denied()
	if d[401] != 4 || d[403] != 3 || d[503] != 0 {
		t.Errorf("denied = %v, want 401:4 403:3 503:0", d)
	}
}

// TLS: a client that does not trust the CA fails the handshake; one that
// does, naming the server by the name in the certificate, succeeds.
func TestGateTLS(t *testing.T) {
	s := startServer(t, time.Second)
	if _, err := (&http.Client{Timeout: 5 * time.Second}).Get(s.url + "/healthz"); err == nil {
		t.Error("a client without the CA reached the server")
	}
	other, err := certtest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: other.Pool()}}}
	if _, err := c.Get(s.url + "/healthz"); err == nil {
		t.Error("a client trusting another CA reached the server")
	}
	c = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: s.ca.Pool(), ServerName: "nsint-agent.nsint.svc"}}}
	resp, err := c.Get(s.url + "/healthz")
	if err != nil {
		t.Fatalf("with the CA and the service name: %v", err)
	}
	resp.Body.Close()
}

// A certificate replaced in its files is the one served from then on.
func TestRotatedCertificateServed(t *testing.T) {
	ca, err := certtest.NewCA("rotation CA")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first, err := ca.Issue("first", []string{"first.example"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Write(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	cf, err := kubeauth.LoadCertFiles(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	url := serveTLS(t, cf, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	served := func() string {
		t.Helper()
		// A new connection each time: the certificate is chosen at the handshake.
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q, want first", cn)
	}
	second, err := ca.Issue("second", []string{"second.example"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Write(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for served() != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the rotated certificate is not served")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ok, failed := cf.Reloads(); ok != 1 || failed != 0 {
		t.Errorf("reloads ok=%d failed=%d, want 1 and 0", ok, failed)
	}
}

// A decision is reused for the TTL: a binding removed is still honoured
// within it and not after it.
func TestDecisionCachedForTTL(t *testing.T) {
	const ttl = 3 * time.Second
	s := startServer(t, ttl)
	token := s.env.ServiceAccountToken(t, "team", "reader")
	binding := s.env.BindClusterRole(t, "test-topology-reader", topologyRule, "team", "reader")
	if code, body := s.get(t, "/topology", token); code != http.StatusOK {
		t.Fatalf("before revoking: %d %q", code, body)
	}
	revoked := time.Now()
	if err := s.env.Kube.RbacV1().ClusterRoleBindings().Delete(t.Context(), binding, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server itself denies within moments (its RBAC cache
	// follows the deletion); the gate still allows from its cache, also
	// well after the API server has caught up.
	for _, at := range []time.Duration{0, ttl / 2} {
		time.Sleep(time.Until(revoked.Add(at)))
		if code, _ := s.get(t, "/topology", token); code != http.StatusOK && time.Since(revoked) < ttl {
			t.Fatalf("revoked binding denied %v after the revocation, within the TTL: %d", time.Since(revoked), code)
		}
	}
	time.Sleep(time.Until(revoked.Add(ttl)))
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := s.get(t, "/topology", token)
		if code == http.StatusForbidden {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked binding still allowed %v after the TTL: %d", time.Since(revoked)-ttl, code)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// When the API server does not answer, the caller gets 503, not 401 or 403
// (it may well be allowed), and the failure is not cached: each request asks
// again.
func TestAPIServerUnavailable(t *testing.T) {
	kube, err := kubernetes.NewForConfig(&restConfigNowhere)
	if err != nil {
		t.Fatal(err)
	}
	gate := &kubeauth.Gate{
		Authn: kubeauth.NewAuthenticator(kube, time.Minute),
		Authz: kubeauth.NewAuthorizer(kube, time.Minute),
		Needs: kubeauth.GetPath,
	}
	h := gate.Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { t.Error("served without review") }))
	for range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer secret-token-value")
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d, want 503", rec.Code)
		}
		if strings.Contains(rec.Body.String(), "secret-token-value") {
			t.Error("the answer carries the token")
		}
	}
	if d := gate.Denied(); d[503] != 2 {
		t.Errorf("denied = %v, want 503:2", d)
	}
}
