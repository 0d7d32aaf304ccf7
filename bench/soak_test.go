package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/agentproc"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/netif"
)

// soakConfig sizes the soak: NSINT_SOAK=short (CI, < 5 min) or full.
type soakConfig struct {
	pods, restarts, concurrency, steady int
	outage                              time.Duration
}

var soakForms = map[string]soakConfig{
	"short": {pods: 100, restarts: 3, concurrency: 8, steady: 4, outage: 10 * time.Second},
	"full":  {pods: 500, restarts: 10, concurrency: 8, steady: 4, outage: 30 * time.Second},
}

// TestSoak runs the agent under traffic through pod churn, kill -9 restarts
// and a collector outage, with another tool's cls_bpf filter and TCX program
// on a pod interface throughout. Every check fails the run when it does not
// hold; the figures go into out/soak.json (a run file of their own) as soak_*.
func TestSoak(t *testing.T) {
	form := os.Getenv("NSINT_SOAK")
	cfg, ok := soakForms[form]
	if !ok {
		t.Skipf("soak: run by `make soak` (NSINT_SOAK=short|full, root); NSINT_SOAK=%q", form)
	}
	netnstest.RequireRoot(t)
	began := time.Now()
	figures := map[string]float64{"soak_full_form": 0, "soak_loadavg_start": loadAvg1()}
	var readyIn []float64 // restart → ready, seconds, one per restart
	if form == "full" {
		figures["soak_full_form"] = 1
	}
	defer func() {
		figures["soak_seconds"] = time.Since(began).Seconds()
		figures["soak_loadavg_end"] = loadAvg1()
		figures["soak_passed"] = 1
		if t.Failed() {
			figures["soak_passed"] = 0
		}
		all := singles(figures)
		if len(readyIn) > 0 {
			all["soak_restart_ready_seconds"] = Summarize(readyIn)
		}
		record(t, all)
	}()

	pfx := netnstest.Prefix(t)
	podDir, hubDir := netnstest.Dir(t), netnstest.Dir(t)
	node := &soakNode{podDir: podDir, prefix: pfx, hub: netnstest.New(t, hubDir, pfx+"-hub"), pods: map[int]*soakPod{}}
	t.Cleanup(func() {
		if err := node.close(); err != nil {
			t.Errorf("remove pods: %v", err)
		}
	})
	var steady []*soakPod
	for range cfg.steady {
		p, err := node.addPod()
		if err != nil {
			t.Fatal(err)
		}
		steady = append(steady, p)
	}

	// Another tool's programs, there before the agent starts.
	cls, err := newForeignCounter("foreign_cls")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cls.Close)
	tcx, err := newForeignCounter("foreign_tcx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tcx.Close)
	if err := attachForeignCls(steady[0].ns, "eth0", cls); err != nil {
		t.Fatal(err)
	}
	if err := attachForeignTCX(steady[0].ns, "eth0", tcx); err != nil {
		t.Fatal(err)
	}
	foreignSeen := func(phase string) func() {
		c0, x0 := cls.count(), tcx.count()
		return func() {
			c1, x1 := cls.count(), tcx.count()
			if c1 <= c0 || x1 <= x0 {
				t.Errorf("coexistence: during %s the foreign cls_bpf filter saw %d packets and the foreign TCX program %d: want both > 0",
					phase, c1-c0, x1-x0)
			}
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var sent atomic.Uint64
	if err := node.traffic(ctx, &sent); err != nil {
		t.Fatal(err)
	}

	rcv, err := newReceiver(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rcv.close)
	env := newAgentEnv(t, podDir)
	t.Cleanup(func() {
		if err := env.cleanupAgent(); err != nil {
			t.Error(err)
		}
	})
	p := env.start(t, rcv.String())
	procs := []*agentProc{p}
	defer func() { figures["soak_agent_warnings"] = float64(agentWarnings(t, procs)) }()
	idx := newAttachIndex(p)
	for _, sp := range steady {
		if err := waitAttachedReported(idx, rcv, sp, 30*time.Second); err != nil {
			t.Fatalf("steady pod: %v", err)
		}
	}
	time.Sleep(2 * time.Second)
	base, err := settle(p, env, steady)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baseline: %v", base)

	// Churn.
	rssBefore, _ := p.rssMiB()
	done := foreignSeen("churn")
	churn := runChurn(t, node, idx, rcv, cfg)
	done()
	figures["soak_churn_pods"] = float64(cfg.pods)
	figures["soak_churn_interfaces"] = float64(churn.interfaces)
	figures["soak_churn_unattached"] = float64(churn.unattached)
	figures["soak_churn_unreported"] = float64(churn.unreported)
	figures["soak_churn_attach_report_ms_p99"] = percentile(churn.latency, 99)
	figures["soak_churn_seconds"] = churn.elapsed.Seconds()
	if churn.unattached+churn.unreported+churn.failed > 0 {
		t.Errorf("churn: of %d interfaces, %d never attached and %d attached but never reported; %d pods failed to build: %v",
			churn.interfaces, churn.unattached, churn.unreported, churn.failed, churn.examples)
	}
	// Totals: what each churn pod's eth0 and net1 received while counted —
	// every datagram a packet at ingress and a drop (no socket) — reported
	// exactly, though the pod went right after.
	time.Sleep(reportInterval + time.Second)
	wrong := checkChurnTotals(t, rcv, churn.counted)
	figures["soak_churn_totals_wrong"] = float64(wrong)
	var after resources
	back := waitFor(60*time.Second, func() bool {
		after, err = snapshot(p, env, steady)
		return err == nil && after.equal(base)
	})
	figures["soak_fd_delta"] = float64(after.fds - base.fds)
	figures["soak_goroutine_delta"] = float64(after.goroutines - base.goroutines)
	figures["soak_attachment_delta"] = float64(after.attached - base.attached + after.ours - base.ours)
	figures["soak_pin_delta"] = float64(after.pins - base.pins)
	figures["soak_state_entry_delta"] = float64(after.stateEntries - base.stateEntries + after.topoPorts - base.topoPorts)
	mapDelta := 0
	for k, v := range after.mapEntries {
		mapDelta += v - base.mapEntries[k]
	}
	figures["soak_map_entry_delta"] = float64(mapDelta)
	rssAfter, _ := p.rssMiB()
	figures["soak_churn_rss_before_mib"], figures["soak_churn_rss_after_mib"] = rssBefore, rssAfter
	if !back {
		t.Errorf("churn: resources not back to baseline 60s after the last pod went:\n baseline: %v\n after:    %v (err %v)", base, after, err)
	} else {
		t.Logf("after churn, back to baseline: %v", after)
	}

	// Restarts.
	portChanges, extra := 0, 0
	for r := range cfg.restarts {
		done := foreignSeen(fmt.Sprintf("restart %d", r+1))
		before, err := p.Topology()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(syscall.SIGKILL, agentStopTimeout); err == nil {
			t.Fatalf("restart %d: agent exited cleanly on SIGKILL?", r+1)
		}
		start := time.Now()
		p = env.start(t, rcv.String())
		procs = append(procs, p)
		readyIn = append(readyIn, time.Since(start).Seconds())
		now, err := p.Topology()
		if err != nil {
			t.Fatal(err)
		}
		ids := map[ifaceKey]uint16{}
		for _, port := range now.Ports {
			ids[ifaceKey{uint64(port.Netns.Inode), port.Name}] = port.ID
		}
		for _, port := range before.Ports {
			if got, ok := ids[ifaceKey{uint64(port.Netns.Inode), port.Name}]; !ok || got != port.ID {
				portChanges++
				t.Errorf("restart %d: port %s in netns %d was %d, now %d (present %v)", r+1, port.Name, port.Netns.Inode, port.ID, got, ok)
			}
		}
		for _, sp := range steady {
			o, err := agentproc.Attachments(sp.ns)
			if err != nil {
				t.Fatal(err)
			}
			// eth0 and net1, ingress and egress: four hooks, one each.
			if len(o) != 4 {
				extra += len(o) - 4
				t.Errorf("restart %d: pod %s has %d attachments of ours, want exactly one per hook (4): %v", r+1, sp.ns.Name, len(o), o)
			}
		}
		n0 := rcv.count()
		if !waitFor(15*time.Second, func() bool { return rcv.count() > n0 }) {
			t.Errorf("restart %d: no report within 15s of the restart", r+1)
		}
		done()
	}
	figures["soak_restarts"] = float64(cfg.restarts)
	figures["soak_restart_port_changes"] = float64(portChanges)
	figures["soak_restart_extra_attachments"] = float64(extra)

	// Collector outage.
	done = foreignSeen("collector outage")
	if !waitFor(10*time.Second, func() bool { return rcv.count() > 0 }) {
		t.Fatal("no report before the outage")
	}
	rss0, _ := p.rssMiB()
	rcv.close()
	outStart := time.Now()
	maxRSS := rss0
	for time.Since(outStart) < cfg.outage {
		time.Sleep(500 * time.Millisecond)
		if v, err := p.rssMiB(); err == nil {
			maxRSS = max(maxRSS, v)
		}
	}
	errs, _ := p.metric("nsint_export_send_errors_total")
	if err := rcv.reopen(); err != nil {
		t.Fatalf("collector back on %s: %v", rcv, err)
	}
	back0, n0 := time.Now(), rcv.count()
	resumed := waitFor(30*time.Second, func() bool { return rcv.count() > n0 })
	resume := time.Since(back0)
	done()
	figures["soak_outage_seconds"] = cfg.outage.Seconds()
	figures["soak_outage_rss_growth_mib"] = maxRSS - rss0
	figures["soak_outage_resume_seconds"] = resume.Seconds()
	figures["soak_outage_send_errors"] = errs
	if !resumed {
		t.Errorf("collector outage: no report within 30s of the collector coming back")
	}
	if maxRSS-rss0 > 16 {
		t.Errorf("collector outage: agent RSS grew from %.1f to %.1f MiB (bound: +16 MiB)", rss0, maxRSS)
	}
	t.Logf("outage %v: RSS %.1f → max %.1f MiB, %0.f send errors, reports resumed %v after", cfg.outage, rss0, maxRSS, errs, resume.Round(time.Millisecond))

	c, x, err := hasForeign(steady[0].ns, "eth0", tcx.c.Prog)
	if err != nil || !c || !x {
		t.Errorf("coexistence: foreign cls_bpf filter present %v, foreign TCX program present %v (%v)", c, x, err)
	}
	figures["soak_foreign_cls_packets"] = float64(cls.count())
	figures["soak_foreign_tcx_packets"] = float64(tcx.count())
	figures["soak_traffic_datagrams"] = float64(sent.Load())
	figures["soak_reports"] = float64(rcv.count())
	if bad := rcv.malformed(); bad != 0 {
		t.Errorf("%d malformed report datagrams", bad)
	}
	if err := p.Stop(syscall.SIGTERM, agentStopTimeout); err != nil {
		t.Errorf("agent stop on SIGTERM: %v", err)
	}
}

// settle waits until two snapshots a second apart agree, and returns it.
func settle(p *agentProc, env *agentEnv, steady []*soakPod) (resources, error) {
	var prev resources
	for i := 0; i < 30; i++ {
		cur, err := snapshot(p, env, steady)
		if err != nil {
			return cur, err
		}
		if i > 0 && cur.equal(prev) {
			return cur, nil
		}
		prev = cur
		time.Sleep(time.Second)
	}
	return prev, fmt.Errorf("agent resources did not settle in 30s: %v", prev)
}

// waitAttachedReported waits until both interfaces of the pod are attached
// (agent log) and a report named each after its attachment.
func waitAttachedReported(idx *attachIndex, rcv *receiver, sp *soakPod, timeout time.Duration) error {
	var missing string
	ok := waitFor(timeout, func() bool {
		for _, name := range []string{"eth0", "net1"} {
			// Not an earlier pod's interface whose namespace inode this
			// pod's reuses.
			a, ok := idx.since(ifaceKey{sp.ns.Inode, name}, sp.created)
			if !ok {
				missing = name + " not attached"
				return false
			}
			at, ok := rcv.portSeen(a.port)
			if !ok || at.Before(a.at.Add(-time.Millisecond)) {
				missing = fmt.Sprintf("%s (port %d) not reported", name, a.port)
				return false
			}
		}
		return true
	})
	if !ok {
		return fmt.Errorf("pod %s: %s after %v", sp.ns.Name, missing, timeout)
	}
	return nil
}

// minPodLife is the shortest life of a churn pod; countedLife is how long
// it lives on once its traffic is counted (six datagrams to each interface).
const (
	minPodLife  = 500 * time.Millisecond
	countedLife = 300 * time.Millisecond
)

type churnResult struct {
	interfaces, unattached, unreported, failed int
	latency                                    []float64 // pod creation began → both interfaces attached and reported, ms
	elapsed                                    time.Duration
	examples                                   []string
	counted                                    []*soakPod // pods whose traffic was counted, gone now
}

// runChurn creates and deletes cfg.pods pods, cfg.concurrency at a time:
// each lives until both its interfaces are attached and reported (at most
// 30 s) and at least minPodLife, then goes.
func runChurn(t *testing.T, node *soakNode, idx *attachIndex, rcv *receiver, cfg soakConfig) churnResult {
	var mu sync.Mutex
	var res churnResult
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(cfg.pods) {
				sp, err := node.addPod()
				if err != nil {
					mu.Lock()
					res.failed++
					res.examples = append(res.examples, err.Error())
					mu.Unlock()
					continue
				}
				err = waitAttachedReported(idx, rcv, sp, 30*time.Second)
				lat := float64(time.Since(sp.created).Microseconds()) / 1000
				if err == nil {
					for i, name := range []string{"eth0", "net1"} {
						a, _ := idx.since(ifaceKey{sp.ns.Inode, name}, sp.created)
						sp.ports[i] = a.port
					}
					sp.counted.Store(true)
				}
				mu.Lock()
				res.interfaces += 2
				if err == nil {
					res.latency = append(res.latency, lat)
					res.counted = append(res.counted, sp)
				} else {
					for _, name := range []string{"eth0", "net1"} {
						a, ok := idx.since(ifaceKey{sp.ns.Inode, name}, sp.created)
						switch at, seen := rcv.portSeen(a.port); {
						case !ok:
							res.unattached++
						case !seen || at.Before(a.at.Add(-time.Millisecond)):
							res.unreported++
						}
					}
					if len(res.examples) < 10 {
						res.examples = append(res.examples, err.Error())
					}
				}
				mu.Unlock()
				// Live at least minPodLife, and a few datagrams counted,
				// under traffic, before going; the last datagrams reach it
				// before it goes.
				time.Sleep(time.Until(sp.created.Add(minPodLife)))
				if err == nil {
					time.Sleep(countedLife)
				}
				sp.quiet.Store(true)
				time.Sleep(100 * time.Millisecond)
				if err := node.removePod(sp); err != nil {
					t.Errorf("remove pod %s: %v", sp.ns.Name, err)
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	t.Logf("churn: %d pods in %v; pod creation began → both interfaces attached and reported p50 %.0f ms, p99 %.0f ms, max %.0f ms",
		cfg.pods, res.elapsed.Round(time.Millisecond), percentile(res.latency, 50), percentile(res.latency, 99), percentile(res.latency, 100))
	return res
}

// reportInterval is the agent's --report-interval in the soak (the default).
const reportInterval = time.Second

// checkChurnTotals compares, for every counted churn pod, the datagrams sent
// to each interface with the packets and drops the reports add up to at its
// ingress; it returns how many interfaces differ.
func checkChurnTotals(t *testing.T, rcv *receiver, pods []*soakPod) int {
	t.Helper()
	wrong, total := 0, uint64(0)
	for _, sp := range pods {
		for i, name := range []string{"eth0", "net1"} {
			sent := sp.sent[i].Load()
			total += sent
			ip := []netip.Addr{sp.ethIP, sp.net1IP}[i]
			got := rcv.sum(flowAt{sp.ports[i], netif.Ingress, ip, countedPort})
			if got.packets != sent || got.drops != sent {
				wrong++
				if wrong <= 10 {
					t.Errorf("churn totals: pod %s %s (port %d): sent %d, reports carry %d packets and %d drops",
						sp.ns.Name, name, sp.ports[i], sent, got.packets, got.drops)
				}
			}
		}
	}
	if wrong > 0 {
		t.Errorf("churn totals: %d of %d interfaces differ from what was sent", wrong, 2*len(pods))
	} else {
		t.Logf("churn totals: all %d interfaces of %d pods deleted right after their traffic carry exactly the %d datagrams sent, as packets and as drops",
			2*len(pods), len(pods), total)
	}
	return wrong
}

// agentWarnings counts the WARN and ERROR lines of every agent run and logs
// the first of each message.
func agentWarnings(t *testing.T, procs []*agentProc) int {
	n := 0
	seen := map[string]bool{}
	for i, p := range procs {
		for _, e := range parseLog(p.Log.String()) {
			if lv := e.fields["level"]; lv != "WARN" && lv != "ERROR" {
				continue
			}
			n++
			if !seen[e.msg] {
				seen[e.msg] = true
				t.Logf("agent run %d: %s %s %v", i, e.fields["level"], e.msg, e.fields)
			}
		}
	}
	t.Logf("agent warnings and errors over %d runs: %d", len(procs), n)
	return n
}
