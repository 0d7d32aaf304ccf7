package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nsint/nsint/ifacewatch"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/exporter"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/k8s"
	"github.com/nsint/nsint/pkg/ports"
	"github.com/nsint/nsint/pkg/tc"
	"github.com/nsint/nsint/pkg/watchlist"
)

// Agent is a running nsint-agent. It implements api.Source.
type Agent struct {
	cfg      *config.Agent
	log      *slog.Logger
	dp       *datapath.Datapath
	att      *tc.Attacher
	alloc    *ports.Allocator
	watch    *ifacewatch.Watcher
	exp      *exporter.Exporter // nil without collectors
	drops    *dropreason.Resolver
	reader   atomic.Pointer[datapath.Reader]
	reg      *registry
	ev       *eventHandler
	metrics  *metrics
	format   intreport.Format
	sweeper  *sweeper
	reported *reportedPackets
	recov    *recovery

	ready   readiness
	apiAddr string // where the API listens, once it does
}

// PinDir is where the agent pins its TCX links under the BPF filesystem.
func PinDir(bpffs string) string { return filepath.Join(bpffs, "nsint") }

// attachConfig is the attachment configuration cfg implies; Cleanup uses it
// too, so both agree on what is ours.
func attachConfig(cfg *config.Agent) (tc.Config, error) {
	var mode tc.Mode
	switch cfg.AttachMode {
	case config.AttachAuto:
		mode = tc.ModeAuto
	case config.AttachTCX:
		mode = tc.ModeTCX
	case config.AttachLegacy:
		mode = tc.ModeLegacy
	default:
		return tc.Config{}, fmt.Errorf("attach mode %q: unknown", cfg.AttachMode)
	}
	return tc.Config{Mode: mode, PinDir: PinDir(cfg.BPFFSDir), Priority: uint16(cfg.TCPriority), Handle: cfg.TCHandle}, nil
}

// Run starts the agent and blocks until ctx ends or one of its long-running
// components fails: discovery, Kubernetes naming, the watchlist, the
// sweeper, the report reader, the exporter, the API server. It returns nil
// once ctx has ended, an error when the agent could not start, and the
// first failure, a *ComponentError naming the component, when one failed;
// that cancels the others and the agent stops as it does when ctx ends
// (not ready, last sweep, report reader flushed, exporter drained). On
// return, discovery and reading have stopped and queued reports have been
// flushed; attachments stay (see the package doc).
func Run(ctx context.Context, cfg *config.Agent, log *slog.Logger) error {
	return run(ctx, cfg, log, seams{})
}

// seams replace parts of the agent in tests; the zero value is what Run
// uses.
type seams struct {
	// names, when set, stands in for the Kubernetes enricher, whatever
	// cfg says.
	names func() (namer, error)
	// wrap wraps each component's function (supervisor.wrap).
	wrap func(name string, run func() error) func() error
	// running is called once every component runs and the API listens.
	running func(*Agent)
	// stopping is called once the agent has begun to stop, not ready any
	// more, before anything has stopped.
	stopping func(*Agent)
}

