package tc

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/tc/legacyfilter"
)

// Defaults for Config (see package legacyfilter for the priority and the
// handle). When DefaultPriority is taken, or something runs before it, Place
// picks another free priority ahead of everyone instead.
const (
	DefaultPriority      = legacyfilter.DefaultPriority
	DefaultHandle        = legacyfilter.DefaultHandle
	DefaultMaxConcurrent = 8
)

// ErrClosed is returned by calls on a closed Attacher.
var ErrClosed = errors.New("attacher closed")

// Config configures an Attacher. The same PinDir and Handle must be given to
// Cleanup and to every restart of the agent.
type Config struct {
	// Mode is ModeAuto (the default), ModeTCX or ModeLegacy.
	Mode Mode
	// PinDir is a directory on a BPF filesystem (e.g. /sys/fs/bpf/nsint)
	// holding our TCX links; required in TCX mode (see MountBPFFS).
	PinDir string
	// Priority is the preferred priority of our legacy filters
	// (1..MaxPriority; 0: DefaultPriority): theirs when it is free and runs
	// before every other filter on the hook; otherwise Place picks a free
	// one that does (see hook.plan).
	Priority uint16
	// Handle, with the kind (bpf) and the name (nsint-ingress,
	// nsint-egress), identifies our legacy filters, at any priority (0:
	// DefaultHandle).
	Handle uint32
	// MaxConcurrent bounds the attach/detach calls that run at once; further
	// calls wait (0: DefaultMaxConcurrent).
	MaxConcurrent int
}

func (c Config) withDefaults() Config {
	if c.Priority == 0 {
		c.Priority = DefaultPriority
	}
	if c.Handle == 0 {
		c.Handle = DefaultHandle
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultMaxConcurrent
	}
	return c
}

// Target is one interface: its identity and how to reach its namespace.
type Target struct {
	// ID is the interface. Its Netns is checked against NetnsPath when not
	// 0: a path that now names another namespace means the interface is
	// gone.
	netif.ID
	// NetnsPath is a file bound to the namespace (/var/run/netns/x,
	// /proc/<pid>/ns/net); "" means the agent's own namespace.
	NetnsPath string
	// Name is used in errors only; interfaces are identified by index.
	Name string
	// NoEarlierRun says that no earlier run can have attached to this interface
	// (its caller had no record of it when the run started), so a new
	// attachment skips looking for an earlier run's attachment in the other
	// mode. In TCX mode that look is a netlink socket in the namespace and
	// a filter dump per hook: 8 % of the agent's CPU while 1 000 namespaces
	// appeared.
	NoEarlierRun bool
}

// Stats are the Attacher's counters since New.
type Stats struct {
	Attached uint64 // new attachments
	Replaced uint64 // existing attachments of ours given the program (Moved included)
	Moved    uint64 // of those, the ones moved to the head of their hook
	NotFirst uint64 // attachments left with another tool's filter ahead (Placement.First false)
	Detached uint64
	Gone     uint64 // calls that found the interface or namespace gone
	Failed   uint64 // other errors
}

// Attacher attaches programs to TC hooks. It is safe for concurrent use; at
// most Config.MaxConcurrent calls run at once. Calls for the same namespace
// are serialised, except new TCX attachments to interfaces no earlier run
// knew (Target.NoEarlierRun), which run side by side on different hooks:
// each holds RTNL across a kernel RCU grace period, so an interface's two
// hooks attached one after the other wait for two.
type Attacher struct {
	cfg    Config
	slots  chan struct{}
	closed atomic.Bool

	mu    sync.Mutex
	locks map[netif.Netns]*netnsLock

	closeMu sync.Mutex // one Close at a time
	passMu  sync.Mutex
	pass    [2]*ebpf.Program // see passProgram

	attached, replaced, moved, notFirst, detached, gone, failed atomic.Uint64
}

// netnsLock serialises the calls on one namespace. Calls that may touch its
// pin directory as a whole or several hooks (detaching, replacing another
// mode's attachment) hold mu exclusively; a new TCX attachment holds it
// shared and its hook's own lock.
type netnsLock struct {
	mu    sync.RWMutex
	hooks map[hookKey]*sync.Mutex
	refs  int
}

type hookKey struct {
	ifindex netif.Ifindex
	dir     netif.Direction
}

