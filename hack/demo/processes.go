package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// processes are the child processes the demo started; it stops exactly
// these, by PID.
// Not internal/agentproc (one agent per test, free port): an interactive command's children need process groups, a parent-death signal and fixed ports.
type processes struct {
	mu     sync.Mutex
	list   []*process
	exited chan error // a watched process ended on its own
}

type process struct {
	name     string
	cmd      *exec.Cmd
	out      *tail
	done     chan struct{}
	stopping bool // guarded by processes.mu
}

func newProcesses() *processes {
	return &processes{exited: make(chan error, 8)}
}

// start runs argv in a process group of its own, so that a Ctrl-C in the
// terminal reaches the demo only and the demo stops its children in order;
// the kernel kills the child if the demo dies. When watch is set, an exit
// the demo did not ask for is reported on exited with the end of its output.
func (ps *processes) start(name string, watch bool, argv ...string) (*process, error) {
	p := &process{name: name, cmd: exec.Command(argv[0], argv[1:]...), out: &tail{max: 8 << 10}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	go func() {
		err := p.cmd.Wait()
		close(p.done)
		ps.mu.Lock()
		unexpected := watch && !p.stopping
		ps.mu.Unlock()
		if unexpected {
			ps.exited <- fmt.Errorf("%s exited (%v); its last output:\n%s", name, err, p.out.String())
		}
	}()
	return p, nil
}

// stopAll stops every process, last started first: SIGTERM, then SIGKILL
// after 10 s.
func (ps *processes) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	for _, p := range list {
		p.stopping = true
	}
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		p := list[i]
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimRight(string(t.b), "\n")
}

// startCollectorAndAgent starts the collector, then the agent, and waits until
// both answer.
func startCollectorAndAgent(ctx context.Context, o options, agentArgs []string, ps *processes, stdout io.Writer) error {
	listen := fmt.Sprintf("127.0.0.1:%d", o.collectorPort)
	web := fmt.Sprintf("127.0.0.1:%d", o.webPort)
	agentAPI := fmt.Sprintf("127.0.0.1:%d", o.agentPort)
	collector, err := ps.start("nsint-collector", true, filepath.Join(o.bin, "nsint-collector"),
		"--listen", listen, "--api-addr", web,
		"--agents", "http://"+agentAPI, "--agent-api-port", fmt.Sprint(o.agentPort), "--topology-refresh", "2s")
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, collector, "http://"+web+"/healthz", 20*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo: nsint-collector (pid %d) receives reports on udp %s\n", collector.cmd.Process.Pid, listen)

	args := append([]string{filepath.Join(o.bin, "nsint-agent")}, agentArgs...)
	args = append(args, "--api-addr", agentAPI, "--collector", listen)
	agent, err := ps.start("nsint-agent", true, args...)
	if err != nil {
		return err
	}
	if err := waitHTTP(ctx, agent, "http://"+agentAPI+"/readyz", 60*time.Second); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "demo: nsint-agent (pid %d) attached to every interface of the node's namespaces\n", agent.cmd.Process.Pid)
	return nil
}

// waitHTTP polls url until it answers 200, p exits, ctx ends or timeout passes.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited while starting; its last output:\n%s", p.name, p.out.String())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (%s); its last output:\n%s", p.name, timeout, url, p.out.String())
		}
	}
}

// cleanupAgent runs `nsint-agent cleanup` with the agent's directories: it
// removes the pinned TCX links, legacy filters and state that are ours.
func cleanupAgent(bin string, agentArgs []string) error {
	out, err := exec.Command(filepath.Join(bin, "nsint-agent"), append([]string{"cleanup"}, agentArgs...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nsint-agent cleanup: %w\n%s", err, out)
	}
	return nil
}
