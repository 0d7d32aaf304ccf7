package exporter

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

// Defaults for the zero values of Config.
const (
	DefaultQueueLen      = 4096
	DefaultBatchSize     = 64
	DefaultRetryInterval = time.Second
	DefaultErrorInterval = time.Second
	DefaultFlushTimeout  = 500 * time.Millisecond
)

// SlotSize is the room for one encoded report in the queue, in bytes: the
// longest payload intreport produces (headers plus an inner frame truncated to
// intreport.MaxInner). A report that would not fit is refused and counted in
// Stats.EncodeDrops, which stays 0 unless intreport breaks its own bound.
const SlotSize = intreport.MaxPayloadLen

// maxBatch bounds BatchSize to what one sendmmsg call accepts (UIO_MAXIOV).
const maxBatch = 1024

// maxGSOSegments is the most datagrams the kernel cuts from one message
// with UDP_SEGMENT (UDP_MAX_SEGMENTS: 64 before 6.x raised it).
const maxGSOSegments = 64

// ErrNoCollector is returned by New when Config names no collector.
var ErrNoCollector = errors.New("no collector configured")

// ErrRunning is returned by Run when the exporter is already running.
var ErrRunning = errors.New("exporter already running")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("exporter closed")

// Config configures an Exporter. Zero values take the defaults above.
type Config struct {
	// Collectors are "host:port", "[ipv6]:port", or a host alone for
	// DefaultPort. Host names are resolved once, in New. Every report goes
	// to each of them.
	Collectors []string
	// Replicas, if set, is the "host:port" of one collector run as several
	// replicas: a name with one A/AAAA record per replica (a Kubernetes
	// headless Service). Every report also goes to exactly one replica, the
	// one rendezvous hashing of ReplicaKey chooses among the addresses (see
	// package replica). The name is resolved in New (no address yet is not
	// an error: reports are dropped and counted until there is one) and every
	// ReplicaRefresh while Run runs; a failed lookup keeps the replica
	// chosen before. Moving to another replica starts its sequence numbers
	// again from 0.
	Replicas string
	// ReplicaKey is what the replica is chosen by: the node name, so that
	// each node's reports stay on one replica.
	ReplicaKey string
	// ReplicaRefresh is how often Replicas is resolved again (default 30s).
	ReplicaRefresh time.Duration
	// Resolver looks Replicas up (default net.DefaultResolver); tests give
	// their own.
	Resolver Resolver
	// Format is the report version sent to every collector.
	Format intreport.Format
	// QueueLen is the number of reports the queue holds (default 4096).
	QueueLen int
	// BatchSize is the most datagrams one sendmmsg call carries (default 64).
	BatchSize int
	// OnSendError, if set, is called from Run's goroutine with a *SendError
	// at most once per ErrorInterval per collector, so the caller can log
	// without flooding. It must return quickly. Every error is counted in
	// Stats whether or not it is reported here.
	OnSendError func(collector string, err error)
	// ErrorInterval is the minimum time between two OnSendError calls for
	// one collector (default 1s).
	ErrorInterval time.Duration
	// RetryInterval is how often the socket of a collector that had no route
	// is connected again while there is something to send (default 1s).
	RetryInterval time.Duration
	// FlushTimeout bounds how long Run keeps sending what is queued once its
	// context is done (default 500ms).
	FlushTimeout time.Duration
}

// Stats are the exporter's counters since New.
type Stats struct {
	Enqueued    uint64 // reports accepted by Enqueue
	QueueDrops  uint64 // reports refused because the queue was full and Run was not running
	QueueWaits  uint64 // reports that waited for a free slot (Run was running)
	EncodeDrops uint64 // reports refused because their encoding did not fit a slot
	Queued      int    // reports waiting now
	Collectors  []CollectorStats
}

// CollectorStats are the counters of one collector.
type CollectorStats struct {
	Collector string // as configured
	Address   string // as resolved in New; for Config.Replicas the replica chosen now ("" while none)
	Sent      uint64 // reports (datagrams) the kernel accepted
	Errors    uint64 // errors the kernel returned (a refused datagram retried and sent counts here and in Sent)
	Dropped   uint64 // reports this collector never got because of an error or a missing route
	// Segmented is true while reports go out with UDP segmentation offload
	// (one system call cuts many datagrams); false once the route refused it.
	Segmented bool
	LastError error // the latest errno, nil if none ever; for Config.Replicas without a replica, why
	// Replicas is, for Config.Replicas, the number of addresses its latest
	// resolution gave; Moves counts the moves from one replica to another.
	Replicas int
	Moves    uint64
}

