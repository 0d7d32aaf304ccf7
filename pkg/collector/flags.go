package collector

import (
	"flag"
	"strings"
)

// EnvPrefix prefixes the environment variables that set the collector's
// flags: --max-flows is NSINT_COLLECTOR_MAX_FLOWS.
const EnvPrefix = "NSINT_COLLECTOR_"

// RegisterFlags defines the collector's flags on fs, bound to cfg (whose
// current values are the defaults).
func (cfg *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "UDP address for INT reports (IPv4 and IPv6)")
	fs.StringVar(&cfg.APIAddr, "api-addr", cfg.APIAddr, "HTTP address for the API, page and metrics")
	fs.IntVar(&cfg.AgentAPIPort, "agent-api-port", cfg.AgentAPIPort, "agents' API port, asked at a report's source address")
	fs.Var((*ListFlag)(&cfg.Agents), "agents", "static agent API URLs (comma-separated or repeated); matched by switchId")
	fs.IntVar(&cfg.MaxFlows, "max-flows", cfg.MaxFlows, "flow table rows (least recently seen evicted)")
	fs.IntVar(&cfg.MaxPending, "max-pending", cfg.MaxPending, "reports kept while their ports are unknown")
	fs.IntVar(&cfg.MaxSources, "max-sources", cfg.MaxSources, "report sequences (source address, switch ID, hw_id) tracked for loss")
	fs.DurationVar(&cfg.TopologyRefresh, "topology-refresh", cfg.TopologyRefresh, "how often agents' topologies are fetched again")
	fs.IntVar(&cfg.ReadBuffer, "read-buffer", cfg.ReadBuffer, "UDP receive buffer in bytes (0: system default)")
	fs.StringVar(&cfg.APIAuth, "api-auth", cfg.APIAuth, "who may call the HTTP API: none, or kubernetes (a bearer token TokenReview accepts; /metrics needs SubjectAccessReview get /metrics, the views show the rows of the namespaces whose pods the user may get; needs --api-tls-cert and --api-tls-key); /healthz and the page stay open")
	fs.StringVar(&cfg.TLSCert, "api-tls-cert", cfg.TLSCert, "PEM certificate (chain) the HTTP API serves HTTPS with, re-read when it changes (with --api-tls-key; empty: plain HTTP)")
	fs.StringVar(&cfg.TLSKey, "api-tls-key", cfg.TLSKey, "PEM private key of --api-tls-cert, re-read when it changes")
	fs.DurationVar(&cfg.AuthCacheTTL, "api-auth-cache-ttl", cfg.AuthCacheTTL, "how long an allow or deny decision of --api-auth kubernetes is reused for the same token (0: ask every time)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig for TokenReview and SubjectAccessReview (default: in-cluster configuration)")
	fs.StringVar(&cfg.AgentTLSCA, "agent-tls-ca", cfg.AgentTLSCA, "PEM CA bundle the agents' serving certificates chain to; when set, agents are asked over https")
	fs.StringVar(&cfg.AgentTLSServerName, "agent-tls-server-name", cfg.AgentTLSServerName, "name checked in the agents' certificates (agents are reached by node IP; empty: the URL's host)")
	fs.StringVar(&cfg.AgentTokenFile, "agent-token-file", cfg.AgentTokenFile, "file of the bearer token sent to agents (over https only), re-read when it changes (a projected ServiceAccount token); empty: none")
	cfg.OTLP.RegisterFlags(fs)
}

// ListFlag is a repeatable flag whose values may also be comma-separated.
type ListFlag []string

// String implements flag.Value.
func (l *ListFlag) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value.
func (l *ListFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// Reset empties the list (flagconf.Resetter): a higher-precedence source
// replaces the list instead of extending it.
func (l *ListFlag) Reset() { *l = nil }
