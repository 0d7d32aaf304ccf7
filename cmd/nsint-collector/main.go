// Command nsint-collector receives INT reports from nsint agents and shows the
// traffic of each interface: `nsint-collector` serves, `nsint-collector flows`
// prints a running collector's flows, `nsint-collector deepinsight-topology`
// writes a DeepInsight topology from the agents' topology APIs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nsint/nsint/internal/flagconf"
	"github.com/nsint/nsint/pkg/collector"
	"github.com/nsint/nsint/pkg/collector/client"
	"github.com/nsint/nsint/pkg/collector/deepinsight"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// usageError makes main exit with status 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, log)
	stop()
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return
	}
	var ue usageError
	var ce *collector.ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		fmt.Fprintln(os.Stderr, "nsint-collector:", err)
		os.Exit(2)
	}
	log.Error("nsint-collector failed", "err", err)
	os.Exit(1)
}

func run(ctx context.Context, args []string, stdout io.Writer, log *slog.Logger) error {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "flows" || args[0] == "deepinsight-topology" || args[0] == "serve") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("nsint-collector "+cmd, flag.ContinueOnError)
	fs.String("config", "", "YAML file with flag values (keys are flag names)")
	switch cmd {
	case "flows":
		var o client.FlowsOptions
		o.RegisterFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		hc, err := o.HTTPClient()
		if err != nil {
			return usageError{err}
		}
		resp, err := client.Flows(ctx, hc, o.Server, o.Params())
		if err != nil {
			return err
		}
		// The agents' report loss, to say under the table when figures may be short.
		sum, err := client.Summary(ctx, hc, o.Server, o.Params())
		if err != nil {
			return err
		}
		if err := client.WriteTable(stdout, resp, time.Now()); err != nil {
			return err
		}
		return client.WriteLosses(stdout, sum.Agents)
	case "deepinsight-topology":
		var agents collector.ListFlag
		fs.Var(&agents, "agents", "agent API URLs (comma-separated or repeated)")
		out := fs.String("output", "-", "file to write ('-': standard output)")
		ca := fs.String("agent-tls-ca", "", "PEM CA bundle the agents' serving certificates chain to (for https agent URLs)")
		serverName := fs.String("agent-tls-server-name", collector.DefaultAgentServerName, "name checked in the agents' certificates (empty: the URL's host)")
		tokenFile := fs.String("agent-token-file", "", "file of the bearer token sent to agents (over https only)")
		if err := parse(fs, args); err != nil {
			return err
		}
		if len(agents) == 0 {
			return usageError{errors.New("deepinsight-topology: invalid agents \"\": give at least one agent URL")}
		}
		hc, err := collector.AgentClient(*ca, *serverName, *tokenFile)
		if err != nil {
			return err
		}
		hc.Timeout = 10 * time.Second
		docs, err := topology.FetchAll(ctx, hc, agents)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(deepinsight.Build(docs, deepinsight.Options{}), "", "  ")
		if err != nil {
			return err
		}
		b = append(b, '\n')
		if *out == "-" {
			_, err = stdout.Write(b)
			return err
		}
		return os.WriteFile(*out, b, 0o644)
	}

	cfg := collector.DefaultConfig()
	cfg.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	c, err := collector.New(cfg)
	if err != nil {
		return err
	}
	log.Info("collector starting", "listen", cfg.Listen, "api", cfg.APIAddr, "agents", cfg.Agents,
		"agentApiPort", cfg.AgentAPIPort, "maxFlows", cfg.MaxFlows, "apiAuth", cfg.APIAuth, "apiTLS", cfg.TLSCert != "",
		"agentTLSCA", cfg.AgentTLSCA, "agentTLSServerName", cfg.AgentTLSServerName, "agentTokenFile", cfg.AgentTokenFile)
	if cfg.OTLP.Enabled() {
		log.Info("exporting flow records over OTLP", "endpoint", cfg.OTLP.Endpoint, "interval", cfg.OTLP.Interval,
			"queueSize", cfg.OTLP.QueueSize, "maxRetryTime", cfg.OTLP.MaxRetryTime)
	}
	err = c.Run(ctx)
	s := c.Stats()
	log.Info("collector stopped", "datagrams", s.Datagrams, "reports", s.Reports, "errors", s.Errors,
		"lost", s.LostReports, "socketDrops", s.SocketDrops, "evictions", s.Table.Evictions)
	if o := s.OTLP; o != nil {
		log.Info("otlp export stopped", "records", o.Records, "exported", o.Exported, "dropped", o.Dropped,
			"droppedPackets", o.DroppedPackets, "failedRequests", o.FailedRequests, "lastError", o.LastError)
	}
	return err
}

// parse applies the command line, NSINT_COLLECTOR_* variables and --config.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := flagconf.Parse(fs, args, collector.EnvPrefix, "config", os.Environ())
	if errors.Is(err, flag.ErrHelp) {
		fs.SetOutput(os.Stderr)
		fs.PrintDefaults()
		return err
	}
	if err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