// Exporter queues encoded reports and sends them to every collector.
type Exporter struct {
	format        intreport.Format
	batch         int
	onSendError   func(string, error)
	errorInterval time.Duration
	retryInterval time.Duration
	flushTimeout  time.Duration

	q          *ring
	collectors []*collector

	// Sender scratch, reused for every batch: one message per report
	// (msgs, each of ones[i] = 1 report), and the same reports grouped for
	// UDP segmentation offload (gsoMsgs carrying gsoCounts reports each).
	msgs      []unix.Mmsghdr
	ones      []int
	iovs      []unix.Iovec
	slots     []*slot
	gsoMsgs   []unix.Mmsghdr
	gsoCounts []int
	gsoCmsgs  []byte

	mu      sync.Mutex
	running bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
}

// New resolves the collectors, opens one UDP socket for each and allocates the
// queue. A collector without a route now is accepted and retried while
// running; an address that does not parse or resolve is an error naming it.
func New(cfg Config) (*Exporter, error) {
	if len(cfg.Collectors) == 0 && cfg.Replicas == "" {
		return nil, ErrNoCollector
	}
	if !validFormat(cfg.Format) {
		return nil, fmt.Errorf("report format %d: unsupported", cfg.Format)
	}
	e := &Exporter{
		format:        cfg.Format,
		batch:         cmp.Or(cfg.BatchSize, DefaultBatchSize),
		onSendError:   cfg.OnSendError,
		errorInterval: cmp.Or(cfg.ErrorInterval, DefaultErrorInterval),
		retryInterval: cmp.Or(cfg.RetryInterval, DefaultRetryInterval),
		flushTimeout:  cmp.Or(cfg.FlushTimeout, DefaultFlushTimeout),
	}
	queueLen := cmp.Or(cfg.QueueLen, DefaultQueueLen)
	if queueLen < 0 || e.batch < 0 {
		return nil, fmt.Errorf("queue length %d, batch size %d: must not be negative", queueLen, e.batch)
	}
	e.batch = min(e.batch, maxBatch, queueLen)

	seen := make(map[string]string, len(cfg.Collectors))
	for _, name := range cfg.Collectors {
		c, err := openCollector(name)
		if err != nil {
			e.closeCollectors()
			return nil, err
		}
		e.collectors = append(e.collectors, c)
		key := c.addr.String()
		if first, dup := seen[key]; dup {
			e.closeCollectors()
			return nil, fmt.Errorf("collector %q: same address %s as %q", name, key, first)
		}
		seen[key] = name
	}
	if cfg.Replicas != "" {
		rep, err := newReplicas(cfg.Replicas, cfg.ReplicaKey, cmp.Or(cfg.ReplicaRefresh, DefaultReplicaRefresh), cfg.Resolver)
		if err != nil {
			e.closeCollectors()
			return nil, err
		}
		e.collectors = append(e.collectors, openReplicated(context.Background(), rep))
	}

	e.q = newRing(queueLen)
	e.msgs = make([]unix.Mmsghdr, e.batch)
	e.iovs = make([]unix.Iovec, e.batch)
	e.slots = make([]*slot, e.batch)
	e.ones = make([]int, e.batch)
	for i := range e.msgs {
		e.msgs[i].Hdr.Iov = &e.iovs[i]
		e.msgs[i].Hdr.SetIovlen(1)
		e.ones[i] = 1
	}
	e.gsoMsgs = make([]unix.Mmsghdr, e.batch)
	e.gsoCounts = make([]int, e.batch)
	e.gsoCmsgs = make([]byte, e.batch*gsoCmsgSpace)
	return e, nil
}

// validFormat reports whether intreport can encode f.
func validFormat(f intreport.Format) bool {
	return f == intreport.V05 || f == intreport.V20
}

// Enqueue encodes r into the queue for every collector. While Run runs, a
// full queue makes it wait for Run to free a slot (counted in QueueWaits):
// the caller's own source then holds what comes next — the agent's is the
// kernel's report ring, whose refusals keep the counts in the kernel — and
// nothing is lost. Without Run it returns false and counts a drop when the
// queue is full. r is not retained.
func (e *Exporter) Enqueue(r *intreport.Report) bool {
	return e.q.put(e.format, r)
}

