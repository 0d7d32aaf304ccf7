package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/otlpexport"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/kubeauth"
)

// Collector receives reports and serves the views. Create it with New.
type Collector struct {
	cfg      Config
	table    *flowtable.Table
	resolver *topology.Resolver
	pending  *pendingQueue
	seq      *sequences
	ing      ingestCounters
	sock     socketCounters
	metrics  *metrics
	handler  http.Handler
	resolved chan struct{}        // topology changed: replay pending reports
	sources  chan struct{}        // a source became an agent or was rejected: replay pending reports
	otlp     *otlpexport.Exporter // nil: no OTLP export
	certs    *kubeauth.CertFiles  // nil: plain HTTP
}

// New validates cfg and builds a collector; nothing runs until Run or Serve.
func New(cfg Config) (*Collector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Collector{
		cfg:      cfg,
		table:    flowtable.New(cfg.MaxFlows),
		pending:  newPendingQueue(cfg.MaxPending),
		seq:      newSequences(cfg.MaxSources),
		resolved: make(chan struct{}, 1),
		sources:  make(chan struct{}, 1),
	}
	client, err := agentClient(cfg)
	if err != nil {
		return nil, err
	}
	r, err := topology.New(topology.Config{
		Agents: cfg.Agents, AgentPort: cfg.AgentAPIPort, Refresh: cfg.TopologyRefresh,
		Client: client, HTTPS: cfg.AgentTLSCA != "",
		OnChange:  func() { signal(c.resolved) },
		OnSources: func() { signal(c.sources) },
	})
	if err != nil {
		return nil, &ConfigError{"agents", fmt.Sprint(cfg.Agents), err.Error()}
	}
	c.resolver = r
	if cfg.OTLP.Enabled() {
		if c.otlp, err = otlpexport.New(cfg.OTLP, c.table); err != nil {
			return nil, err
		}
	}
	c.metrics = newMetrics(c)
	c.handler = c.newHandler()
	if err := c.setUpAuth(); err != nil {
		return nil, err
	}
	return c, nil
}

// Table is the collector's flow table.
func (c *Collector) Table() *flowtable.Table { return c.table }

// Resolver is the collector's topology resolver.
func (c *Collector) Resolver() *topology.Resolver { return c.resolver }

// Handler serves the views: /api/v1/…, /metrics and the page at /.
func (c *Collector) Handler() http.Handler { return c.handler }

// Run listens on cfg.Listen (UDP) and cfg.APIAddr (HTTP) and serves until ctx
// ends.
func (c *Collector) Run(ctx context.Context) error {
	udpAddr, err := net.ResolveUDPAddr("udp", c.cfg.Listen)
	if err != nil {
		return fmt.Errorf("resolve listen address %s: %w", c.cfg.Listen, err)
	}
	conn, err := net.ListenUDP("udp", udpAddr)
	if err != nil {
		return fmt.Errorf("listen udp %s: %w", c.cfg.Listen, err)
	}
	defer conn.Close()
	ln, err := net.Listen("tcp", c.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", c.cfg.APIAddr, err)
	}
	defer ln.Close()
	return c.Serve(ctx, []*net.UDPConn{conn}, ln)
}

// Serve receives reports on conns and serves HTTP on ln (nil: no HTTP) until
// ctx ends. It takes ownership of conns and ln and closes them on return.
// With an OTLP endpoint it exports the rows' increments meanwhile, and once
// the rest has stopped, a last time.
func (c *Collector) Serve(ctx context.Context, conns []*net.UDPConn, ln net.Listener) error {
	if c.otlp != nil {
		// Its own context, ended after every report received was applied,
		// so that the last export has them.
		expCtx, stopExport := context.WithCancel(context.Background())
		exported := make(chan struct{})
		go func() {
			defer close(exported)
			c.otlp.Run(expCtx)
		}()
		defer func() {
			stopExport()
			<-exported
		}()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns)+2)
	for _, conn := range conns {
		if err := prepareSocket(conn, c.cfg.ReadBuffer); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- c.receive(ctx, conn)
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs <- c.resolver.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		c.replayLoop(ctx)
	}()
	var srv *http.Server
	if ln != nil {
		if tc := c.tlsConfig(); tc != nil {
			ln = tls.NewListener(ln, tc)
		}
		srv = &http.Server{Handler: c.handler, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
			}
		}()
	}
	var first error
	select {
	case <-ctx.Done():
	case first = <-errs:
	}
	cancel()
	for _, conn := range conns {
		conn.Close()
	}
	if srv != nil {
		shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(shutCtx)
		done()
	}
	wg.Wait()
	return first
}

// signal wakes the receiver of ch without blocking (a wake-up already
// waiting stands for this one too).
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// replayLoop applies pending reports after each topology change, relabels the
// table and forgets ports that disappeared; after a source became an agent or
// was rejected, it applies or drops that source's pending reports; every refresh period it asks
// again for the topologies that pending reports still wait for.
func (c *Collector) replayLoop(ctx context.Context) {
	tick := time.NewTicker(c.cfg.TopologyRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.resolved:
			c.table.Relabel(c.resolver.Lookup)
			c.table.ForgetPorts(func(k topology.Key) bool { return c.resolver.Lookup(k) != nil })
			c.pending.drain(c.replay)
		case <-c.sources:
			c.pending.drain(c.replay)
		case <-tick.C:
			for src, sw := range c.pending.sources() {
				c.resolver.Request(src, sw)
			}
		}
	}
}