func run(ctx context.Context, cfg *config.Agent, log *slog.Logger, s seams) error {
	a := &Agent{cfg: cfg, log: log, reg: newRegistry()}
	a.ready.notYet("starting")
	a.sweeper = &sweeper{a: a, inner: make([]byte, 0, 14+int(cfg.SnapLen)), m: newSweepMetrics()}
	a.reported = newReportedPackets(cfg.MaxPorts)
	a.recov = newRecovery()
	a.metrics = newMetrics(a)
	a.metrics.reg.MustRegister(a.recov.m.collectors()...)
	apiServe, err := a.prepareAPI()
	if err != nil {
		return err
	}

	format, err := intreport.ParseFormat(cfg.ReportFormat)
	if err != nil {
		return err
	}
	a.format = format
	attachCfg, err := attachConfig(cfg)
	if err != nil {
		return err
	}
	if attachCfg.Mode, err = tc.ResolveMode(attachCfg.Mode); err != nil {
		return err
	}
	// TCX links are pinned there, and so is the datapath's state for the
	// next start (recover.go): without it, only legacy tc can run.
	mounted, bpffsErr := tc.MountBPFFS(cfg.BPFFSDir)
	switch {
	case bpffsErr != nil && attachCfg.Mode == tc.ModeTCX:
		return fmt.Errorf("BPF filesystem at %s: %w", cfg.BPFFSDir, bpffsErr)
	case bpffsErr != nil:
		a.recoveryOff("bpffs", fmt.Errorf("BPF filesystem at %s: %w", cfg.BPFFSDir, bpffsErr))
	case mounted:
		log.Info("mounted the BPF filesystem, which was absent", "dir", cfg.BPFFSDir)
	}
	if a.att, err = tc.New(attachCfg); err != nil {
		return err
	}
	defer a.att.Close()

	if a.alloc, err = ports.Open(cfg.StateDir, uint16(cfg.MaxPorts-1)); err != nil {
		return fmt.Errorf("port IDs: %w", err)
	}
	dpCfg := datapath.Config{
		ReportInterval:     cfg.ReportInterval,
		DropReportInterval: cfg.DropReportInterval,
		SnapLen:            uint16(cfg.SnapLen),
		MaxFlows:           uint32(cfg.MaxFlows),
		MaxPorts:           uint32(cfg.MaxPorts),
		ReportBufferBytes:  cfg.ReportBufferBytes,
		IndirectTailCall:   cfg.TailCall == "indirect",
	}
	if a.dp, err = datapath.Load(dpCfg); err != nil {
		return fmt.Errorf("load eBPF datapath: %w", err)
	}
	defer a.dp.Close()
	if bpffsErr == nil {
		a.openRecovery()
		defer a.closeRecovery()
	}
	a.ev = &eventHandler{reg: a.reg, dp: a.dp, att: a.att, alloc: a.alloc, sweeper: a.sweeper, reported: a.reported,
		metrics: a.metrics, log: log, ifacesChanged: make(chan struct{}, 1)}

	dropNames, err := datapath.DropReasonNames()
	if err != nil {
		log.Warn("kernel drop reasons unavailable; drops are reported with reason unknown", "err", err)
	}
	a.drops = dropreason.NewResolver(dropNames)
	if !a.dp.DropReasonSupported() {
		log.Warn("this kernel's skb:kfree_skb has no drop reason; drops are reported with reason unknown")
	}

	// The first component to fail stops the agent: not ready from then on,
	// saying which component failed and why.
	sup := newSupervisor(ctx, func(ce *ComponentError) { a.ready.stop("stopping: " + ce.Error()) })
	sup.wrap = s.wrap

	// The report pipeline (report reader → exporter) outlives ctx: when the
	// agent stops, the last sweep's reports and what the kernel still has
	// queued go out first (stopPipeline).
	pipeline := sup.group()
	defer pipeline.Wait()
	pipeCtx, stopExporter := context.WithCancel(context.Background())
	defer stopExporter()

	if len(cfg.Collectors) == 0 && cfg.CollectorReplicas == "" {
		log.Warn("no --collector: reports are counted but not sent")
	} else {
		a.exp, err = exporter.New(exporter.Config{
			Collectors:     cfg.Collectors,
			Replicas:       cfg.CollectorReplicas,
			ReplicaKey:     cfg.NodeName,
			ReplicaRefresh: cfg.CollectorRefresh,
			Format:         format,
			OnSendError: func(collector string, err error) {
				log.Warn("send reports", "collector", collector, "err", err)
			},
		})
		if err != nil {
			return fmt.Errorf("exporter: %w", err)
		}
		pipeline.Go("exporter", func() error { return a.exp.Run(pipeCtx) })
		defer a.exp.Close()
	}

	rd, err := a.dp.NewReader()
	if err != nil {
		return fmt.Errorf("report reader: %w", err)
	}
	a.reader.Store(rd)
	readerDone := make(chan struct{})
	var draining atomic.Bool
	pipeline.Go("report reader", func() error {
		defer close(readerDone)
		return a.readReports(rd, &draining)
	})
	defer rd.Close() // unblocks readReports on an early return

	components := sup.group()
	defer components.Wait()
	defer sup.stop()
	ctx = sup.Context()

	dropHook, err := a.dp.AttachDropHook()
	if err != nil {
		return fmt.Errorf("attach drop hook: %w", err)
	}
	defer dropHook.Close()

	if cfg.Watchlist != "" {
		// Load once here so that a bad file stops the start with a clear error.
		if _, err := watchlist.Load(cfg.Watchlist); err != nil {
			return fmt.Errorf("watchlist: %w", err)
		}
		components.Go("watchlist", func() error {
			return watchlist.Watch(ctx, cfg.Watchlist, a.applyWatchlist, func(err error) {
				log.Warn("watchlist", "err", err)
			})
		})
	}

	if err := a.startDiscovery(ctx, components); err != nil {
		return err
	}
	names, err := a.namer(s)
	if err != nil {
		return err
	}
	if names != nil {
		components.Go("kubernetes", func() error { return names.Run(ctx) })
		components.Go("kubernetes names", func() error { return a.ev.runNaming(ctx, names) })
	}

	// The API serves until the last reports are out: a collector may still
	// ask for the topology to name them.
	server := sup.group()
	defer server.Wait()
	srv, err := a.serveAPI(server, apiServe)
	if err != nil {
		return err
	}
	defer shutdownAPI(srv)
	log.Info("nsint-agent running", "node", cfg.NodeName, "switchId", cfg.SwitchID, "switchIdFrom", cfg.SwitchIDSource,
		"attachMode", a.att.Mode().String(), "format", format.String(), "collectors", cfg.Collectors, "collectorReplicas", cfg.CollectorReplicas,
		"api", srv.Addr, "apiTLS", apiServe.tls != nil, "apiAuth", cfg.APIAuth, "netnsDirs", cfg.NetnsDirs, "hostNetns", cfg.HostNetns, "flowTable", flowTableName(a.dp))

	components.Go("sweeper", func() error {
		a.sweeper.run(ctx, sweepPeriod(cfg.ReportInterval))
		return nil
	})
	if s.running != nil {
		s.running(a)
	}

	<-ctx.Done()
	a.ready.stop("stopping")
	if err := sup.Err(); err != nil {
		log.Info("stopping after a component failed; attachments stay in place for the next start (nsint-agent cleanup removes them)")
	} else {
		log.Info("stopping; attachments stay in place for the next start (nsint-agent cleanup removes them)")
	}
	if s.stopping != nil {
		s.stopping(a)
	}
	components.Wait()
	a.stopPipeline(rd, &draining, readerDone, stopExporter)
	pipeline.Wait()
	return sup.Err()
}

