package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/pkg/tc"
	"golang.org/x/sys/unix"
)

// options are the demo's settings: flags, each defaulting to an environment
// variable so that `make demo` passes them through.
type options struct {
	bin           string        // directory holding nsint-agent and nsint-collector
	duration      time.Duration // 0: until a signal
	collectorPort int           // UDP port of the collector (reports)
	webPort       int           // HTTP port of the collector (page, API)
	agentPort     int           // HTTP port of the agent API
}

// podNames are the demo's pods; their namespace files are demo-<name>.
var podNames = []string{"pod-a", "pod-b", "pod-c"}

const nsPrefix = "demo"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit status: 0 when the duration runs out or on a signal,
// 1 on a failure, 2 on bad options or a missing prerequisite.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 2
	}
	if problems := checkPrerequisites(o); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(stderr, "demo: %s\n", p)
		}
		return 2
	}
	// The signal context stays armed until cleanup is done, so a second
	// Ctrl-C cannot cut it short. A closed terminal (SIGHUP) or a closed
	// output pipe (SIGPIPE, e.g. `| head`) also stops the demo with its
	// cleanup instead of killing it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	err = demo(ctx, o, stdout)
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		fmt.Fprintln(stdout, "demo: stopped by signal; everything it created is removed")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "demo: done; everything it created is removed")
	return 0
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("nsint-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var seconds int
	var err error
	envInt := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, convErr := strconv.Atoi(v)
		if convErr != nil || n < 0 {
			err = errors.Join(err, fmt.Errorf("invalid %s %q: want a non-negative number", name, v))
		}
		return n
	}
	fs.StringVar(&o.bin, "bin", "bin", "directory holding nsint-agent and nsint-collector")
	fs.IntVar(&seconds, "duration", envInt("DEMO_DURATION", 0), "seconds to stay up; 0 = until Ctrl-C (env DEMO_DURATION)")
	fs.IntVar(&o.collectorPort, "collector-port", envInt("DEMO_COLLECTOR_PORT", 32766), "collector's UDP report port on 127.0.0.1 (env DEMO_COLLECTOR_PORT)")
	fs.IntVar(&o.webPort, "web-port", envInt("DEMO_WEB_PORT", 8080), "collector's page and API port on 127.0.0.1 (env DEMO_WEB_PORT)")
	fs.IntVar(&o.agentPort, "agent-port", envInt("DEMO_AGENT_PORT", 4048), "agent API port on 127.0.0.1 (env DEMO_AGENT_PORT)")
	if err != nil {
		return o, err
	}
	if perr := fs.Parse(args); perr != nil {
		return o, perr
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if seconds < 0 {
		return o, fmt.Errorf("invalid duration %d: want seconds >= 0", seconds)
	}
	o.duration = time.Duration(seconds) * time.Second
	return o, nil
}

// demo sets everything up, shows the view and waits; each acquisition is
// followed by its release, so every exit path removes what was created.
func demo(ctx context.Context, o options, stdout io.Writer) (err error) {
	tmp, err := os.MkdirTemp("", "nsint-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	netnsDir, stateDir, bpffs := filepath.Join(tmp, "netns"), filepath.Join(tmp, "state"), filepath.Join(tmp, "bpffs")
	for _, d := range []string{netnsDir, stateDir, bpffs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return err
		}
	}
	if _, err := tc.MountBPFFS(bpffs); err != nil {
		return fmt.Errorf("mount a private BPF filesystem at %s: %w", bpffs, err)
	}
	defer unix.Unmount(bpffs, unix.MNT_DETACH)

	fmt.Fprintf(stdout, "demo: building a node of network namespaces under %s\n", netnsDir)
	node, err := fakenode.Build(netnsDir, nsPrefix)
	if err != nil {
		return fmt.Errorf("build the fake node: %w", err)
	}
	defer func() {
		if cerr := node.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("remove the fake node: %w", cerr))
		}
	}()
	pods := make([]*fakenode.Pod, 0, len(podNames))
	for _, name := range podNames {
		p, err := node.AddPod(name)
		if err != nil {
			return fmt.Errorf("add %s: %w", name, err)
		}
		pods = append(pods, p)
	}

	agentArgs := []string{
		"--netns-dir", netnsDir, "--host-netns=false", "--state-dir", stateDir, "--bpffs", bpffs,
		"--node-name", "demo-node", "--kubernetes", "off",
	}
	procs := newProcesses()
	// The agent's attachments stay when it stops (they are pinned for its
	// next start); `nsint-agent cleanup` removes them, before the node goes.
	defer func() {
		procs.stopAll()
		if cerr := cleanupAgent(o.bin, agentArgs); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := startCollectorAndAgent(ctx, o, agentArgs, procs, stdout); err != nil {
		return err
	}

	tr, err := startTraffic(ctx, node, pods, procs)
	if err != nil {
		return err
	}
	defer tr.stop()

	runCtx := ctx
	if o.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	web := fmt.Sprintf("http://127.0.0.1:%d", o.webPort)
	if err := showView(runCtx, stdout, web, pods); err != nil {
		return err
	}
	if o.duration > 0 {
		fmt.Fprintf(stdout, "\ndemo: up for %v (DEMO_DURATION); Ctrl-C stops it earlier\n", o.duration)
	} else {
		fmt.Fprintln(stdout, "\ndemo: traffic keeps flowing; Ctrl-C stops the demo and removes everything")
	}
	select {
	case <-runCtx.Done():
	case err := <-procs.exited:
		return err
	}
	fmt.Fprintln(stdout, "demo: stopping and removing everything")
	return nil
}
