package agent

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/tc"
)

// patience bounds every wait of these tests: a stuck agent fails the test
// instead of hanging it. Nothing is asserted about how long anything takes.
const patience = 60 * time.Second

// testAgent is an agent running in the test's process on namespaces the
// test created: its own netns directory, --host-netns=false, its own state
// directory and BPF filesystem, its API on loopback.
type testAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan error

	once sync.Once
	err  error
}

// startAgent runs the agent on netnsDir with s and the extra flags args,
// and stops it at cleanup (a test that stopped it itself may not).
func startAgent(t *testing.T, netnsDir string, s seams, args ...string) *testAgent {
	t.Helper()
	netnstest.RequireRoot(t)
	bpffs := t.TempDir()
	if _, err := tc.MountBPFFS(bpffs); err != nil {
		t.Fatalf("mount a BPF filesystem of the test's own: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	argv := append([]string{
		"--netns-dir", netnsDir, "--host-netns=false", "--state-dir", t.TempDir(), "--bpffs", bpffs,
		"--api-addr", "127.0.0.1:0", "--node-name", "agent-test", "--kubernetes", "off",
		"--report-interval", "200ms", "--max-flows", "1024",
	}, args...)
	cfg, err := config.Parse(argv, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))

	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{cancel: cancel, done: make(chan error, 1)}
	running := make(chan *Agent, 1)
	s.running = func(a *Agent) { running <- a }
	go func() { ta.done <- run(ctx, cfg, log, s) }()
	t.Cleanup(func() {
		if err := ta.stop(t); err != nil {
			t.Logf("agent stopped with %v", err)
		}
	})
	select {
	case ta.Agent = <-running:
	case err := <-ta.done:
		ta.once.Do(func() { ta.err = err })
		t.Fatalf("agent did not start: %v", err)
	}
	return ta
}

// stop cancels the agent's context and returns what Run returned.
func (ta *testAgent) stop(t *testing.T) error {
	t.Helper()
	ta.cancel()
	return ta.wait(t)
}

// wait returns what Run returned, without asking it to stop.
func (ta *testAgent) wait(t *testing.T) error {
	t.Helper()
	ta.once.Do(func() {
		select {
		case ta.err = <-ta.done:
		case <-time.After(patience):
			t.Fatalf("agent did not return within %v", patience)
		}
	})
	return ta.err
}

func (ta *testAgent) waitReady(t *testing.T) {
	t.Helper()
	waitUntil(t, "the agent is ready", func() bool {
		ok, _ := ta.Ready()
		return ok
	})
}

// waitTopology polls the topology until cond holds and returns it.
func (ta *testAgent) waitTopology(t *testing.T, what string, cond func(api.Topology) bool) api.Topology {
	t.Helper()
	var topo api.Topology
	waitUntil(t, what, func() bool {
		topo = ta.Topology()
		return cond(topo)
	})
	return topo
}

// readyz is what the agent's /readyz answers.
func (ta *testAgent) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + ta.apiAddr + "/readyz")
	if err != nil {
		t.Errorf("GET /readyz: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Errorf("read /readyz: %v", err)
	}
	return resp.StatusCode, string(body)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting until %s", patience, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// portNamed finds the port of interface name (api.LocalStackName: the
// local stack) in the namespace of inode among ports.
func portNamed(ports []api.Port, inode uint64, name string) *api.Port {
	for i := range ports {
		if ports[i].Netns.Inode == netif.Netns(inode) && ports[i].Name == name {
			return &ports[i]
		}
	}
	return nil
}

// portByID finds port id among ports.
func portByID(ports []api.Port, id uint16) *api.Port {
	for i := range ports {
		if ports[i].ID == id {
			return &ports[i]
		}
	}
	return nil
}

// attached reports whether the interface name of the namespace of inode
// has a port with both hooks attached.
func attached(topo api.Topology, inode uint64, name string) bool {
	p := portNamed(topo.Ports, inode, name)
	return p != nil && p.AttachMode != ""
}

// counterValue reads a counter's value.
func counterValue(t *testing.T, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
