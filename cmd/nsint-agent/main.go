// Command nsint-agent is nsint's node agent: it watches every network
// namespace's interfaces, attaches eBPF programs to their TC hooks and sends
// INT Telemetry Reports to collectors.
//
//	nsint-agent [flags]           run the agent (see --help; every flag is also NSINT_<FLAG> and a --config key)
//	nsint-agent cleanup [flags]   remove every attachment, pin (pinned kernel state included) and state file of ours on this node
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nsint/nsint/internal/flagconf"
	"github.com/nsint/nsint/pkg/agent"
	"github.com/nsint/nsint/pkg/config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run returns the exit status: 0, 1 on a runtime failure, 2 on bad
// configuration.
func run(args []string, stderr io.Writer) int {
	cleanup := len(args) > 0 && args[0] == "cleanup"
	if cleanup {
		args = args[1:]
	}
	cfg, err := config.Parse(args, os.Environ(), stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "nsint-agent: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cleanup {
		return runCleanup(ctx, cfg, log)
	}
	return exitStatus(log, agent.Run(ctx, cfg, log))
}

// exitStatus logs why the agent stopped, in one line, and returns the exit
// status: 0 after a normal stop, 2 on bad configuration, else 1.
func exitStatus(log *slog.Logger, err error) int {
	var (
		ce *agent.ComponentError
		fe *flagconf.Error
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce):
		log.Error("nsint-agent stopped: a component failed", "component", ce.Component, "err", ce.Err)
		return 1
	case errors.As(err, &fe):
		log.Error("nsint-agent failed", "err", err)
		return 2
	default:
		log.Error("nsint-agent failed", "err", err)
		return 1
	}
}

func runCleanup(ctx context.Context, cfg *config.Agent, log *slog.Logger) int {
	done, err := agent.Cleanup(ctx, cfg)
	log.Info("cleanup done", "removed", done.Total(), "generations", done.Generations, "pinDir", done.PinDir,
		"stateDir", cfg.StateDir, "netnsDirs", cfg.NetnsDirs, "hostNetns", cfg.HostNetns)
	if err != nil {
		log.Error("cleanup incomplete", "err", err)
		return 1
	}
	return 0
}