// New returns an Attacher in the mode ResolveMode gives. In TCX mode the
// pin directory is created and must be on a BPF filesystem.
func New(cfg Config) (*Attacher, error) {
	cfg = cfg.withDefaults()
	if cfg.Priority > MaxPriority {
		return nil, fmt.Errorf("tc priority %d: above %d, in the kernel's automatic range", cfg.Priority, MaxPriority)
	}
	mode, err := ResolveMode(cfg.Mode)
	if err != nil {
		return nil, err
	}
	cfg.Mode = mode
	if cfg.Mode == ModeTCX {
		if cfg.PinDir == "" {
			return nil, errors.New("attach mode tcx: no pin directory")
		}
		if err := os.MkdirAll(cfg.PinDir, 0o700); err != nil {
			return nil, fmt.Errorf("create pin dir %s: %w", cfg.PinDir, err)
		}
		on, err := onBPFFS(cfg.PinDir)
		if err != nil {
			return nil, err
		}
		if !on {
			return nil, fmt.Errorf("pin dir %s: not on a BPF filesystem", cfg.PinDir)
		}
	}
	return &Attacher{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.MaxConcurrent),
		locks: make(map[netif.Netns]*netnsLock),
	}, nil
}

// Mode returns the resolved mode: ModeTCX or ModeLegacy.
func (a *Attacher) Mode() Mode { return a.cfg.Mode }

// Config returns the configuration with defaults filled in and the mode
// resolved.
func (a *Attacher) Config() Config { return a.cfg }

// Stats returns the counters.
func (a *Attacher) Stats() Stats {
	return Stats{
		Attached: a.attached.Load(),
		Replaced: a.replaced.Load(),
		Moved:    a.moved.Load(),
		NotFirst: a.notFirst.Load(),
		Detached: a.detached.Load(),
		Gone:     a.gone.Load(),
		Failed:   a.failed.Load(),
	}
}

// Attach is Place without the placement.
func (a *Attacher) Attach(t Target, dir netif.Direction, prog *ebpf.Program) error {
	_, err := a.Place(t, dir, prog)
	return err
}

// Place attaches prog to the dir hook of t, ahead of everything of anyone
// else's there, or gives prog to our existing attachment there (also one
// left by an earlier run): in place while it still runs first, else moved
// to the head. The hook is never left with two programs of ours counting
// the same packet. Where no place ahead of everyone is free (a legacy filter
// at priority 1), ours still attaches, at the lowest free priority, and the
// Placement says so; it is not an error. Errors matching ErrInterfaceGone
// mean the interface or its namespace vanished.
func (a *Attacher) Place(t Target, dir netif.Direction, prog *ebpf.Program) (Placement, error) {
	if err := a.check(t, dir); err != nil {
		return Placement{}, err
	}
	if prog == nil {
		return Placement{}, fmt.Errorf("attach %s: nil program", a.describe(t, dir, t.Netns))
	}
	release := a.enter()
	defer release()
	if a.closed.Load() {
		return Placement{}, ErrClosed
	}
	ns, err := openNetns(t.NetnsPath, t.Netns)
	if err != nil {
		return Placement{}, a.count(fmt.Errorf("attach %s: %w", a.describe(t, dir, t.Netns), err))
	}
	defer ns.close()
	var unlock func()
	if a.cfg.Mode == ModeTCX && t.NoEarlierRun {
		unlock = a.lockHook(ns.inode, t.Ifindex, dir)
	} else {
		unlock = a.lockNetns(ns.inode)
	}
	defer unlock()

	var pl Placement
	if a.cfg.Mode == ModeTCX {
		pl, err = a.attachTCX(ns, t, dir, prog)
	} else {
		pl, err = a.attachLegacy(ns, t, dir, prog)
	}
	if err == nil && !pl.Replaced && !t.NoEarlierRun {
		// A new attachment: an earlier run in the other mode may have left
		// one of ours on this hook. It goes only now that ours runs, so the
		// hook is never unobserved, and afterwards there is exactly one.
		if a.cfg.Mode == ModeTCX {
			err = a.detachLegacy(ns, t, dir)
		} else {
			err = a.removePin(ns.inode, t.Ifindex, dir)
		}
	}
	if err != nil {
		return Placement{}, a.count(fmt.Errorf("attach %s: %w", a.describe(t, dir, ns.inode), err))
	}
	if pl.Replaced {
		a.replaced.Add(1)
	} else {
		a.attached.Add(1)
	}
	if pl.Moved {
		a.moved.Add(1)
	}
	if !pl.First() {
		a.notFirst.Add(1)
	}
	return pl, nil
}

