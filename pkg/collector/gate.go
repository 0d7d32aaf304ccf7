package collector

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/web"
	"github.com/nsint/nsint/pkg/kubeauth"
)

// newGate returns the gate of the HTTP API with --api-auth kubernetes:
// /healthz and the page open, /metrics for users allowed "get /metrics",
// everything else for any authenticated user, who sees the rows the Scope
// put in the request's context lets them see.
func newGate(kube kubernetes.Interface, ttl time.Duration) *kubeauth.Gate {
	authz := kubeauth.NewAuthorizer(kube, ttl)
	return &kubeauth.Gate{
		Authn:          kubeauth.NewAuthenticator(kube, ttl),
		Authz:          authz,
		ForwardedToken: true,
		Needs: func(r *http.Request) kubeauth.Need {
			switch p := r.URL.Path; {
			case p == "/healthz" || web.IsPage(p):
				return kubeauth.Open()
			case p == "/metrics":
				return kubeauth.Allowed(kubeauth.Attributes{Verb: "get", Path: "/metrics"})
			}
			return kubeauth.Authenticated()
		},
		Context: func(ctx context.Context, u kubeauth.User) context.Context {
			return access.WithScope(ctx, &userScope{ctx: ctx, authz: authz, user: u})
		},
	}
}

// userScope is the Scope of one request's user: the pods of a namespace
// when the user may get pods there (or cluster-wide), node-level rows when
// the user may get nodes. Each answer is asked once per request (and cached
// by the Authorizer across requests); a review that fails hides the rows.
type userScope struct {
	ctx   context.Context
	authz *kubeauth.Authorizer
	user  kubeauth.User

	mu      sync.Mutex
	asked   map[string]bool // "" = pods cluster-wide, "\x00nodes" = nodes, else a namespace
	reviews int             // SubjectAccessReviews asked (for tests)
}

const nodesKey = "\x00nodes"

func (s *userScope) may(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.asked[key]; ok {
		return v
	}
	if s.asked == nil {
		s.asked = map[string]bool{}
	}
	var ok bool
	var err error
	s.reviews++
	if key == nodesKey {
		ok, err = s.authz.May(s.ctx, s.user, "get", "", "nodes", "")
	} else {
		ok, err = s.authz.May(s.ctx, s.user, "get", "", "pods", key)
	}
	s.asked[key] = ok && err == nil
	return s.asked[key]
}

// Namespace implements access.Scope.
func (s *userScope) Namespace(ns string) bool {
	return s.may("") || (ns != "" && s.may(ns))
}

// Nodes implements access.Scope.
func (s *userScope) Nodes() bool { return s.may(nodesKey) }

// agentClient is the client the topology resolver asks agents with.
func agentClient(cfg Config) (*http.Client, error) {
	return AgentClient(cfg.AgentTLSCA, cfg.AgentTLSServerName, cfg.AgentTokenFile)
}

// AgentClient returns a client for agents' APIs: over https verified with
// the CA bundle of caFile (for serverName, "" = the URL's host) when caFile
// is set, sending the bearer token of tokenFile (re-read when it changes;
// https only) when that is set. Errors are *ConfigError naming
// agent-tls-ca or agent-token-file.
func AgentClient(caFile, serverName, tokenFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &ConfigError{"agent-tls-ca", caFile, err.Error()}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &ConfigError{"agent-tls-ca", caFile, "no PEM certificate in it"}
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
	}
	var rt http.RoundTripper = tr
	if tokenFile != "" {
		t, err := kubeauth.NewTokenFileTransport(tokenFile, tr)
		if err != nil {
			return nil, &ConfigError{"agent-token-file", tokenFile, errors.Unwrap(err).Error()}
		}
		rt = t
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: rt}, nil
}

// setUpAuth loads the API's certificate and, with --api-auth kubernetes,
// puts the gate in front of the handler.
func (c *Collector) setUpAuth() error {
	cfg := c.cfg
	if cfg.TLSCert != "" {
		cf, err := kubeauth.LoadCertFiles(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return &ConfigError{"api-tls-cert", cfg.TLSCert, err.Error()}
		}
		c.certs = cf
	}
	if cfg.APIAuth != APIAuthKubernetes {
		return nil
	}
	kube, err := kubeauth.NewClient(cfg.Kubeconfig)
	if err != nil {
		return &ConfigError{"kubeconfig", cfg.Kubeconfig, err.Error()}
	}
	gate := newGate(kube, cfg.AuthCacheTTL)
	c.metrics.registry.MustRegister(gate.Collector(ns+"http_requests_denied_total",
		"HTTP requests refused: code 401 (no or rejected bearer token), 403 (not allowed by SubjectAccessReview), 503 (the Kubernetes API did not answer the review)."))
	c.handler = gate.Wrap(c.handler)
	return nil
}

// tlsConfig is the HTTP API's TLS configuration, nil for plain HTTP.
func (c *Collector) tlsConfig() *tls.Config {
	if c.certs == nil {
		return nil
	}
	return c.certs.TLSConfig()
}
