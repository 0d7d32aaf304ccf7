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
