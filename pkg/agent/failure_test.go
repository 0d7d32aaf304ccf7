package agent

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
)

// failComponent is a seams.wrap that makes component name fail with the
// error sent on fail; until then the component runs as it does otherwise.
func failComponent(name string, fail <-chan error) func(string, func() error) func() error {
	return func(n string, run func() error) func() error {
		if n != name {
			return run
		}
		return func() error {
			done := make(chan error, 1)
			go func() { done <- run() }()
			select {
			case err := <-done:
				return err
			case err := <-fail:
				return err
			}
		}
	}
}

// collectorAddr listens for reports on loopback, reading and dropping them.
func collectorAddr(t *testing.T) string {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}()
	return c.LocalAddr().String()
}

// readyzOf is what /readyz at addr answers.
func readyzOf(addr string) (int, string, error) {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// A component that fails after the start stops the agent: Run returns the
// failure naming the component; while the agent stops, /readyz answers not
// ready with the component and the error; the stop is the normal one (a
// last sweep) and leaves the agent not ready.
func TestComponentFailureStopsTheAgent(t *testing.T) {
	for _, c := range []struct {
		component string
		cause     error
	}{
		// ifacewatch.Run fails like this when the node is out of inotify
		// instances.
		{"discovery", fmt.Errorf("fsnotify: %w", syscall.EMFILE)},
		{"exporter", fmt.Errorf("sendmmsg: %w", syscall.EBADF)},
	} {
		t.Run(c.component, func(t *testing.T) {
			dir := netnstest.Dir(t)
			prefix := netnstest.Prefix(t)
			a := netnstest.New(t, dir, prefix+"a")
			b := netnstest.New(t, dir, prefix+"b")
			netnstest.Veth(t, a, "eth0", b, "eth0")

			fail := make(chan error, 1)
			var (
				code int
				body string
				gerr error
			)
			s := seams{
				wrap:     failComponent(c.component, fail),
				stopping: func(a *Agent) { code, body, gerr = readyzOf(a.apiAddr) },
			}
			ta := startAgent(t, dir, s, "--collector", collectorAddr(t), "--report-format", "v2.0")
			ta.waitReady(t)
			ta.waitTopology(t, "the veth is attached", func(topo api.Topology) bool {
				return attached(topo, a.Inode, "eth0") && attached(topo, b.Inode, "eth0")
			})
			if code, body := ta.readyz(t); code != http.StatusOK {
				t.Fatalf("before the failure: /readyz %d %q", code, body)
			}

			fail <- c.cause
			err := ta.wait(t)
			var ce *ComponentError
			if !errors.As(err, &ce) || ce.Component != c.component || !errors.Is(err, c.cause) {
				t.Fatalf("Run returned %v, want the failure of %s wrapping %v", err, c.component, c.cause)
			}
			if gerr != nil {
				t.Fatalf("GET /readyz while stopping: %v", gerr)
			}
			for _, want := range []string{c.component, c.cause.Error()} {
				if code != http.StatusServiceUnavailable || !strings.Contains(body, want) {
					t.Errorf("/readyz while stopping: %d %q, want 503 naming %q", code, body, want)
				}
			}
			if ok, why := ta.Ready(); ok || !strings.Contains(why, c.component) {
				t.Errorf("after the failure: ready %v, %q", ok, why)
			}
			if n := counterValue(t, ta.sweeper.m.sweeps.WithLabelValues("stop", "ok")); n != 1 {
				t.Errorf("%v last sweeps on the way out, want 1", n)
			}
		})
	}
}

// A normal stop returns nil, is not ready while it stops, and keeps the
// report pipeline's order: the last sweep, then the report reader's flush
// (it returns once it has read what the kernel held), then the exporter's
// drain, and the API last, so that collectors can name the last reports.
func TestStopSweepsThenFlushesThenDrains(t *testing.T) {
	dir := netnstest.Dir(t)
	prefix := netnstest.Prefix(t)
	a := netnstest.New(t, dir, prefix+"a")
	b := netnstest.New(t, dir, prefix+"b")
	netnstest.Veth(t, a, "eth0", b, "eth0")

	var (
		mu         sync.Mutex
		ended      []string
		stopSweeps float64 = -1
		ta         *testAgent
		code       int
		body       string
	)
	s := seams{
		wrap: func(name string, run func() error) func() error {
			switch name {
			case "report reader", "exporter", "api":
			default:
				return run
			}
			return func() error {
				err := run()
				mu.Lock()
				defer mu.Unlock()
				ended = append(ended, name)
				if name == "report reader" {
					var m = ta.sweeper.m.sweeps.WithLabelValues("stop", "ok")
					stopSweeps = counterValue(t, m)
				}
				return err
			}
		},
		stopping: func(a *Agent) { code, body, _ = readyzOf(a.apiAddr) },
	}
	ta = startAgent(t, dir, s, "--collector", collectorAddr(t))
	ta.waitReady(t)
	ta.waitTopology(t, "the veth is attached", func(topo api.Topology) bool {
		return attached(topo, a.Inode, "eth0") && attached(topo, b.Inode, "eth0")
	})
	if err := ta.stop(t); err != nil {
		t.Fatalf("a normal stop returned %v", err)
	}
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "stopping") {
		t.Errorf("/readyz while stopping: %d %q", code, body)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"report reader", "exporter", "api"}; strings.Join(ended, ",") != strings.Join(want, ",") {
		t.Errorf("components ended in the order %v, want %v", ended, want)
	}
	if stopSweeps != 1 {
		t.Errorf("the report reader ended after %v last sweeps, want 1 (sweep first, then flush)", stopSweeps)
	}
}
