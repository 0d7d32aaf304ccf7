package otlpexport

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultInterval     = 10 * time.Second
	DefaultTimeout      = 10 * time.Second
	DefaultMaxRetryTime = 2 * time.Minute
	DefaultQueueSize    = 8192
	DefaultBatchSize    = 512
)

// Config configures the export. The zero Endpoint turns it off.
type Config struct {
	// Endpoint is the OTLP/HTTP receiver: host:port (TLS unless Insecure;
	// records go to /v1/logs) or an http:// or https:// URL (its path, when
	// it has one, replaces /v1/logs).
	Endpoint     string
	Interval     time.Duration // how often changed rows are exported
	Insecure     bool          // plain HTTP for a host:port Endpoint
	Timeout      time.Duration // one export request; also the flush at shutdown
	MaxRetryTime time.Duration // how long a failing batch is retried before it is dropped
	QueueSize    int           // records waiting to be sent
	BatchSize    int           // records per export request
}

// DefaultConfig returns the defaults, with the export off.
func DefaultConfig() Config {
	return Config{Interval: DefaultInterval, Timeout: DefaultTimeout, MaxRetryTime: DefaultMaxRetryTime,
		QueueSize: DefaultQueueSize, BatchSize: DefaultBatchSize}
}

// Enabled reports whether an endpoint is set.
func (c *Config) Enabled() bool { return c.Endpoint != "" }

// RegisterFlags defines the --otlp-* flags on fs, bound to c (whose current
// values are the defaults).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Endpoint, "otlp-endpoint", c.Endpoint, "OTLP/HTTP endpoint for flow records, `host:port` or http(s)://host:port[/path] (empty: no export)")
	fs.DurationVar(&c.Interval, "otlp-interval", c.Interval, "how often the rows that changed are exported (their increments)")
	fs.BoolVar(&c.Insecure, "otlp-insecure", c.Insecure, "plain HTTP to a host:port --otlp-endpoint (default TLS)")
	fs.DurationVar(&c.Timeout, "otlp-timeout", c.Timeout, "time allowed for one export request, and for the last flush at shutdown")
	fs.DurationVar(&c.MaxRetryTime, "otlp-max-retry-time", c.MaxRetryTime, "how long a failing batch is retried (backoff 0.5s doubling to 30s) before it is dropped and counted")
	fs.IntVar(&c.QueueSize, "otlp-queue-size", c.QueueSize, "records waiting for export at most, the batch being sent included (rows keep adding up in the table while it is full)")
	fs.IntVar(&c.BatchSize, "otlp-batch-size", c.BatchSize, "records per export request at most")
}

// FieldError names a flag and the value it rejects.
type FieldError struct {
	Field string // the flag's name, without dashes
	Value string
	Why   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("invalid %s %q: %s", e.Field, e.Value, e.Why)
}

// Validate checks every field and returns a *FieldError for the first bad
// one. An empty Endpoint is valid (export off); the other fields are checked
// all the same, so a bad value never waits for the day an endpoint is set.
func (c *Config) Validate() error {
	if c.Endpoint != "" {
		if _, err := c.target(); err != nil {
			return err
		}
	}
	if c.Interval < 100*time.Millisecond {
		return &FieldError{"otlp-interval", c.Interval.String(), "want at least 100ms"}
	}
	if c.Timeout < 100*time.Millisecond {
		return &FieldError{"otlp-timeout", c.Timeout.String(), "want at least 100ms"}
	}
	if c.MaxRetryTime < 0 {
		return &FieldError{"otlp-max-retry-time", c.MaxRetryTime.String(), "want 0 (no retry) or more"}
	}
	if c.QueueSize < 1 {
		return &FieldError{"otlp-queue-size", strconv.Itoa(c.QueueSize), "want a positive number"}
	}
	if c.BatchSize < 1 || c.BatchSize > c.QueueSize {
		return &FieldError{"otlp-batch-size", strconv.Itoa(c.BatchSize), "want a positive number, at most --otlp-queue-size"}
	}
	return nil
}

// target is where records go, as the exporter's options want it.
type target struct {
	hostPort string
	path     string // "" for the exporter's default, /v1/logs
	insecure bool
}

func (c *Config) target() (target, error) {
	bad := func(why string) error { return &FieldError{"otlp-endpoint", c.Endpoint, why} }
	if strings.Contains(c.Endpoint, "://") {
		u, err := url.Parse(c.Endpoint)
		if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			return target{}, bad("want host:port or http(s)://host:port[/path]")
		}
		switch u.Scheme {
		case "http":
		case "https":
			if c.Insecure {
				return target{}, &FieldError{"otlp-insecure", "true", "contradicts the https:// --otlp-endpoint " + c.Endpoint}
			}
		default:
			return target{}, bad("want scheme http or https")
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return target{}, bad("want a port number 1-65535")
			}
		}
		path := u.Path
		if path == "/" {
			path = ""
		}
		return target{hostPort: u.Host, path: path, insecure: u.Scheme == "http"}, nil
	}
	host, port, err := net.SplitHostPort(c.Endpoint)
	if err != nil || host == "" {
		return target{}, bad("want host:port or http(s)://host:port[/path]")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return target{}, bad("want a port number 1-65535")
	}
	return target{hostPort: c.Endpoint, insecure: c.Insecure}, nil
}
