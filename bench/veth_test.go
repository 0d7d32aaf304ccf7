package bench

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/intreport"
)

// vethNet is two namespaces joined by a veth pair: a client (a0,
// 198.18.100.1) and a server (b0, 198.18.100.2) running iperf3 -s.
type vethNet struct {
	dir            string
	client, server *netnstest.NS
	clientIP       netip.Addr
	serverIP       netip.Addr
}

const iperfPort = 5201

func newVethNet(t *testing.T) *vethNet {
	t.Helper()
	dir := netnstest.Dir(t)
	pfx := netnstest.Prefix(t)
	n := &vethNet{dir: dir, client: netnstest.New(t, dir, pfx+"-cli"), server: netnstest.New(t, dir, pfx+"-srv"),
		clientIP: netip.MustParseAddr("198.18.100.1"), serverIP: netip.MustParseAddr("198.18.100.2")}
	hc := n.client.NetlinkHandle(t)
	hs := n.server.NetlinkHandle(t)
	if _, err := addVeth(hc, "a0", n.server, "b0"); err != nil {
		t.Fatal(err)
	}
	if err := upWithAddr(hc, "a0", netip.PrefixFrom(n.clientIP, 30)); err != nil {
		t.Fatal(err)
	}
	if err := upWithAddr(hs, "b0", netip.PrefixFrom(n.serverIP, 30)); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("nsenter", "--net="+n.server.Path, "iperf3", "-s", "-B", n.serverIP.String(),
		"-p", strconv.Itoa(iperfPort))
	if err := srv.Start(); err != nil {
		t.Fatalf("start iperf3 server: %v", err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	// Wait for the server to listen.
	if !waitFor(10*time.Second, func() bool {
		out, _ := exec.Command("nsenter", "--net="+n.server.Path, "ss", "-Hltn", "sport = :"+strconv.Itoa(iperfPort)).Output()
		return len(out) > 0
	}) {
		t.Fatal("iperf3 server did not listen within 10s")
	}
	return n
}

// iperfResult is the part of iperf3 -J we read.
type iperfResult struct {
	End struct {
		SumReceived *struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       float64 `json:"packets"`
		} `json:"sum_received"`
		Sum *struct {
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Packets       float64 `json:"packets"`
			LostPercent   float64 `json:"lost_percent"`
		} `json:"sum"`
	} `json:"end"`
	Error string `json:"error"`
}

// iperfAffinity is iperf3's -A argument pinning the client and the server
// to one CPU each ("0,1"), or "" for none. Unpinned, the scheduler moves
// the two between the CPUs of a small machine from run to run, and UDP with
// small datagrams flips between sender-bound and receiver-bound: the ratio
// measured the placement more than the agent. NSINT_BENCH_IPERF_CPUS
// overrides it ("none" for no pinning).
func iperfAffinity() string {
	switch v := os.Getenv("NSINT_BENCH_IPERF_CPUS"); {
	case v == "none":
		return ""
	case v != "":
		return v
	case runtime.NumCPU() >= 2:
		return "0,1"
	}
	return ""
}

// iperf runs one iperf3 client in the client namespace, the first second
// of each run left out of the figures (-O 1). It returns the receiver's
// bits/s.
func (n *vethNet) iperf(seconds int, args ...string) (float64, iperfResult, error) {
	argv := []string{"--net=" + n.client.Path, "iperf3", "-c", n.serverIP.String(), "-p",
		strconv.Itoa(iperfPort), "-t", strconv.Itoa(seconds), "-J"}
	if cpus := iperfAffinity(); cpus != "" {
		argv = append(argv, "-A", cpus)
	}
	argv = append(argv, args...)
	var res iperfResult
	for attempt := 0; attempt < 3; attempt++ {
		out, err := exec.Command("nsenter", argv...).Output()
		res = iperfResult{}
		if jerr := json.Unmarshal(out, &res); jerr != nil {
			return 0, res, fmt.Errorf("iperf3 %v: %v (%v)", args, jerr, err)
		}
		if res.Error != "" { // server busy with the previous test's teardown
			time.Sleep(time.Second)
			continue
		}
		switch {
		case res.End.SumReceived != nil && res.End.SumReceived.BitsPerSecond > 0:
			return res.End.SumReceived.BitsPerSecond, res, nil
		case res.End.Sum != nil:
			return res.End.Sum.BitsPerSecond * (1 - res.End.Sum.LostPercent/100), res, nil
		}
		return 0, res, fmt.Errorf("iperf3 %v: no result", args)
	}
	return 0, res, fmt.Errorf("iperf3 %v: %s", args, res.Error)
}

// vethRatios are one agent's rounds: with it / without it, and the UDP loss.
type vethRatios struct{ tcp, udp, sent, lostOn, lostOff []float64 }

func (v *vethRatios) add(on, off vethRun) {
	v.tcp = append(v.tcp, on.tcp/off.tcp)
	v.udp = append(v.udp, on.udp64/off.udp64)
	v.sent = append(v.sent, on.udpSentPPS/off.udpSentPPS)
	v.lostOn, v.lostOff = append(v.lostOn, on.udpLost), append(v.lostOff, off.udpLost)
}

// byKey are the ratios by results key.
func (v *vethRatios) byKey() map[string][]float64 {
	return map[string][]float64{"veth_tcp_ratio": v.tcp, "veth_udp64_ratio": v.udp, "veth_udp64_sent_ratio": v.sent}
}

// vethRun is one measurement of both throughputs, the UDP loss, and the
// datagrams the UDP sender got out per second: the sender's CPU carries
// both hooks a datagram crosses (its own egress and, in the softirq that
// delivers it, the peer's ingress), so this is the rate that shows their
// cost when the receiver is not the bottleneck.
type vethRun struct{ tcp, udp64, udpLost, udpSentPPS float64 }

// mean is the run between r and o, figure by figure.
func (r vethRun) mean(o vethRun) vethRun {
	return vethRun{tcp: (r.tcp + o.tcp) / 2, udp64: (r.udp64 + o.udp64) / 2,
		udpLost: (r.udpLost + o.udpLost) / 2, udpSentPPS: (r.udpSentPPS + o.udpSentPPS) / 2}
}

func (n *vethNet) measure(t *testing.T, seconds int) vethRun {
	t.Helper()
	tcp, _, err := n.iperf(seconds, "-O", "1")
	if err != nil {
		t.Fatal(err)
	}
	udp, res, err := n.iperf(seconds, "-O", "1", "-u", "-l", "64", "-b", "0")
	if err != nil {
		t.Fatal(err)
	}
	r := vethRun{tcp: tcp, udp64: udp}
	if s := res.End.Sum; s != nil && s.Seconds > 0 {
		r.udpLost = s.LostPercent
		r.udpSentPPS = s.Packets / s.Seconds
	}
	return r
}

// waitAttached waits until the topology shows every named interface of the
// bench's namespaces attached.
func waitAttached(t *testing.T, p *agentProc, want int) {
	t.Helper()
	ok := waitFor(30*time.Second, func() bool {
		topo, err := p.Topology()
		if err != nil {
			return false
		}
		n := 0
		for _, port := range topo.Ports {
			if !port.LocalStack && port.AttachMode != "" {
				n++
			}
		}
		return n >= want
	})
	if !ok {
		t.Fatalf("fewer than %d interfaces attached after 30s", want)
	}
}

// TestBenchVeth measures throughput over a veth pair with the agent attached
// at both ends against the same without it: each run with the agent sits
// between two runs without it (B A B A … B) and is compared with their mean,
// in short runs, so that drift of a shared host cancels out (a linear one
// exactly), with iperf3's client and server pinned to one CPU each
// (iperfAffinity). The agent runs as users run it (log level info, its
// reports sent to a collector that receives and decodes them). The keys:
// veth_tcp_ratio (received bits/s), veth_udp64_ratio (received bits/s,
// 64-byte datagrams) and veth_udp64_sent_ratio (datagrams/s the sender got
// out: the one that shows the hooks' cost), each the median of the rounds
// with its quartiles. Then, with the agent attached: packets per report,
// and drop-to-report latency of first drops (drop_report_latency_*) and of
// repeated drops of one flow inside the drop rate limit
// (drop_report_latency_ratelimited_*). NSINT_BENCH_VETH_ROUNDS (default
// 12) and NSINT_BENCH_IPERF_SECONDS (default 2) size it. With NSINT_BENCH_BEFORE_AGENT naming the agent of the
// commit before the sweep (make bench builds it), each round runs it too,
// in its own bracket (B A B A' B, the order of A and A' swapped every other
// round): its ratios go under <key>_before, and the current agent's less its
// own, round by round, under <key>_after_minus_before.
func TestBenchVeth(t *testing.T) {
	requireBench(t)
	rounds := envInt("NSINT_BENCH_VETH_ROUNDS", 12)
	seconds := envInt("NSINT_BENCH_IPERF_SECONDS", 2)
	beforeAgent := os.Getenv("NSINT_BENCH_BEFORE_AGENT")
	n := newVethNet(t)
	rcv, err := newReceiver(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.close)
	env := newAgentEnv(t, n.dir)
	env.logLevel = "info" // as users run it; nothing here reads its debug lines
	t.Cleanup(func() {
		if err := env.cleanupAgent(); err != nil {
			t.Error(err)
		}
	})

	// withAgent runs fn with agent ("" for the current one) attached.
	withAgent := func(agent string, fn func(p *agentProc)) {
		env.agent = agent
		p := env.start(t, rcv.String())
		waitAttached(t, p, 2)
		fn(p)
		// A stop that hangs fails the benchmark but not its figures: the
		// agent is killed after the timeout and cleaned up as any other.
		if err := p.Stop(syscall.SIGTERM, agentStopTimeout); err != nil {
			t.Errorf("stop agent %s: %v", env.agentBinary(), err)
		}
		if err := env.cleanupAgent(); err != nil {
			t.Fatal(err)
		}
		env.agent = ""
	}
	t.Logf("iperf3 -A %q (client,server CPUs), %d s per run after a 1 s warm-up", iperfAffinity(), seconds)
	arms := []string{""}
	if beforeAgent != "" {
		arms = append(arms, beforeAgent)
		t.Logf("before: %s", beforeAgent)
	}
	ratios := map[string]*vethRatios{}
	for _, a := range arms {
		ratios[a] = &vethRatios{}
	}
	loads := []float64{loadAvg1()}
	prev := n.measure(t, seconds) // the first bracket
	for r := range rounds {
		order := slices.Clone(arms)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, agent := range order {
			var on vethRun
			withAgent(agent, func(*agentProc) { on = n.measure(t, seconds) })
			next := n.measure(t, seconds)
			off := prev.mean(next)
			label := ""
			if agent != "" {
				label = " (before)"
			}
			t.Logf("round %d%s: tcp %.2f / %.2f Gbit/s, udp64 %.1f / %.1f Mbit/s received, %.0f / %.0f k datagrams/s sent, %.0f%% / %.0f%% lost (with / mean of the runs without before and after), load %.2f",
				r, label,
				on.tcp/1e9, off.tcp/1e9, on.udp64/1e6, off.udp64/1e6, on.udpSentPPS/1e3, off.udpSentPPS/1e3, on.udpLost, off.udpLost, loadAvg1())
			ratios[agent].add(on, off)
			loads = append(loads, loadAvg1())
			prev = next
		}
	}

	now := ratios[""]
	figures := map[string]Figure{
		"veth_loadavg": Summarize(loads), "veth_udp64_lost_percent_with": Summarize(now.lostOn),
		"veth_udp64_lost_percent_without": Summarize(now.lostOff),
	}
	for key, v := range now.byKey() {
		figures[key] = Summarize(v)
	}
	if beforeAgent != "" {
		was := ratios[beforeAgent].byKey()
		for key, v := range now.byKey() {
			diff := make([]float64, len(v))
			for i := range v {
				diff[i] = v[i] - was[key][i]
			}
			figures[key+"_before"] = Summarize(was[key])
			figures[key+"_after_minus_before"] = Summarize(diff)
		}
	}

	// Packets per report and drop latency, at default settings.
	withAgent("", func(p *agentProc) {
		ppr, reports := packetsPerReport(t, n, rcv, p)
		first := dropLatency(t, n, rcv)
		repeated := dropLatencyRepeated(t, n, rcv)
		for k, v := range singles(map[string]float64{
			"packets_per_report": ppr, "packets_per_report_reports": float64(reports),
			"drop_report_latency_p99_ms": percentile(first, 99), "drop_report_latency_p50_ms": percentile(first, 50),
			"drop_report_latency_probes":             float64(len(first)),
			"drop_report_latency_ratelimited_p99_ms": percentile(repeated, 99),
			"drop_report_latency_ratelimited_p50_ms": percentile(repeated, 50),
			"drop_report_latency_ratelimited_drops":  float64(len(repeated)),
		}) {
			figures[k] = v
		}
		if bad := rcv.malformed(); bad != 0 {
			t.Errorf("%d malformed report datagrams", bad)
		}
	})
	record(t, figures)
}

// packetsPerReport runs one steady UDP flow (6 250 packets/s of 1 000 bytes)
// for 10 s and divides the packets the flow's reports carry by their number.
func packetsPerReport(t *testing.T, n *vethNet, rcv *receiver, p *agentProc) (float64, int) {
	t.Helper()
	const cport = 40001
	rcv.reset()
	_, res, err := n.iperf(10, "-u", "-l", "1000", "-b", "50M", "--cport", strconv.Itoa(cport))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // the last refresh of the flow
	reps := rcv.matching(func(r *report) bool {
		return r.kind == intreport.Flow && r.tuple.Proto == 17 && r.tuple.SrcPort == cport &&
			r.tuple.DstPort == iperfPort && r.tuple.Src == n.clientIP
	})
	var pkts uint64
	for _, r := range reps {
		pkts += r.packets
	}
	if len(reps) == 0 {
		t.Fatal("no report of the steady flow")
	}
	sent := 0.0
	if res.End.Sum != nil {
		sent = res.End.Sum.Packets
	}
	t.Logf("steady flow: %d reports carrying %d packets (iperf3 sent %.0f; two observation points)", len(reps), pkts, sent)
	return float64(pkts) / float64(len(reps)), len(reps)
}

// dropLatency sends UDP datagrams from the client to closed ports of the
// server (the server's kernel drops them: no socket), each to its own port
// so each is its own drop flow's first drop, and times send → drop report
// received. It returns the latencies, ms (NSINT_BENCH_DROP_PROBES probes,
// default 200).
func dropLatency(t *testing.T, n *vethNet, rcv *receiver) []float64 {
	t.Helper()
	probes := envInt("NSINT_BENCH_DROP_PROBES", 200)
	conn := n.clientUDP(t)
	rcv.reset()
	const basePort = 20000
	sentAt := make([]time.Time, probes)
	for i := range probes {
		sentAt[i] = time.Now()
		if _, err := conn.WriteToUDP([]byte("nsint-drop-probe"), &net.UDPAddr{IP: n.serverIP.AsSlice(), Port: basePort + i}); err != nil {
			t.Fatalf("probe %d: %v", i, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	got := map[int]time.Time{}
	for _, r := range rcv.matching(func(r *report) bool {
		return r.kind == intreport.Drop && r.tuple.Proto == 17 && r.tuple.Dst == n.serverIP
	}) {
		i := int(r.tuple.DstPort) - basePort
		if i >= 0 && i < probes {
			if _, ok := got[i]; !ok {
				got[i] = r.at
			}
		}
	}
	var lat []float64
	for i, at := range got {
		lat = append(lat, float64(at.Sub(sentAt[i]).Microseconds())/1000)
	}
	if len(got) < probes {
		t.Errorf("drop reports for %d of %d probes", len(got), probes)
	}
	if len(lat) == 0 {
		t.Fatal("no drop report")
	}
	t.Logf("first drop → report latency over %d probes: p50 %.2f ms, p99 %.2f ms, max %.2f ms", len(lat),
		percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	return lat
}

// clientUDP is a UDP socket in the client namespace, closed at cleanup.
func (n *vethNet) clientUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	var conn *net.UDPConn
	err := n.client.Do(func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: n.clientIP.AsSlice()})
		return err
	})
	if err != nil {
		t.Fatalf("client UDP socket: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// dropLatencyRepeated times repeated drops of one flow, which the datapath's
// drop rate limit (--drop-report-interval, default 25 ms, per flow, hook
// and reason: bpf/headers/nsint_drop.h) folds into the flow's next report
// or the sweep's. A few flows (closed ports of the server, none a first-drop
// probe's) each get a datagram every 10 ms for NSINT_BENCH_DROP_REPEAT_SECONDS
// (default 3); a flow's reports, in the order they arrive, carry its drops
// in the order they were sent (each report's packet count is its drops), so
// each drop but the flow's first is timed send → the report that carries
// it. It returns those latencies, ms.
func dropLatencyRepeated(t *testing.T, n *vethNet, rcv *receiver) []float64 {
	t.Helper()
	const (
		flows    = 4
		basePort = 30000 // above dropLatency's probe ports
		gap      = 10 * time.Millisecond
	)
	seconds := envInt("NSINT_BENCH_DROP_REPEAT_SECONDS", 3)
	conn := n.clientUDP(t)
	rcv.reset()
	sentAt := make([][]time.Time, flows)
	for start := time.Now(); time.Since(start) < time.Duration(seconds)*time.Second; {
		for f := range flows {
			sentAt[f] = append(sentAt[f], time.Now())
			if _, err := conn.WriteToUDP([]byte("nsint-drop-repeat"), &net.UDPAddr{IP: n.serverIP.AsSlice(), Port: basePort + f}); err != nil {
				t.Fatalf("repeated drop, flow %d: %v", f, err)
			}
		}
		time.Sleep(gap)
	}
	// The last folded drops leave with a sweep (every 250 ms at the default
	// report interval).
	time.Sleep(time.Second)
	var lat []float64
	for f := range flows {
		reps := rcv.matching(func(r *report) bool {
			return r.kind == intreport.Drop && r.tuple.Proto == 17 && r.tuple.Dst == n.serverIP &&
				r.tuple.DstPort == uint16(basePort+f)
		})
		slices.SortStableFunc(reps, func(a, b report) int { return a.at.Compare(b.at) })
		next := 0 // the first drop the next report carries
		for _, r := range reps {
			for i := next; i < min(next+int(r.packets), len(sentAt[f])); i++ {
				if i > 0 {
					lat = append(lat, float64(r.at.Sub(sentAt[f][i]).Microseconds())/1000)
				}
			}
			next += int(r.packets)
		}
		if next != len(sentAt[f]) {
			t.Errorf("repeated drops, flow %d: reports carry %d drops, %d sent", f, next, len(sentAt[f]))
		}
	}
	if len(lat) == 0 {
		t.Fatal("no report of a repeated drop")
	}
	t.Logf("repeated drop → report latency over %d drops of %d flows: p50 %.2f ms, p99 %.2f ms, max %.2f ms",
		len(lat), flows, percentile(lat, 50), percentile(lat, 99), percentile(lat, 100))
	return lat
}
