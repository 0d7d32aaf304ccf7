package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/vishvananda/netlink"
)

// TestDemo runs the demo program as `make demo` does and checks, for a
// timeout and for a Ctrl-C, that it exits 0, shows net1 rows for every pod
// and leaves nothing behind.
func TestDemo(t *testing.T) {
	netnstest.RequireRoot(t)
	bin := t.TempDir()
	for _, b := range [][]string{
		{"-o", bin + "/", "../../cmd/nsint-agent", "../../cmd/nsint-collector"},
		{"-o", filepath.Join(bin, "nsint-demo"), "."},
	} {
		build := exec.Command("go", append([]string{"build"}, b...)...)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	t.Run("timeout", func(t *testing.T) {
		out := runDemo(t, bin, 8, nil)
		for _, pod := range podNames {
			row := regexp.MustCompile(`netns:` + nsPrefix + `-` + pod + `\s+net1\s+(ingress|egress)\s`)
			if !row.MatchString(out) {
				t.Errorf("no net1 flow row for %s in the output:\n%s", pod, out)
			}
		}
		if !strings.Contains(out, "/?iface=net1") {
			t.Errorf("no page URL in the output:\n%s", out)
		}
	})
	t.Run("interrupt", func(t *testing.T) {
		// Ctrl-C once the view is printed, while the traffic runs.
		out := runDemo(t, bin, 0, func(p *os.Process) { p.Signal(syscall.SIGINT) })
		if !strings.Contains(out, "stopped by signal") {
			t.Errorf("no stop message:\n%s", out)
		}
	})
}

// runDemo runs the demo with a duration in seconds (0: until interrupt is
// called, after the view), asserts exit status 0 and that nothing is left,
// and returns the output.
func runDemo(t *testing.T, bin string, seconds int, interrupt func(*os.Process)) string {
	t.Helper()
	tmp := t.TempDir()
	mark := make([]byte, 8)
	rand.Read(mark)
	marker := "NSINT_DEMO_TEST=" + hex.EncodeToString(mark) // inherited by every child of the demo
	linksBefore := hostLinks(t)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "nsint-demo"), "--bin", bin)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, marker, fmt.Sprintf("DEMO_DURATION=%d", seconds),
		"DEMO_COLLECTOR_PORT="+freePort(t, "udp"), "DEMO_WEB_PORT="+freePort(t, "tcp"),
		"DEMO_AGENT_PORT="+freePort(t, "tcp"))
	var out, stderr bytes.Buffer
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if interrupt != nil && strings.HasPrefix(sc.Text(), "Every row:") {
			interrupt(cmd.Process)
			interrupt = nil
		}
	}
	if err := sc.Err(); err != nil {
		t.Errorf("read output: %v", err)
	}
	err = cmd.Wait()
	out.Write(stderr.Bytes())
	if err != nil {
		t.Errorf("demo: %v\n%s", err, out.String())
	}
	if interrupt != nil {
		t.Errorf("the view was never printed:\n%s", out.String())
	}

	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("left in its temporary directory: %v", left)
	}
	if m := mountsUnder(t, tmp); len(m) > 0 {
		t.Errorf("mounts left (namespace files or bpffs): %v", m)
	}
	// The demo creates every interface inside its namespaces; one of fakenode's
	// names showing up in the host would be a leak. (Other tests and tools may
	// add interfaces of other names meanwhile: not ours to judge.)
	for name := range hostLinks(t) {
		if !linksBefore[name] && fakenodeName.MatchString(name) {
			t.Errorf("interface %s appeared in the host namespace", name)
		}
	}
	if pids := processesWith(marker); len(pids) > 0 {
		t.Errorf("processes of the demo still running: %v", pids)
	}
	return out.String()
}

// fakenodeName matches the interface names internal/fakenode gives.
var fakenodeName = regexp.MustCompile(`^(br0|uplink|eth0|net1|(mv)?veth[0-9]{1,3})$`)

func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, l := range links {
		names[l.Attrs().Name] = true
	}
	return names
}

func mountsUnder(t *testing.T, dir string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			found = append(found, f[4])
		}
	}
	return found
}

// processesWith lists the PIDs whose environment holds marker.
func processesWith(marker string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if string(kv) == marker {
				pids = append(pids, e.Name())
			}
		}
	}
	return pids
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return fmt.Sprint(c.LocalAddr().(*net.UDPAddr).Port)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
