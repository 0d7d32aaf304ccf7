package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/otelcoltest"
	"github.com/nsint/nsint/pkg/collector"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// Simulated node shape: pods per node, interfaces per pod (eth0 and a Multus
// net1), and the agent's report interval, as deployed by default.
const (
	simPods           = 200
	simIfacesPerPod   = 2
	simReportInterval = time.Second
	// collectorCPULimit is the CPU limit of the collector in deploy/base:
	// what one replica has at default settings.
	collectorCPULimit = 2
)

// TestBenchCollectors measures nsint-collector (the real binary, default
// flags) under simulated agents: each node has simPods pods of
// simIfacesPerPod interfaces, NSINT_BENCH_COLLECTOR_FLOWS active flows on each
// (default 2), and sends one report per flow and interface every report
// interval, encoded and sent by pkg/exporter exactly as the agent does
// (v2.0, sendmmsg with segmentation offload), each node choosing its replica
// through --collector-replicas' code (rendezvous hashing of its node name
// over a name that resolves to the replicas). NSINT_BENCH_COLLECTOR_NODES
// nodes (default 100) send for NSINT_BENCH_COLLECTOR_SECONDS (default 10)
// against one replica, then two (127.0.0.1 and ::1, one port, as behind a
// headless Service), alternating, NSINT_BENCH_ROUNDS times (default 5). Every
// replica knows every node's topology (--agents, served by the test), so
// each report updates flow rows as in production.
//
// Figures per form (r1: one replica, r2: two): reports received per second
// and per CPU-second of the collectors, the share of the reports sent that
// were received, and the peak RSS of a replica. From r1: how many nodes one
// replica serves at default settings — the smaller of its CPU bound (reports
// per CPU-second × the CPU limit of deploy/base / a node's report rate) and
// its row bound (--max-flows rows / a node's rows).
func TestBenchCollectors(t *testing.T) {
	if os.Getenv("NSINT_BENCH") == "" {
		t.Skip("benchmark: run by `make bench` and `make bench-collectors` (NSINT_BENCH=1; no root needed)")
	}
	nodes := envInt("NSINT_BENCH_COLLECTOR_NODES", 100)
	flows := envInt("NSINT_BENCH_COLLECTOR_FLOWS", 2)
	seconds := envInt("NSINT_BENCH_COLLECTOR_SECONDS", 10)
	rounds := envInt("NSINT_BENCH_ROUNDS", 5)
	bin := collectorBinary(t)
	topo := serveTopologies(t, nodes)
	perNode := simPods * simIfacesPerPod * flows // reports per report interval

	res := map[int]*formResults{1: {}, 2: {}}
	load0 := loadAvg1()
	for round := range rounds {
		for _, replicas := range []int{1, 2} {
			r := runCollectorRound(t, bin, topo, replicas, nodes, perNode, time.Duration(seconds)*time.Second)
			t.Logf("round %d, %d replica(s): sent %d, received %d (%.1f%%), %.0f reports/s, %.0f per CPU-second, RSS %.1f MiB",
				round, replicas, r.sent, r.received, 100*float64(r.received)/float64(r.sent), r.perSec, r.perCPUSec, r.rssMiB)
			res[replicas].add(r)
		}
	}

	nodeRate := float64(perNode) / simReportInterval.Seconds()
	rowsPerNode := float64(perNode) // one row per flow and interface
	cpuBound := Median(res[1].perCPUSec) * collectorCPULimit / nodeRate
	rowBound := float64(collector.DefaultMaxFlows) / rowsPerNode
	figures := map[string]Figure{
		"collector_node_reports_per_sec":        Single(nodeRate),
		"collector_nodes":                       Single(float64(nodes)),
		"collector_nodes_per_replica_cpu_bound": Single(cpuBound),
		"collector_nodes_per_replica_row_bound": Single(rowBound),
		"collector_nodes_per_replica":           Single(min(cpuBound, rowBound)),
		"collector_loadavg":                     Single(max(load0, loadAvg1())),
	}
	for replicas, fr := range res {
		p := fmt.Sprintf("collector_r%d_", replicas)
		figures[p+"reports_per_sec"] = Summarize(fr.perSec)
		figures[p+"reports_per_cpu_sec"] = Summarize(fr.perCPUSec)
		figures[p+"received_ratio"] = Summarize(fr.ratio)
		figures[p+"rss_mib"] = Summarize(fr.rss)
	}
	record(t, figures)
}

// formResults are the rounds of one form (number of replicas).
type formResults struct{ perSec, perCPUSec, ratio, rss []float64 }

