package collector

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nsint/nsint/pkg/collector/otlpexport"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// Defaults of Config.
const (
	DefaultListen          = ":32766"
	DefaultAPIAddr         = ":8080"
	DefaultAgentAPIPort    = 4048
	DefaultMaxFlows        = 100000
	DefaultMaxPending      = 65536
	DefaultMaxSources      = 65536
	DefaultTopologyRefresh = 30 * time.Second
	DefaultReadBuffer      = 8 << 20
	DefaultAuthCacheTTL    = 30 * time.Second
	DefaultAgentServerName = "nsint-agent.nsint.svc"
)

// The values of Config.APIAuth.
const (
	APIAuthNone       = "none"       // anyone who reaches the port sees everything
	APIAuthKubernetes = "kubernetes" // bearer tokens, TokenReview and SubjectAccessReview
)

// Config configures a Collector.
type Config struct {
	Listen          string            // UDP address for reports
	APIAddr         string            // HTTP address for the views
	AgentAPIPort    int               // agents' API port when asked at a report's source address
	Agents          []string          // static agent URLs; empty: ask each report's source
	MaxFlows        int               // flow table rows
	MaxPending      int               // reports waiting for their ports to resolve
	MaxSources      int               // (source, switch ID, hw_id) sequences tracked
	TopologyRefresh time.Duration     // how often agents are asked again
	ReadBuffer      int               // UDP socket receive buffer, bytes
	OTLP            otlpexport.Config // export of the rows' increments as OTLP log records (off without an endpoint)

	APIAuth      string        // none or kubernetes: who may call the HTTP API
	TLSCert      string        // PEM certificate of the HTTP API ("" = plain HTTP)
	TLSKey       string        // PEM key of TLSCert
	AuthCacheTTL time.Duration // how long an authentication or authorization decision is reused
	Kubeconfig   string        // for TokenReview and SubjectAccessReview ("" = in-cluster)

	AgentTLSCA         string // CA bundle of the agents' serving certificates ("" = agents over http)
	AgentTLSServerName string // name checked in the agents' certificates ("" = the URL's host)
	AgentTokenFile     string // bearer token sent to agents, re-read on change ("" = none)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Listen: DefaultListen, APIAddr: DefaultAPIAddr, AgentAPIPort: DefaultAgentAPIPort,
		MaxFlows: DefaultMaxFlows, MaxPending: DefaultMaxPending, MaxSources: DefaultMaxSources,
		TopologyRefresh: DefaultTopologyRefresh, ReadBuffer: DefaultReadBuffer,
		OTLP:    otlpexport.DefaultConfig(),
		APIAuth: APIAuthNone, AuthCacheTTL: DefaultAuthCacheTTL, AgentTLSServerName: DefaultAgentServerName,
	}
}

// ConfigError names a configuration field and the value it rejects.
type ConfigError struct {
	Field string
	Value string
	Why   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Why)
}

// Validate checks every field and returns a *ConfigError for the first bad one.
func (c *Config) Validate() error {
	if err := checkHostPort("listen", c.Listen); err != nil {
		return err
	}
	if err := checkHostPort("api-addr", c.APIAddr); err != nil {
		return err
	}
	if c.AgentAPIPort < 1 || c.AgentAPIPort > 65535 {
		return &ConfigError{"agent-api-port", strconv.Itoa(c.AgentAPIPort), "want a port number 1-65535"}
	}
	for _, a := range c.Agents {
		if _, err := topology.NormalizeAgentURL(a); err != nil {
			return &ConfigError{"agents", a, "want http(s)://host:port"}
		}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"max-flows", c.MaxFlows}, {"max-pending", c.MaxPending}, {"max-sources", c.MaxSources}} {
		if f.v < 1 {
			return &ConfigError{f.name, strconv.Itoa(f.v), "want a positive number"}
		}
	}
	if c.TopologyRefresh < time.Second {
		return &ConfigError{"topology-refresh", c.TopologyRefresh.String(), "want at least 1s"}
	}
	if c.ReadBuffer < 0 {
		return &ConfigError{"read-buffer", strconv.Itoa(c.ReadBuffer), "want 0 (system default) or more bytes"}
	}
	switch c.APIAuth {
	case APIAuthNone, APIAuthKubernetes:
	default:
		return &ConfigError{"api-auth", c.APIAuth, "want none or kubernetes"}
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		return &ConfigError{"api-tls-key", "", "--api-tls-cert is set: give its key too"}
	case c.TLSCert == "" && c.TLSKey != "":
		return &ConfigError{"api-tls-cert", "", "--api-tls-key is set: give its certificate too"}
	case c.APIAuth == APIAuthKubernetes && c.TLSCert == "":
		return &ConfigError{"api-tls-cert", "", "--api-auth kubernetes needs --api-tls-cert and --api-tls-key: bearer tokens are never accepted over plain HTTP"}
	}
	if c.AuthCacheTTL < 0 || c.AuthCacheTTL > time.Hour {
		return &ConfigError{"api-auth-cache-ttl", c.AuthCacheTTL.String(), "want 0..1h"}
	}
	if err := c.OTLP.Validate(); err != nil {
		var fe *otlpexport.FieldError
		if errors.As(err, &fe) {
			return &ConfigError{fe.Field, fe.Value, fe.Why}
		}
		return err
	}
	return nil
}

func checkHostPort(field, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return &ConfigError{field, v, "want host:port or :port"}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return &ConfigError{field, v, "want a port number 0-65535"}
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			return &ConfigError{field, v, "unknown host"}
		}
	}
	return nil
}