// Run sends queued reports until ctx is done, then keeps sending what is
// still queued for at most Config.FlushTimeout and returns nil. Send errors
// never stop it; they are counted and passed to Config.OnSendError.
func (e *Exporter) Run(ctx context.Context) error {
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		return ErrClosed
	case e.running:
		e.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	e.running, e.cancel, e.done = true, cancel, make(chan struct{})
	e.q.setSending(true)
	e.mu.Unlock()

	// Replicated collectors follow their name's addresses while Run runs.
	var followers sync.WaitGroup
	for _, c := range e.collectors {
		if c.rep != nil {
			followers.Go(func() { c.rep.run(ctx) })
		}
	}
	defer func() {
		e.q.setSending(false)
		cancel()
		followers.Wait()
		e.mu.Lock()
		e.running = false
		close(e.done)
		e.mu.Unlock()
	}()

	for {
		if n := e.q.queued(); n > 0 {
			select {
			case <-ctx.Done(): // a producer that never lets the queue empty must not keep Run alive
				e.flush()
				return nil
			default:
			}
			e.sendBatch(min(n, e.batch))
			continue
		}
		if !e.q.prepareSleep() {
			continue
		}
		select {
		case <-e.q.wake:
		case <-ctx.Done():
			e.flush()
			return nil
		}
	}
}

// flush sends what is queued, for at most flushTimeout.
func (e *Exporter) flush() {
	deadline := time.Now().Add(e.flushTimeout)
	for {
		n := e.q.queued()
		if n == 0 || !time.Now().Before(deadline) {
			return
		}
		e.sendBatch(min(n, e.batch))
	}
}

// sendBatch sends the n oldest queued reports to every collector and frees
// their slots.
func (e *Exporter) sendBatch(n int) {
	for i := range n {
		s := e.q.peek(i)
		e.slots[i] = s
		e.iovs[i].Base = unsafe.SliceData(s.buf)
		e.iovs[i].SetLen(s.n)
	}
	gsoBuilt := 0
	for _, c := range e.collectors {
		if c.gso {
			if gsoBuilt == 0 {
				gsoBuilt = e.buildGSO(n)
			}
			c.send(e, e.gsoMsgs[:gsoBuilt], e.gsoCounts[:gsoBuilt], e.slots[:n])
			continue
		}
		c.send(e, e.msgs[:n], e.ones[:n], e.slots[:n])
	}
	clear(e.slots[:n])
	e.q.release(n)
}

// buildGSO groups the batch's n reports into messages for UDP segmentation
// offload: each run of consecutive reports of one size (at most
// maxGSOSegments) becomes one message whose iovecs the kernel cuts into one
// datagram per report. It returns the number of messages.
func (e *Exporter) buildGSO(n int) int {
	m := 0
	for i := 0; i < n; {
		size := e.slots[i].n
		j := i + 1
		for j < n && j-i < maxGSOSegments && e.slots[j].n == size {
			j++
		}
		h := &e.gsoMsgs[m].Hdr
		*h = unix.Msghdr{Iov: &e.iovs[i]}
		h.SetIovlen(j - i)
		if j-i > 1 {
			cm := e.gsoCmsgs[m*gsoCmsgSpace : (m+1)*gsoCmsgSpace]
			putGSOSize(cm, uint16(size))
			h.Control = &cm[0]
			h.SetControllen(len(cm))
		}
		e.gsoCounts[m] = j - i
		m++
		i = j
	}
	return m
}

// Stats returns the counters. It is safe to call at any time.
func (e *Exporter) Stats() Stats {
	st := Stats{
		Enqueued:    e.q.enqueued.Load(),
		QueueDrops:  e.q.queueDrops.Load(),
		QueueWaits:  e.q.queueWaits.Load(),
		EncodeDrops: e.q.encodeDrops.Load(),
		Queued:      e.q.queued(),
		Collectors:  make([]CollectorStats, len(e.collectors)),
	}
	for i, c := range e.collectors {
		st.Collectors[i] = c.stats()
	}
	return st
}

// Close stops Run if it is running (Run flushes as when its context ends),
// waits for it to return and closes the sockets. Reports queued after that
// are never sent; Enqueue keeps counting them until the queue is full. Close
// is idempotent.
func (e *Exporter) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	running, cancel, done := e.running, e.cancel, e.done
	e.mu.Unlock()
	if running {
		cancel()
		<-done
	}
	return e.closeCollectors()
}

func (e *Exporter) closeCollectors() error {
	var errs []error
	for _, c := range e.collectors {
		if err := c.close(); err != nil {
			errs = append(errs, fmt.Errorf("close socket of collector %s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}
