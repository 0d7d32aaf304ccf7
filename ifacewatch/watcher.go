package ifacewatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nsint/nsint/ifacewatch/selection"
	"github.com/nsint/nsint/pkg/netif"
)

// DefaultNetnsDir is where ip netns, CRI-O and containerd (cni-*) bind
// network namespaces.
const DefaultNetnsDir = "/var/run/netns"

// DefaultMountWait bounds how long a namespace file may stay a plain file
// before its bind mount appears.
const DefaultMountWait = 30 * time.Second

// Config configures a Watcher.
type Config struct {
	// Dirs are the directories whose files are namespaces. nil means
	// DefaultNetnsDir; an empty non-nil slice watches no directory. A
	// directory that does not exist yet is watched for creation.
	Dirs []string
	// HostNetns also watches the namespace the process runs in.
	HostNetns bool
	// Rules select the interfaces reported (see selection.Rule); none
	// selects all.
	Rules []selection.Rule
	// MountWait bounds the wait for a new file to become an nsfs mount;
	// 0 means DefaultMountWait.
	MountWait time.Duration
}

// ErrRunning is returned by Run when the watcher already runs or ran.
var ErrRunning = errors.New("ifacewatch: Run called twice")

// Watcher discovers network namespaces and their interfaces. Create it with
// New and start it with Run.
type Watcher struct {
	dirs      []string
	host      bool
	sel       selector
	mountWait time.Duration

	// Knobs for tests (same package): receive buffer size and a function
	// called by each namespace goroutine before it reads its socket.
	rcvBuf     int
	beforeRecv func(netif.Netns)

	disp    *dispatcher
	reg     *registry
	stats   counters
	started atomic.Bool

	errMu   sync.Mutex
	lastErr error

	synced chan struct{} // closed by markSynced
}

type counters struct {
	interfaces    atomic.Int64
	recoveries    atomic.Uint64
	netlinkErrors atomic.Uint64
	mountTimeouts atomic.Uint64
	ignoredFiles  atomic.Uint64
	openErrors    atomic.Uint64
	nsidLookups   atomic.Uint64
}

// New validates cfg and returns a Watcher. It opens nothing.
func New(cfg Config) (*Watcher, error) {
	sel, err := newSelector(cfg.Rules)
	if err != nil {
		return nil, err
	}
	dirs := cfg.Dirs
	if dirs == nil {
		dirs = []string{DefaultNetnsDir}
	}
	w := &Watcher{
		host:      cfg.HostNetns,
		sel:       sel,
		mountWait: cfg.MountWait,
		rcvBuf:    defaultRcvBuf,
		disp:      newDispatcher(),
		reg:       newRegistry(),
		synced:    make(chan struct{}),
	}
	if w.mountWait <= 0 {
		w.mountWait = DefaultMountWait
	}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, fmt.Errorf("netns dir %s: %w", d, err)
		}
		if !slices.Contains(w.dirs, abs) {
			w.dirs = append(w.dirs, abs)
		}
	}
	return w, nil
}

// Run watches until ctx ends, delivering events to events, which it closes
// when it returns. It returns nil after ctx ends, or an error when it could
// not start. Run may be called once.
//
// Delivery contract: events of one namespace arrive in the order they
// happened — NetnsAdded first, then its interfaces' events, NetnsRemoved last —
// and a namespace that is removed and found again starts over after its
// NetnsRemoved. Events of different namespaces interleave in no promised order
// (an interface moved between namespaces may be added in the target before it
// is removed from the source: identities differ, so nothing is ambiguous).
// Every namespace has its own unbounded queue; the kernel side never waits for
// the consumer, and a busy namespace cannot starve the others (Stats.Pending
// shows the backlog). Events still queued when ctx ends are dropped; shutting
// down reports no removals.
func (w *Watcher) Run(ctx context.Context, events chan<- Event) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(events)
	l, err := newLoop(w)
	if err != nil {
		return err
	}
	dctx, stopDispatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { w.disp.run(dctx, events) })
	l.run(ctx)
	stopDispatch()
	wg.Wait()
	return nil
}

// Synced is closed once the namespaces present when Run started (the host
// namespace, when watched, and every file of the configured directories that
// was already a namespace mount) have had their interfaces listed and queued
// for delivery. A consumer that has also handled every event of Snapshot has
// then seen the initial state.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// markSynced closes synced once each initial namespace has been listed.
func (w *Watcher) markSynced(initial []*nsEntry) {
	for _, e := range initial {
		<-e.worker.listed
	}
	close(w.synced)
}

// Snapshot returns every watched namespace with its selected interfaces, as
// last queued for delivery (possibly ahead of what the consumer has read),
// namespaces in the order they were found.
func (w *Watcher) Snapshot() []NamespaceState {
	var out []NamespaceState
	for _, e := range w.reg.entries() {
		out = append(out, NamespaceState{Namespace: e.ns, Interfaces: e.worker.snapshot()})
	}
	return out
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	w.reg.mu.RLock()
	n := len(w.reg.byID)
	w.reg.mu.RUnlock()
	return Stats{
		Namespaces:    n,
		Interfaces:    int(w.stats.interfaces.Load()),
		Events:        w.disp.delivered.Load(),
		Pending:       w.disp.queued(),
		Recoveries:    w.stats.recoveries.Load(),
		NetlinkErrors: w.stats.netlinkErrors.Load(),
		MountTimeouts: w.stats.mountTimeouts.Load(),
		IgnoredFiles:  w.stats.ignoredFiles.Load(),
		OpenErrors:    w.stats.openErrors.Load(),
		NsidLookups:   w.stats.nsidLookups.Load(),
	}
}

// LastError returns the most recent error the watcher recovered from, for
// the caller to log; nil if none.
func (w *Watcher) LastError() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.lastErr
}

func (w *Watcher) setLastError(err error) {
	w.errMu.Lock()
	w.lastErr = err
	w.errMu.Unlock()
}