// Detach removes our attachment from the dir hook of t; it does nothing when
// there is none. When the namespace is already gone it still removes our TCX
// pin for it (t.Netns must then be set) and returns nil.
func (a *Attacher) Detach(t Target, dir netif.Direction) error {
	if err := a.check(t, dir); err != nil {
		return err
	}
	release := a.enter()
	defer release()
	if a.closed.Load() {
		return ErrClosed
	}
	ns, err := openNetns(t.NetnsPath, t.Netns)
	if errors.Is(err, ErrInterfaceGone) && t.Netns != 0 {
		unlock := a.lockNetns(t.Netns)
		defer unlock()
		if err := a.removePin(t.Netns, t.Ifindex, dir); err != nil {
			return a.count(fmt.Errorf("detach %s: %w", a.describe(t, dir, t.Netns), err))
		}
		a.detached.Add(1)
		return nil
	}
	if err != nil {
		return a.count(fmt.Errorf("detach %s: %w", a.describe(t, dir, t.Netns), err))
	}
	defer ns.close()
	unlock := a.lockNetns(ns.inode)
	defer unlock()

	// Whatever the mode now, an earlier run may have used the other one.
	err = errors.Join(a.removePin(ns.inode, t.Ifindex, dir), a.detachLegacy(ns, t, dir))
	if err != nil {
		return a.count(fmt.Errorf("detach %s: %w", a.describe(t, dir, ns.inode), err))
	}
	a.detached.Add(1)
	return nil
}

// Close makes further calls fail with ErrClosed, waits for the calls under
// way and releases the pass-through program. It does not detach: pinned TCX
// links and legacy filters stay attached for the next run to take over.
func (a *Attacher) Close() error {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	a.closed.Store(true)
	for range cap(a.slots) {
		a.slots <- struct{}{}
	}
	a.passMu.Lock()
	for i, p := range a.pass {
		if p != nil {
			p.Close()
			a.pass[i] = nil
		}
	}
	a.passMu.Unlock()
	for range cap(a.slots) {
		<-a.slots
	}
	return nil
}

func (a *Attacher) check(t Target, dir netif.Direction) error {
	if a.closed.Load() {
		return ErrClosed
	}
	if !dir.Valid() {
		return fmt.Errorf("%s: invalid direction", a.describe(t, dir, t.Netns))
	}
	if t.Ifindex == 0 {
		return fmt.Errorf("%s: invalid ifindex", a.describe(t, dir, t.Netns))
	}
	return nil
}

func (a *Attacher) describe(t Target, dir netif.Direction, inode netif.Netns) string {
	name := t.Name
	if name == "" {
		name = "?"
	}
	return fmt.Sprintf("%s %s (ifindex %d) in netns %d", dir, name, t.Ifindex, inode)
}

func (a *Attacher) count(err error) error {
	if errors.Is(err, ErrInterfaceGone) {
		a.gone.Add(1)
	} else {
		a.failed.Add(1)
	}
	return err
}

func (a *Attacher) enter() (release func()) {
	a.slots <- struct{}{}
	return func() { <-a.slots }
}

// lockNetns takes a namespace's lock exclusively: no other call on the
// namespace runs until unlock.
func (a *Attacher) lockNetns(inode netif.Netns) (unlock func()) {
	l := a.netnsLock(inode)
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		a.releaseNetnsLock(inode, l)
	}
}

// lockHook takes a namespace's lock shared and one hook's lock: calls on
// other hooks of the namespace that take lockHook run at the same time.
func (a *Attacher) lockHook(inode netif.Netns, ifindex netif.Ifindex, dir netif.Direction) (unlock func()) {
	l := a.netnsLock(inode)
	a.mu.Lock()
	k := hookKey{ifindex, dir}
	h := l.hooks[k]
	if h == nil {
		h = &sync.Mutex{}
		l.hooks[k] = h
	}
	a.mu.Unlock()
	l.mu.RLock()
	h.Lock()
	return func() {
		h.Unlock()
		l.mu.RUnlock()
		a.releaseNetnsLock(inode, l)
	}
}

// netnsLock returns the namespace's lock, counting one more user.
func (a *Attacher) netnsLock(inode netif.Netns) *netnsLock {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.locks[inode]
	if l == nil {
		l = &netnsLock{hooks: make(map[hookKey]*sync.Mutex)}
		a.locks[inode] = l
	}
	l.refs++
	return l
}

// releaseNetnsLock counts one user less, and forgets the lock (with its
// hooks' locks) when it has none.
func (a *Attacher) releaseNetnsLock(inode netif.Netns, l *netnsLock) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l.refs--
	if l.refs == 0 {
		delete(a.locks, inode)
	}
}