// namer returns what gives interfaces their Kubernetes names, nil when the
// agent runs without Kubernetes.
func (a *Agent) namer(s seams) (namer, error) {
	if s.names != nil {
		return s.names()
	}
	cfg := a.cfg
	if !config.KubernetesOn(cfg.Kubernetes, cfg.Kubeconfig) {
		return nil, nil
	}
	malformed := func(pod k8s.PodRef, err error) {
		a.log.Warn("malformed network-status annotation; the pod's interfaces stay monitored without network names",
			"pod", pod.String(), "err", err)
	}
	e, err := k8s.New(k8s.Config{Kubeconfig: cfg.Kubeconfig, NodeName: cfg.NodeName, OnMalformed: malformed})
	if err != nil {
		return nil, fmt.Errorf("kubernetes enrichment: %w", err)
	}
	a.log.Info("kubernetes enrichment on", "node", cfg.NodeName, "kubeconfig", cfg.Kubeconfig)
	return e, nil
}

// stopPipeline sends what the agent still holds before it exits: every
// flow's unreported counts (a last sweep), then every report the kernel has
// queued, then the exporter's queue (exporter.Config.FlushTimeout). Packets
// counted after the last sweep stay in the kernel's maps for the next start.
func (a *Agent) stopPipeline(rd *datapath.Reader, draining *atomic.Bool, readerDone <-chan struct{}, stopExporter func()) {
	a.sweeper.sweep("stop", datapath.SweepOptions{All: true})
	draining.Store(true)
	// Read returns what the rings hold, then ErrFlushed; a deadline would
	// wait for a Read blocked on an idle node to see a report first.
	if err := rd.Flush(); err != nil {
		a.log.Warn("flush the report reader; reports still in the kernel's ring are not sent", "err", err)
		rd.Close()
	}
	<-readerDone
	stopExporter()
}

func (a *Agent) startDiscovery(ctx context.Context, g *group) error {
	w, err := ifacewatch.New(ifacewatch.Config{Dirs: a.cfg.NetnsDirs, HostNetns: a.cfg.HostNetns, Rules: a.cfg.Select})
	if err != nil {
		return fmt.Errorf("interface discovery: %w", err)
	}
	a.watch = w
	events := make(chan ifacewatch.Event, 1024)
	g.Go("discovery", func() error { return w.Run(ctx, events) })
	g.Go("discovery events", func() error {
		a.ev.run(events)
		return nil
	})
	g.Go("readiness", func() error {
		a.becomeReady(ctx)
		return nil
	})
	return nil
}

