package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/agentproc"
	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/tc"
)

// binDir holds the binaries TestMain builds.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(func() int {
		// The tests load small programs of their own (probes, foreign
		// filters): on kernels that charge BPF memory to RLIMIT_MEMLOCK
		// (before 5.11), the agents' maps count against the same user.
		if err := rlimit.RemoveMemlock(); err != nil {
			fmt.Fprintln(os.Stderr, "lift RLIMIT_MEMLOCK:", err)
		}
		// NSINT_E2E_BIN_DIR points at prebuilt nsint-agent and
		// nsint-collector binaries (a VM has no Go toolchain).
		if dir := os.Getenv("NSINT_E2E_BIN_DIR"); dir != "" {
			binDir = dir
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "nsint-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		build := exec.Command("go", "build", "-o", dir+"/", "../cmd/nsint-agent", "../cmd/nsint-collector")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		return m.Run()
	}())
}

// receiver is a UDP collector on loopback that decodes every report.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	reps []received
	bad  []error
}

type received struct {
	format intreport.Format
	rep    intreport.DecodedReport
	tuple  flowkey.Tuple
	at     time.Time
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{conn: c}
	t.Cleanup(func() { c.Close() })
	go r.loop()
	return r
}

func (r *receiver) addr() string { return r.conn.LocalAddr().String() }

func (r *receiver) loop() {
	buf := make([]byte, 65536)
	var d intreport.Decoded
	for {
		n, err := r.conn.Read(buf)
		if err != nil {
			return
		}
		err = intreport.Decode(buf[:n], &d)
		r.mu.Lock()
		if err != nil {
			r.bad = append(r.bad, err)
		}
		for _, rep := range d.Reports {
			rec := received{format: d.Format, rep: rep, at: time.Now()}
			rec.rep.Inner = append([]byte(nil), rep.Inner...)
			flowkey.Parse(rec.rep.Inner, flowkey.LayerEthernet, &rec.tuple)
			r.reps = append(r.reps, rec)
		}
		r.mu.Unlock()
	}
}

func (r *receiver) snapshot() ([]received, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.reps...), append([]error(nil), r.bad...)
}

// agentProc is a running nsint-agent.
type agentProc struct{ *agentproc.Proc }

// agentEnv is what every run of the agent in one test shares.
type agentEnv struct {
	netnsDir, stateDir, bpffs string
	collector                 string
	extra                     []string
	// interval is --report-interval: 200ms unless a test sets another.
	interval string
}

