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
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/tc"
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

	if cleanup {
		return runCleanup(cfg, log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
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

func runCleanup(cfg *config.Agent, log *slog.Logger) int {
	attachCfg, err := agent.AttachConfig(cfg)
	if err != nil {
		log.Error("cleanup", "err", err)
		return 2
	}
	// The pinned datapath state first: tc.Cleanup then removes the pin
	// directory once it is empty.
	genDir := agent.GenerationDir(cfg.BPFFSDir)
	generations, genErr := datapath.RemoveGenerations(genDir)
	removed, err := tc.Cleanup(attachCfg, tc.CleanupScope{
		StateDir:    cfg.StateDir,
		NetnsDirs:   cfg.NetnsDirs,
		IncludeHost: cfg.HostNetns,
	})
	removed += generations
	err = errors.Join(genErr, err)
	log.Info("cleanup done", "removed", removed, "generations", generations, "pinDir", attachCfg.PinDir,
		"stateDir", cfg.StateDir, "netnsDirs", cfg.NetnsDirs, "hostNetns", cfg.HostNetns)
	if err != nil {
		log.Error("cleanup incomplete", "err", err)
		return 1
	}
	return 0
}