// becomeReady marks the agent ready once the initial discovery has been
// handled, after forgetting port IDs of namespaces and interfaces that
// vanished while the agent was not running and reporting what earlier
// agents left in the kernel (their dispatchers are replaced by now).
func (a *Agent) becomeReady(ctx context.Context) {
	a.ready.notYet("initial discovery and attachment running")
	if err := a.waitInitialDiscovery(ctx); err != nil {
		return
	}
	a.pruneStalePorts()
	a.ready.notYet("reporting what earlier agents left in the kernel")
	a.recoverEarlier()
	a.ready.setReady()
	a.log.Info("initial discovery done", "namespaces", len(a.Namespaces()), "ports", a.alloc.InUse())
}

// pruneStalePorts releases port IDs held in the state file for interfaces
// and namespaces that no longer exist.
func (a *Agent) pruneStalePorts() {
	live := a.reg.liveIDs()
	var released []uint16
	for _, as := range a.alloc.Assignments() {
		if live[as.Iface] {
			continue
		}
		if err := a.alloc.Release(as.Iface); err != nil {
			a.log.Warn("release stale port", "port", as.ID, "err", err)
			continue
		}
		released = append(released, as.ID)
	}
	if len(released) > 0 {
		a.log.Info("released port IDs of interfaces gone while the agent was down", "ports", released)
	}
}

func (a *Agent) applyWatchlist(rules []watchlist.Rule) error {
	if err := a.dp.SetWatchlist(rules); err != nil {
		return err
	}
	a.log.Info("watchlist applied", "rules", len(rules))
	return nil
}

// serveAPI starts serving the API under g; shutdownAPI stops it.
func (a *Agent) serveAPI(g *group, serve *apiServing) (*http.Server, error) {
	ln, err := net.Listen("tcp", a.cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("API listen on %s: %w", a.cfg.APIAddr, err)
	}
	srv := &http.Server{
		Addr:              ln.Addr().String(),
		Handler:           serve.handler,
		ReadHeaderTimeout: 5 * time.Second,
		// A client that does not trust our certificate is not our error.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	if serve.tls != nil {
		ln = tls.NewListener(ln, serve.tls)
	}
	a.apiAddr = srv.Addr
	g.Go("api", func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve on %s: %w", srv.Addr, err)
		}
		return nil
	})
	return srv, nil
}

// shutdownAPI stops srv, giving requests in flight two seconds.
func shutdownAPI(srv *http.Server) {
	ctx, done := context.WithTimeout(context.Background(), 2*time.Second)
	defer done()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}

// Topology implements api.Source.
func (a *Agent) Topology() api.Topology {
	t := a.reg.topology(a.cfg.SwitchID, a.cfg.NodeName)
	a.addCounters(t.Ports)
	return t
}

// addCounters fills the counters of the interfaces among ports.
func (a *Agent) addCounters(ports []api.Port) {
	var ids []uint16
	var at []int
	for i := range ports {
		if !ports[i].LocalStack {
			ids = append(ids, ports[i].ID)
			at = append(at, i)
		}
	}
	counters, err := a.dp.PortCountersOf(ids)
	if err != nil {
		a.log.Warn("read port counters for the topology", "err", err)
		return
	}
	for j, i := range at {
		in, out := a.reported.get(ids[j])
		c := counters[j]
		ports[i].Counters = &api.PortCounters{
			Ingress: api.DirCounters{Packets: c.Ingress.Packets, Bytes: c.Ingress.Bytes, Drops: c.Ingress.Drops,
				Flowless: c.Ingress.Flowless, Reported: in},
			Egress: api.DirCounters{Packets: c.Egress.Packets, Bytes: c.Egress.Bytes, Drops: c.Egress.Drops,
				Flowless: c.Egress.Flowless, Reported: out},
		}
	}
}

// Namespaces implements api.Source.
func (a *Agent) Namespaces() []api.Namespace { return a.reg.namespaces() }

// Ready implements api.Source.
func (a *Agent) Ready() (bool, string) { return a.ready.get() }

// flowTableName names the kernel flow table for the start-up log.
func flowTableName(dp *datapath.Datapath) string {
	if dp.SharedFlowTable() {
		return "shared"
	}
	return "per-cpu (kernel without BPF_CMPXCHG)"
}
