package agent

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/kubeauth"
)

// apiServing is how the API is served: its handler and, with
// --api-tls-cert, TLS.
type apiServing struct {
	handler http.Handler
	tls     *tls.Config // nil: plain HTTP
}

// prepareAPI loads the API's certificate and sets up authentication, so
// that a bad file or kubeconfig stops the agent before anything is loaded.
// Errors name the flag and its value.
func (a *Agent) prepareAPI() (*apiServing, error) {
	cfg := a.cfg
	out := &apiServing{}
	if cfg.APITLSCert != "" {
		cf, err := kubeauth.LoadCertFiles(cfg.APITLSCert, cfg.APITLSKey)
		if err != nil {
			return nil, fmt.Errorf("--api-tls-cert %s, --api-tls-key %s: %w", cfg.APITLSCert, cfg.APITLSKey, err)
		}
		out.tls = cf.TLSConfig()
	}
	opts := api.Options{}
	if cfg.APIAuth != config.APIAuthKubernetes {
		out.handler = api.HandlerWith(a, a.metrics.reg, opts)
		return out, nil
	}
	if out.tls == nil {
		// config refuses this; checked again because tokens must never
		// travel in the clear.
		return nil, fmt.Errorf("--api-auth %s: needs --api-tls-cert and --api-tls-key", cfg.APIAuthFrom)
	}
	kube, err := kubeauth.NewClient(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--api-auth %s (resolved: kubernetes), --kubeconfig %q: %w", cfg.APIAuthFrom, cfg.Kubeconfig, err)
	}
	gate := &kubeauth.Gate{
		Authn: kubeauth.NewAuthenticator(kube, cfg.APIAuthCacheTTL),
		Authz: kubeauth.NewAuthorizer(kube, cfg.APIAuthCacheTTL),
		Needs: func(r *http.Request) kubeauth.Need {
			if api.OpenPath(r.URL.Path) {
				return kubeauth.Open()
			}
			return kubeauth.Allowed(kubeauth.Attributes{Verb: "get", Path: api.AuthzPath(r.URL.Path)})
		},
	}
	a.metrics.reg.MustRegister(gate.Collector("nsint_api_requests_denied_total",
		"API requests refused: code 401 (no or rejected bearer token), 403 (not allowed by SubjectAccessReview), 503 (the Kubernetes API did not answer the review)"))
	opts.QuietHealth = true
	opts.NotReady = a.logNotReady()
	out.handler = gate.Wrap(api.HandlerWith(a, a.metrics.reg, opts))
	a.log.Info("API requires Kubernetes authentication", "apiAuth", cfg.APIAuthFrom, "cacheTTL", cfg.APIAuthCacheTTL,
		"cert", cfg.APITLSCert, "kubeconfig", cfg.Kubeconfig)
	return out, nil
}

// logNotReady logs why the agent answered "not ready" to a probe, once per
// distinct reason, since the answer itself does not say.
func (a *Agent) logNotReady() func(string) {
	var mu sync.Mutex
	var last string
	return func(why string) {
		mu.Lock()
		defer mu.Unlock()
		if why != last {
			last = why
			a.log.Info("answered /readyz: not ready", "reason", why)
		}
	}
}
