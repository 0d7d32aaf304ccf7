package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/agentproc"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/tc"
)

// binDir holds nsint-agent; TestMain builds it unless NSINT_BENCH_BIN_DIR
// names a directory with a prebuilt one (make bench passes bin/).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		if os.Getenv("NSINT_BENCH") == "" && os.Getenv("NSINT_SOAK") == "" {
			return m.Run() // every test skips: nothing to build
		}
		if dir := os.Getenv("NSINT_BENCH_BIN_DIR"); dir != "" {
			abs, err := filepath.Abs(dir)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			binDir = abs
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nsint-bench-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+"/", "../cmd/nsint-agent")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build nsint-agent: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		return m.Run()
	}())
}

// requireBench skips unless the benchmarks were asked for (and runs as root).
func requireBench(t *testing.T) {
	t.Helper()
	if os.Getenv("NSINT_BENCH") == "" {
		t.Skip("benchmark: run by `make bench` (NSINT_BENCH=1, root)")
	}
	netnstest.RequireRoot(t)
}

// agentEnv is what the runs of the agent in one benchmark share: the watched
// netns directory, the state directory and a private BPF filesystem.
type agentEnv struct {
	netnsDir, stateDir, bpffs string
	extra                     []string
	// agent is the nsint-agent binary: binDir's unless set.
	agent string
	// logLevel is the agent's --log-level: debug unless set (the attach
	// latency figures read its debug lines; the throughput benchmarks run
	// it at info, as users do).
	logLevel string
}

func (e *agentEnv) agentBinary() string {
	if e.agent != "" {
		return e.agent
	}
	return filepath.Join(binDir, "nsint-agent")
}

// newAgentEnv makes the directories under root (removed by the caller's
// cleanup) and mounts the private bpffs; cleanup stops nothing, it unmounts.
func newAgentEnv(t *testing.T, netnsDir string, extra ...string) *agentEnv {
	t.Helper()
	e := &agentEnv{netnsDir: netnsDir, stateDir: t.TempDir(), bpffs: t.TempDir(), extra: extra}
	if _, err := tc.MountBPFFS(e.bpffs); err != nil {
		t.Fatalf("mount private bpffs at %s: %v", e.bpffs, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(e.bpffs, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount private bpffs %s: %v", e.bpffs, err)
		}
	})
	return e
}

func (e *agentEnv) scopeArgs() []string {
	return []string{"--netns-dir", e.netnsDir, "--host-netns=false", "--state-dir", e.stateDir, "--bpffs", e.bpffs}
}

// cleanupAgent runs `nsint-agent cleanup` of the env's binary for its scope.
func (e *agentEnv) cleanupAgent() error {
	out, err := exec.Command(e.agentBinary(), append([]string{"cleanup"}, e.scopeArgs()...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nsint-agent cleanup: %w\n%s", err, out)
	}
	return nil
}

// agentProc is one running nsint-agent, with the benchmarks' own probes
// (metrics, /proc figures).
type agentProc struct{ *agentproc.Proc }

// agentStopTimeout bounds how long an agent may take to exit after a signal.
const agentStopTimeout = 15 * time.Second

// start runs the agent with collector as its only collector and waits until
// it is ready. The agent is killed at cleanup if still running.
func (e *agentEnv) start(t *testing.T, collector string, extra ...string) *agentProc {
	t.Helper()
	p := e.spawn(t, collector, extra...)
	if err := p.WaitReady(60 * time.Second); err != nil {
		t.Fatalf("%v\n%s", err, tail(p.Log.String(), 40))
	}
	return p
}

func (e *agentEnv) spawn(t *testing.T, collector string, extra ...string) *agentProc {
	t.Helper()
	level := e.logLevel
	if level == "" {
		level = "debug"
	}
	args := append(e.scopeArgs(), "--collector", collector, "--node-name", "bench-node", "--log-level", level)
	args = append(append(args, e.extra...), extra...)
	proc, err := agentproc.Start(e.agentBinary(), args...)
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{proc}
	t.Cleanup(func() {
		p.Stop(syscall.SIGKILL, agentStopTimeout)
		if t.Failed() {
			t.Logf("agent %d log (tail):\n%s", p.PID(), tail(p.Log.String(), 60))
		}
	})
	return p
}

// metric sums every series of a metric (by exact name) in /metrics.
func (p *agentProc) metric(name string) (float64, error) {
	b, err := p.Get("/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return 0, fmt.Errorf("metric %s absent", name)
	}
	return sum, nil
}

// procStatus returns a field of /proc/<pid>/status in kB (VmRSS, VmHWM).
func procStatusKB(pid int, field string) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func (p *agentProc) rssMiB() (float64, error) {
	kb, err := procStatusKB(p.PID(), "VmRSS")
	return float64(kb) / 1024, err
}

func (p *agentProc) peakRSSMiB() (float64, error) {
	kb, err := procStatusKB(p.PID(), "VmHWM")
	return float64(kb) / 1024, err
}

// fds counts the agent's open file descriptors.
func (p *agentProc) fds() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.PID()))
	return len(ents), err
}

