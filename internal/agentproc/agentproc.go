// Package agentproc runs an nsint-agent binary as a child process for the
// end-to-end suites and the benchmarks: on an API address of its own on
// loopback, with its log captured, waiting for /readyz, answering GETs of its
// API, and signalled and waited for. It only ever signals the process it
// started, by that process's PID.
//
// Not hack/demo's supervisor (interactive: process groups, parent-death signal, fixed ports): one agent per test, free port, whole log.
package agentproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/nsint/nsint/pkg/api"
)

// ErrNotStopped is returned by Stop when the agent outlived its timeout and
// was killed.
var ErrNotStopped = errors.New("agent did not stop in time")

// httpClient keeps no idle connection, so querying the agent leaves no file
// descriptor or goroutine behind in it between queries.
var httpClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// Proc is one running nsint-agent.
type Proc struct {
	APIAddr string // host:port of its API
	Log     *Log   // its stdout and stderr

	cmd    *exec.Cmd
	exited chan error // holds the exit error once the process is gone
}

// Start runs bin (an nsint-agent) with args and --api-addr on a free
// loopback port. It does not wait for the agent to be ready (WaitReady).
func Start(bin string, args ...string) (*Proc, error) {
	addr, err := FreeTCPAddr()
	if err != nil {
		return nil, err
	}
	p := &Proc{APIAddr: addr, Log: &Log{}, exited: make(chan error, 1)}
	p.cmd = exec.Command(bin, append(append([]string(nil), args...), "--api-addr", addr)...)
	p.cmd.Stdout, p.cmd.Stderr = p.Log, p.Log
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	return p, nil
}

// PID is the agent's process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// exitErr returns the exit error and true once the process has exited.
func (p *Proc) exitErr() (error, bool) {
	select {
	case err := <-p.exited:
		p.exited <- err
		return err, true
	default:
		return nil, false
	}
}

// WaitReady polls /readyz until the agent answers 200, it exits, or timeout
// passes.
func (p *Proc) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := httpClient.Get("http://" + p.APIAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if err, gone := p.exitErr(); gone {
			return fmt.Errorf("agent exited while starting: %v", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not ready after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop sends sig to the agent unless it has exited, waits for it and
// returns its exit error. After timeout it kills it and returns an error
// matching ErrNotStopped.
func (p *Proc) Stop(sig syscall.Signal, timeout time.Duration) error {
	if err, gone := p.exitErr(); gone {
		return err
	}
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		err := <-p.exited
		p.exited <- err
		return fmt.Errorf("%w: %v within %v (then killed: %v)", ErrNotStopped, sig, timeout, err)
	}
}

// Get returns the body of GET path on the agent's API; a status other than
// 200 is an error.
func (p *Proc) Get(path string) ([]byte, error) {
	resp, err := httpClient.Get("http://" + p.APIAddr + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Topology returns /api/v1/topology.
func (p *Proc) Topology() (api.Topology, error) {
	var topo api.Topology
	b, err := p.Get("/api/v1/topology")
	if err != nil {
		return topo, err
	}
	if err := json.Unmarshal(b, &topo); err != nil {
		return topo, fmt.Errorf("decode topology: %w", err)
	}
	return topo, nil
}

// FreeTCPAddr returns a loopback address whose port was free a moment ago.
func FreeTCPAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Log collects what a process writes; it is safe for concurrent use.
type Log struct {
	mu sync.Mutex
	b  []byte
}

// Write appends b.
func (l *Log) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, b...)
	return len(b), nil
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// LinesSince returns the complete lines written after byte offset off, and
// the offset after them.
func (l *Log) LinesSince(off int) (string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	end := off
	for i := len(l.b) - 1; i >= off; i-- {
		if l.b[i] == '\n' {
			end = i + 1
			break
		}
	}
	return string(l.b[off:end]), end
}
