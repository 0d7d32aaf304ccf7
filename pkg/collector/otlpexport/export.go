package otlpexport

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/nsint/nsint/pkg/collector/flowtable"
)

// ScopeName is the instrumentation scope of the records.
const ScopeName = "github.com/nsint/nsint/pkg/collector/otlpexport"

// Backoff between attempts to send one batch: from initialBackoff, doubling
// up to maxBackoff, each wait drawn from [½, 1] of the current step.
const (
	initialBackoff = 500 * time.Millisecond
	maxBackoff     = 30 * time.Second
)

// Source is where row increments come from (a *flowtable.Table).
type Source interface {
	TrackDeltas(max int)
	TakeDeltas(max int, fn func(*flowtable.Delta)) int
	DeltaStats() flowtable.DeltaStats
}

// Reasons a record is given up (label "reason" of the dropped metric).
const (
	DropExportFailed = "export_failed" // its batch kept failing for MaxRetryTime
	DropQueueFull    = "queue_full"    // emitted while the queue was full
	DropShutdown     = "shutdown"      // still queued when the flush at shutdown ran out of time
	DropEvicted      = "evicted"       // its row was evicted from the table before it was taken
)

var dropReasons = []string{DropExportFailed, DropQueueFull, DropShutdown, DropEvicted}

// Stats are the export counters.
type Stats struct {
	Records         uint64            `json:"records"`  // records made from row increments
	Exported        uint64            `json:"exported"` // records the endpoint accepted
	Dropped         map[string]uint64 `json:"dropped"`  // records given up, by reason
	DroppedPackets  uint64            `json:"droppedPackets"`
	DroppedBytes    uint64            `json:"droppedBytes"`
	DroppedDrops    uint64            `json:"droppedDrops"`
	Requests        uint64            `json:"requests"` // export requests (attempts) made
	FailedRequests  uint64            `json:"failedRequests"`
	Queued          int               `json:"queued"`
	QueueSize       int               `json:"queueSize"`
	PendingRows     int               `json:"pendingRows"` // rows changed and not yet taken
	LastError       string            `json:"lastError,omitempty"`
	LastErrorTime   *time.Time        `json:"lastErrorTime,omitempty"`
	LastSuccessTime *time.Time        `json:"lastSuccessTime,omitempty"`
}

// counters are updated by the loops and read by Stats.
type counters struct {
	records, exported, requests, failed atomic.Uint64
	droppedPackets, droppedBytes        atomic.Uint64
	droppedDrops                        atomic.Uint64
	dropped                             [3]atomic.Uint64 // DropExportFailed, DropQueueFull, DropShutdown

	mu          sync.Mutex
	lastErr     error
	lastErrTime time.Time
	lastOK      time.Time
}

// Exporter exports a Source's row increments. Create it with New; Run does
// the work.
type Exporter struct {
	cfg      Config
	src      Source
	exp      sdklog.Exporter
	q        *queue
	provider *sdklog.LoggerProvider
	logger   log.Logger
	n        counters
}

// New validates cfg (whose Endpoint must be set) and prepares the exporter;
// nothing is sent before Run.
func New(cfg Config, src Source) (*Exporter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, &FieldError{"otlp-endpoint", "", "want an endpoint"}
	}
	t, err := cfg.target()
	if err != nil {
		return nil, err
	}
	opts := []otlploghttp.Option{
		otlploghttp.WithEndpoint(t.hostPort),
		otlploghttp.WithTimeout(cfg.Timeout),
		// Retries are ours (send), so that every failure is counted and a
		// refused connection is retried too.
		otlploghttp.WithRetry(otlploghttp.RetryConfig{Enabled: false}),
	}
	if t.path != "" {
		opts = append(opts, otlploghttp.WithURLPath(t.path))
	}
	if t.insecure {
		opts = append(opts, otlploghttp.WithInsecure())
	}
	exp, err := otlploghttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter for %s: %w", cfg.Endpoint, err)
	}
	// The resource: ours, plus OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME.
	res, err := resource.New(context.Background(), resource.WithFromEnv(),
		resource.WithAttributes(attribute.String("service.name", "nsint-collector")))
	if err != nil {
		return nil, fmt.Errorf("otlp resource: %w", err)
	}
	e := &Exporter{cfg: cfg, src: src, exp: exp}
	e.q = newQueue(cfg.QueueSize, e.dropRecord(DropQueueFull))
	e.provider = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(e.q))
	e.logger = e.provider.Logger(ScopeName)
	// Keep as many evicted rows' increments as the queue holds records.
	src.TrackDeltas(cfg.QueueSize)
	return e, nil
}