// logEntry is one parsed slog text line of the agent.
type logEntry struct {
	at     time.Time
	msg    string
	fields map[string]string
}

// parseLog parses the agent's key=value log lines; quoted values are
// unquoted.
func parseLog(s string) []logEntry {
	var out []logEntry
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "time=") {
			continue
		}
		e := logEntry{fields: map[string]string{}}
		for rest := line; rest != ""; {
			eq := strings.IndexByte(rest, '=')
			if eq < 0 {
				break
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+1:]
			var val string
			if strings.HasPrefix(rest, `"`) {
				end := 1
				for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
					end++
				}
				if end >= len(rest) {
					end = len(rest) - 1
				}
				val, _ = strconv.Unquote(rest[:end+1])
				rest = rest[end+1:]
			} else {
				sp := strings.IndexByte(rest, ' ')
				if sp < 0 {
					sp = len(rest)
				}
				val, rest = rest[:sp], rest[sp:]
			}
			e.fields[key] = val
		}
		e.at, _ = time.Parse(time.RFC3339Nano, e.fields["time"])
		e.msg = e.fields["msg"]
		out = append(out, e)
	}
	return out
}

// ifaceKey names an interface by its namespace inode and name.
type ifaceKey struct {
	netns uint64
	name  string
}

// attachedEvent is one "interface attached" log line.
type attachedEvent struct {
	at   time.Time
	port uint16
}

// attachments returns the agent's "interface attached" lines by interface
// (the first one of each).
func attachments(log string) map[ifaceKey]attachedEvent {
	out := map[ifaceKey]attachedEvent{}
	for _, a := range attachLines(log) {
		if _, ok := out[a.key]; !ok {
			out[a.key] = a.attachedEvent
		}
	}
	return out
}

type attachLine struct {
	key ifaceKey
	attachedEvent
}

// attachLines returns the agent's "interface attached" lines in order.
func attachLines(log string) []attachLine {
	var out []attachLine
	for _, e := range parseLog(log) {
		if e.msg != "interface attached" {
			continue
		}
		ino, _ := strconv.ParseUint(e.fields["netns"], 10, 64)
		port, _ := strconv.ParseUint(e.fields["port"], 10, 16)
		out = append(out, attachLine{ifaceKey{ino, e.fields["iface"]}, attachedEvent{at: e.at, port: uint16(port)}})
	}
	return out
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

// attachIndex follows one agent's log for "interface attached" lines.
type attachIndex struct {
	mu  sync.Mutex
	p   *agentProc
	off int
	// latest is the last attachment of each key: namespace inodes are
	// reused, so a key can name a later pod's interface too.
	latest map[ifaceKey]attachedEvent
}

func newAttachIndex(p *agentProc) *attachIndex {
	return &attachIndex{p: p, latest: map[ifaceKey]attachedEvent{}}
}

// since returns the latest attachment of k logged so far if it is not
// older than t: the attachment of an interface of a namespace made at t,
// not of an earlier one whose inode it reuses.
func (x *attachIndex) since(k ifaceKey, t time.Time) (attachedEvent, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.readLocked()
	v, ok := x.latest[k]
	if !ok || v.at.Before(t) {
		return attachedEvent{}, false
	}
	return v, true
}

func (x *attachIndex) readLocked() {
	s, off := x.p.Log.LinesSince(x.off)
	x.off = off
	for _, a := range attachLines(s) {
		x.latest[a.key] = a.attachedEvent
	}
}

// cpuSeconds is the user + system CPU time the agent has used.
func (p *agentProc) cpuSeconds() (float64, error) { return cpuSecondsOf(p.PID()) }

// cpuSecondsOf is the user + system CPU time process pid has used.
func cpuSecondsOf(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which may hold spaces): state is 3rd,
	// utime 14th and stime 15th of the whole line.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}