func (f *formResults) add(r roundResult) {
	f.perSec = append(f.perSec, r.perSec)
	f.perCPUSec = append(f.perCPUSec, r.perCPUSec)
	f.ratio = append(f.ratio, float64(r.received)/float64(r.sent))
	f.rss = append(f.rss, r.rssMiB)
}

type roundResult struct {
	sent, received    uint64
	perSec, perCPUSec float64
	rssMiB            float64 // the largest replica's peak
}

// collectorBinary is nsint-collector from NSINT_BENCH_BIN_DIR, else built.
func collectorBinary(t *testing.T) string {
	t.Helper()
	if p := filepath.Join(binDir, "nsint-collector"); fileExists(p) {
		return p
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "../cmd/nsint-collector")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nsint-collector: %v\n%s", err, out)
	}
	return filepath.Join(dir, "nsint-collector")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// simSwitchID is node i's switch ID (198.18.x.y as a number, as an agent
// derives it from its node IP).
func simSwitchID(i int) uint32 { return 0xC6120000 + uint32(i) }

// serveTopologies serves node i's topology at <base>/n/<i>/api/v1/topology
// (the agent API's contract: switchId, node, ports with id, name, ifindex,
// netns, pod) and returns the agent URLs.
func serveTopologies(t *testing.T, nodes int) []string {
	t.Helper()
	docs := make([][]byte, nodes)
	for i := range docs {
		ports := make([]map[string]any, 0, simPods*simIfacesPerPod)
		for p := range simPods {
			pod := map[string]any{"namespace": "bench", "name": fmt.Sprintf("pod-%d", p), "uid": fmt.Sprintf("uid-%d-%d", i, p)}
			for f, name := range []string{"eth0", "net1"}[:simIfacesPerPod] {
				ports = append(ports, map[string]any{"id": 1 + p*simIfacesPerPod + f, "name": name, "ifindex": 2 + f,
					"netns": map[string]any{"inode": 4026532000 + p}, "pod": pod, "mac": "02:00:00:00:00:01", "ips": []string{}})
			}
		}
		b, err := json.Marshal(map[string]any{"switchId": simSwitchID(i), "node": fmt.Sprintf("node-%d", i), "generation": 1, "ports": ports})
		if err != nil {
			t.Fatal(err)
		}
		docs[i] = b
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var i int
		if _, err := fmt.Sscanf(r.URL.Path, "/n/%d/api/v1/topology", &i); err != nil || i < 0 || i >= len(docs) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(docs[i])
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	urls := make([]string, nodes)
	for i := range urls {
		urls[i] = fmt.Sprintf("http://%s/n/%d", ln.Addr(), i)
	}
	return urls
}

// replicaProc is one running nsint-collector.
type replicaProc struct {
	cmd     *exec.Cmd
	api     string
	done    chan error
	stopped bool
}

// startReplicas starts n collectors on one UDP port, at 127.0.0.1 and (the
// second) ::1, each with its own HTTP port on 127.0.0.1, and waits until each
// knows every node's topology.
func startReplicas(t *testing.T, bin string, topo []string, n int) ([]*replicaProc, uint16) {
	t.Helper()
	hosts := []string{"127.0.0.1", "::1"}[:n]
	for range 20 {
		port := freeUDPPort(t, hosts)
		var procs []*replicaProc
		for _, h := range hosts {
			api := net.JoinHostPort("127.0.0.1", strconv.Itoa(otelcoltest.FreePort(t)))
			cmd := exec.Command(bin, "--listen", net.JoinHostPort(h, strconv.Itoa(int(port))), "--api-addr", api,
				"--agents", strings.Join(topo, ","))
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatalf("start collector: %v", err)
			}
			p := &replicaProc{cmd: cmd, api: "http://" + api, done: make(chan error, 1)}
			go func() { p.done <- cmd.Wait() }()
			procs = append(procs, p)
		}
		t.Cleanup(func() { stopReplicas(procs) })
		ready := true
		for _, p := range procs {
			ready = ready && p.waitTopologies(t, len(topo))
		}
		if ready {
			return procs, port
		}
		stopReplicas(procs) // the port was taken meanwhile: another try
	}
	t.Fatal("collectors did not start")
	return nil, 0
}