// Run exports every Config.Interval until ctx ends, then takes every change
// left and sends what it can within Config.Timeout. It returns nil: export
// failures are counted (Stats), never fatal.
func (e *Exporter) Run(ctx context.Context) error {
	sendCtx, stopSend := context.WithCancel(context.Background())
	defer stopSend()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		e.send(sendCtx)
	}()

	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-tick.C:
		}
		e.take()
	}

	// Flush: what is queued goes out within Timeout; the rest is dropped.
	e.q.close()
	timer := time.NewTimer(e.cfg.Timeout)
	select {
	case <-sent:
	case <-timer.C:
		stopSend()
		<-sent
	}
	timer.Stop()
	for _, r := range e.q.drain() {
		e.dropRecord(DropShutdown)(&r)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.provider.Shutdown(shutCtx); err != nil {
		e.noteError(fmt.Errorf("shut down the log provider: %w", err))
	}
	if err := e.exp.Shutdown(shutCtx); err != nil {
		e.noteError(fmt.Errorf("shut down the otlp exporter: %w", err))
	}
	return nil
}

// take turns as many changed rows as the queue has room for into records.
func (e *Exporter) take() {
	room := e.q.room()
	if room <= 0 {
		return
	}
	now := time.Now()
	var rec log.Record
	var attrs []attribute.KeyValue
	// Emit runs under the table's lock; it only copies the record into the
	// queue.
	n := e.src.TakeDeltas(room, func(d *flowtable.Delta) {
		rec = log.Record{}
		attrs = fillRecord(&rec, d, now, attrs)
		e.logger.Emit(context.Background(), rec)
	})
	e.n.records.Add(uint64(n))
	e.q.signal()
}

// send exports batches until the queue is closed and empty or ctx ends.
func (e *Exporter) send(ctx context.Context) {
	for {
		batch := e.q.next(ctx, e.cfg.BatchSize)
		if batch == nil {
			return
		}
		e.sendBatch(ctx, batch)
		e.q.done(len(batch))
	}
}

// sendBatch exports batch, retrying with backoff for up to MaxRetryTime;
// a batch that still fails then, or when ctx ends, is dropped and counted.
func (e *Exporter) sendBatch(ctx context.Context, batch []sdklog.Record) {
	giveUp := time.Now().Add(e.cfg.MaxRetryTime)
	step := initialBackoff
	for {
		e.n.requests.Add(1)
		actx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
		err := e.exp.Export(actx, batch)
		cancel()
		if err == nil {
			e.n.exported.Add(uint64(len(batch)))
			e.n.mu.Lock()
			e.n.lastOK = time.Now()
			e.n.mu.Unlock()
			return
		}
		e.n.failed.Add(1)
		e.noteError(fmt.Errorf("export %d records to %s: %w", len(batch), e.cfg.Endpoint, err))
		wait := step/2 + rand.N(step/2+1)
		reason := DropExportFailed
		if ctx.Err() != nil {
			reason = DropShutdown
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(giveUp) {
			for i := range batch {
				e.dropRecord(reason)(&batch[i])
			}
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		step = min(2*step, maxBackoff)
	}
}

// dropRecord returns the function that counts a record given up for reason.
func (e *Exporter) dropRecord(reason string) func(*sdklog.Record) {
	i := 0
	for i < len(e.n.dropped) && dropReasons[i] != reason {
		i++
	}
	return func(r *sdklog.Record) {
		e.n.dropped[i].Add(1)
		r.WalkAttributes(func(kv attribute.KeyValue) bool {
			switch kv.Key {
			case AttrPackets:
				e.n.droppedPackets.Add(uint64(kv.Value.AsInt64()))
			case AttrBytes:
				e.n.droppedBytes.Add(uint64(kv.Value.AsInt64()))
			case AttrDrops:
				e.n.droppedDrops.Add(uint64(kv.Value.AsInt64()))
			}
			return true
		})
	}
}

func (e *Exporter) noteError(err error) {
	e.n.mu.Lock()
	e.n.lastErr, e.n.lastErrTime = err, time.Now()
	e.n.mu.Unlock()
}

// Stats returns a snapshot of the counters. Rows evicted from the table with
// increments not taken count as dropped (DropEvicted), with what they held.
func (e *Exporter) Stats() Stats {
	ds := e.src.DeltaStats()
	s := Stats{
		Records: e.n.records.Load(), Exported: e.n.exported.Load(),
		Dropped:        make(map[string]uint64, len(dropReasons)),
		DroppedPackets: e.n.droppedPackets.Load() + ds.LostPackets,
		DroppedBytes:   e.n.droppedBytes.Load() + ds.LostBytes,
		DroppedDrops:   e.n.droppedDrops.Load() + ds.LostDrops,
		Requests:       e.n.requests.Load(), FailedRequests: e.n.failed.Load(),
		Queued: e.q.len(), QueueSize: e.cfg.QueueSize, PendingRows: ds.Changed,
	}
	for i := range e.n.dropped {
		s.Dropped[dropReasons[i]] = e.n.dropped[i].Load()
	}
	s.Dropped[DropEvicted] = ds.Lost
	e.n.mu.Lock()
	if e.n.lastErr != nil {
		t := e.n.lastErrTime.UTC()
		s.LastError, s.LastErrorTime = e.n.lastErr.Error(), &t
	}
	if !e.n.lastOK.IsZero() {
		t := e.n.lastOK.UTC()
		s.LastSuccessTime = &t
	}
	e.n.mu.Unlock()
	return s
}