func newAgentEnv(t *testing.T, netnsDir, collector string, extra ...string) *agentEnv {
	t.Helper()
	e := &agentEnv{netnsDir: netnsDir, stateDir: t.TempDir(), bpffs: t.TempDir(), collector: collector, extra: extra,
		interval: "200ms"}
	if _, err := tc.MountBPFFS(e.bpffs); err != nil {
		t.Fatalf("mount private bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(e.bpffs, unix.MNT_DETACH) })
	return e
}

func (e *agentEnv) commonArgs() []string {
	return append([]string{
		"--netns-dir", e.netnsDir, "--host-netns=false", "--state-dir", e.stateDir, "--bpffs", e.bpffs,
		"--node-name", "e2e-node",
	}, e.extra...)
}

// start runs the agent and waits until its API answers ready.
func (e *agentEnv) start(t *testing.T) *agentProc {
	t.Helper()
	args := append(e.commonArgs(), "--collector", e.collector, "--report-interval", e.interval, "--log-level", "debug")
	proc, err := agentproc.Start(filepath.Join(binDir, "nsint-agent"), args...)
	if err != nil {
		t.Fatal(err)
	}
	p := &agentProc{proc}
	t.Cleanup(func() {
		p.stop(t, syscall.SIGKILL)
		if t.Failed() {
			t.Logf("agent log:\n%s", p.Log.String())
		}
	})
	if err := p.WaitReady(scaled(30 * time.Second)); err != nil {
		t.Fatalf("%v\n%s", err, p.Log.String())
	}
	return p
}

// stop signals the agent and waits for it to exit; it returns the exit error.
func (p *agentProc) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	err := p.Stop(sig, scaled(10*time.Second))
	if errors.Is(err, agentproc.ErrNotStopped) {
		t.Error(err)
	}
	return err
}

func (p *agentProc) topology(t *testing.T) api.Topology {
	t.Helper()
	topo, err := p.Topology()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func (p *agentProc) metrics(t *testing.T) string {
	t.Helper()
	b, err := p.Get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// portName is "<netns file>:<interface>" for assertions.
func portName(topo api.Topology, id uint16) string {
	for _, p := range topo.Ports {
		if p.ID == id {
			return p.Netns.Name + ":" + p.Name
		}
	}
	return fmt.Sprintf("unknown-port-%d", id)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	timeout = scaled(timeout)
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs argv in ns and fails the test on error.
func run(t *testing.T, ns *netnstest.NS, argv ...string) string {
	t.Helper()
	out, err := fakenode.Exec(ns.Path, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// cleanupArgs runs `nsint-agent cleanup` with the env's scope.
func (e *agentEnv) cleanup(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "nsint-agent"), append([]string{"cleanup"}, e.commonArgs()...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("nsint-agent cleanup: %v\n%s", err, out)
	}
	return string(out)
}

// ourAttachments lists what of ours is attached in ns: TCX programs whose
// name starts with nsint_ and cls_bpf filters named nsint-*.
func ourAttachments(t *testing.T, ns *netnstest.NS) []string {
	t.Helper()
	found, err := agentproc.Attachments(ns)
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// foreignName names the cls_bpf filter another tool would own.
const foreignName = "foreign-tool"

// addForeignFilter attaches, as another tool would, a cls_bpf filter at
// priority 7 on dev's ingress in ns (creating clsact), with a program that
// passes every packet on.
func addForeignFilter(t *testing.T, ns *netnstest.NS, dev string) {
	t.Helper()
	addClsBPF(t, ns, dev, "ingress", 7, foreignName, -1)
}

// addClsBPF attaches, as another tool would, a cls_bpf filter named name at
// priority prio on dev's hook dir in ns (creating clsact when absent), whose
// program returns verdict: -1 (TC_ACT_UNSPEC) passes the packet on to the
// next filter, 0 (TC_ACT_OK) ends the chain.
func addClsBPF(t *testing.T, ns *netnstest.NS, dev, dir string, prio uint16, name string, verdict int32) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type: ebpf.SchedCLS, License: "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, verdict), asm.Return()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close() // the filter holds its own reference
	h := ns.NetlinkHandle(t)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	qdisc := &netlink.GenericQdisc{QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}, QdiscType: "clsact"}
	if err := h.QdiscAdd(qdisc); err != nil && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("add clsact: %v", err)
	}
	parent := uint32(netlink.HANDLE_MIN_INGRESS)
	if dir == "egress" {
		parent = netlink.HANDLE_MIN_EGRESS
	}
	f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index,
		Parent: parent, Priority: prio, Handle: 1, Protocol: unix.ETH_P_ALL},
		Fd: prog.FD(), Name: name, DirectAction: true}
	if err := h.FilterAdd(f); err != nil {
		t.Fatalf("add cls_bpf filter %s on %s %s: %v", name, dev, dir, err)
	}
}

func hasForeignFilter(t *testing.T, ns *netnstest.NS, dev string) bool {
	t.Helper()
	h := ns.NetlinkHandle(t)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	filters, err := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == foreignName && bf.Priority == 7 {
			return true
		}
	}
	return false
}

// expectedAttachMode is the attachMode the topology must show for
// --attach-mode mode: "auto" resolves to TCX where the kernel has it and to
// legacy tc otherwise. NSINT_NO_TCX=1 (older-kernel VMs) says the kernel must
// lack TCX, so that auto is proven to fall back.
func expectedAttachMode(t *testing.T, mode string) string {
	t.Helper()
	switch mode {
	case "tc", "tcx":
		return mode
	}
	want := "tc"
	err := tc.HaveTCX()
	switch {
	case err == nil && os.Getenv("NSINT_NO_TCX") == "1":
		t.Fatal("NSINT_NO_TCX=1 but the kernel has TCX")
	case err == nil:
		want = "tcx"
	case !errors.Is(err, ebpf.ErrNotSupported):
		t.Fatalf("probe TCX: %v", err)
	}
	// hack/vm/summarize reads this line for its summary.
	t.Logf("attach mode auto resolves to %s on this kernel", want)
	return want
}

// scaled stretches one of the suite's time bounds by NSINT_E2E_TIMEOUT_SCALE
// (a whole number, default 1): under software emulation (hack/vm) everything
// takes several times longer.
func scaled(d time.Duration) time.Duration {
	if n, err := strconv.Atoi(os.Getenv("NSINT_E2E_TIMEOUT_SCALE")); err == nil && n > 1 {
		return d * time.Duration(n)
	}
	return d
}

// TestStopWhenIdle: an agent on a node where nothing happens stops on
// SIGTERM at once, though no report will ever wake its perf reader.
func TestStopWhenIdle(t *testing.T) {
	netnstest.RequireRoot(t)
	env := newAgentEnv(t, netnstest.Dir(t), freeUDPAddr(t))
	ag := env.start(t)
	time.Sleep(time.Second) // a sweep or two, nothing to report
	if err := ag.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("idle agent on SIGTERM: %v", err)
	}
}