func stopReplicas(procs []*replicaProc) {
	for _, p := range procs {
		if !p.stopped {
			p.cmd.Process.Signal(os.Interrupt) // our own child, by PID
		}
	}
	for _, p := range procs {
		if p.stopped {
			continue
		}
		p.stopped = true
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
}

// waitTopologies waits until the collector fetched n topologies; false when
// it exited.
func (p *replicaProc) waitTopologies(t *testing.T, n int) bool {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			return false
		default:
		}
		var body struct {
			Agents []struct {
				Ports int `json:"ports"`
			} `json:"agents"`
		}
		if getJSON(p.api+"/api/v1/agents", &body) == nil {
			known := 0
			for _, a := range body.Agents {
				if a.Ports > 0 {
					known++
				}
			}
			if known == n {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("collector %s: topologies not all fetched in 60 s", p.api)
	return false
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func freeUDPPort(t *testing.T, hosts []string) uint16 {
	t.Helper()
	for range 50 {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(hosts[0])})
		if err != nil {
			t.Fatal(err)
		}
		port := c.LocalAddr().(*net.UDPAddr).Port
		ok := true
		for _, h := range hosts[1:] {
			c2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(h), Port: port})
			if err != nil {
				ok = false
				break
			}
			c2.Close()
		}
		c.Close()
		if ok {
			return uint16(port)
		}
	}
	t.Fatal("no UDP port free on every replica address")
	return 0
}

// replicaName resolves the replicas' name to their addresses, as cluster
// DNS answers for a headless Service.
type replicaName []netip.Addr

func (r replicaName) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}

// runCollectorRound runs one load round against n fresh replicas and
// measures them.
func runCollectorRound(t *testing.T, bin string, topo []string, n, nodes, perNode int, d time.Duration) roundResult {
	t.Helper()
	procs, port := startReplicas(t, bin, topo, n)
	defer stopReplicas(procs)
	name := replicaName{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}[:n]

	exps := make([]*exporter.Exporter, nodes)
	for i := range exps {
		e, err := exporter.New(exporter.Config{Replicas: fmt.Sprintf("collectors.bench:%d", port),
			ReplicaKey: fmt.Sprintf("node-%d", i), Resolver: name, Format: intreport.V20})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		exps[i] = e
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range exps {
		wg.Go(func() { e.Run(ctx) })
	}

	cpu0 := make([]float64, n)
	for i, p := range procs {
		cpu0[i] = pidCPUSeconds(t, p.cmd.Process.Pid)
	}
	start := time.Now()
	generate(exps, perNode, d)
	cancel()
	wg.Wait()
	var sent uint64
	for _, e := range exps {
		sent += e.Stats().Collectors[0].Sent
	}
	// What the kernel queued is read within moments; wait until the count
	// stops growing.
	var received uint64
	for prev := uint64(1<<64 - 1); received != prev; time.Sleep(500 * time.Millisecond) {
		prev, received = received, 0
		for _, p := range procs {
			var s collector.Stats
			if err := getJSON(p.api+"/api/v1/stats", &s); err != nil {
				t.Fatal(err)
			}
			received += s.Reports
		}
	}
	elapsed := time.Since(start).Seconds()
	var cpu, rss float64
	for i, p := range procs {
		cpu += pidCPUSeconds(t, p.cmd.Process.Pid) - cpu0[i]
		kb, err := procStatusKB(p.cmd.Process.Pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		rss = max(rss, float64(kb)/1024)
	}
	return roundResult{sent: sent, received: received, perSec: float64(received) / min(elapsed, d.Seconds()),
		perCPUSec: float64(received) / cpu, rssMiB: rss}
}

// generate makes every node send perNode reports per report interval for d:
// one report per flow and interface, the flows refreshed in turn, paced in
// 10 ms steps.
func generate(exps []*exporter.Exporter, perNode int, d time.Duration) {
	const step = 10 * time.Millisecond
	perStep := max(1, perNode*int(step)/int(simReportInterval))
	frame := make([]byte, 64)
	copy(frame, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0,
		198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x01, 0xbb, 0, 30})
	next := make([]int, len(exps))
	r := intreport.Report{Kind: intreport.Flow, Direction: netif.Ingress, Tracked: true,
		HopLatency: 2000, Inner: frame}
	tick := time.NewTicker(step)
	defer tick.Stop()
	for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
		for i, e := range exps {
			r.SwitchID = simSwitchID(i)
			for range perStep {
				k := next[i] % perNode
				next[i]++
				// Flow k%flows of interface k/flows: its own source port.
				port := uint16(1 + k%(simPods*simIfacesPerPod))
				r.IngressPort, r.ObservationPort = port, port
				frame[34], frame[35] = byte(k>>8), byte(k)
				r.Packets, r.Bytes = 10, 1000
				e.Enqueue(&r)
			}
		}
	}
}

// pidCPUSeconds is the user + system CPU time of a process.
func pidCPUSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	v, err := cpuSecondsOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
