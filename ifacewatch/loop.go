package ifacewatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/pkg/netif"
)

// loop is the main goroutine: it follows the namespace directories with
// fsnotify, waits for bind mounts, and starts and stops namespace workers.
// Everything here is owned by that goroutine.
type loop struct {
	w       *Watcher
	fsw     *fsnotify.Watcher
	dirs    []*dirState
	refs    map[string]int      // inotify watches, by path, with how many dirs use each
	paths   map[string]*nsEntry // namespace files we know, by path
	pending map[string]*pendingFile
	timer   *time.Timer
	mounts  *mountWatcher

	// The sweep for unmounted files stats every known file, so during a
	// burst of mount changes (namespaces being created) it runs at most
	// once per sweepGap instead of once per change.
	sweepTimer *time.Timer
	lastSweep  time.Time
	sweepCost  time.Duration // how long the last sweep took
	sweepDue   bool
}

// sweepInterval bounds how often the unmount sweep runs in a burst, and
// sweepDuty the share of time it may take: with many namespaces one sweep
// costs milliseconds, so the gap grows with it. An unmount without deleting
// the file is rare; deletions are seen by fsnotify at once.
const (
	sweepInterval = 100 * time.Millisecond
	sweepDuty     = 50 // the gap is at least this many times the sweep's cost
)

// sweepGap is the least time between two sweeps.
func (l *loop) sweepGap() time.Duration { return max(sweepInterval, sweepDuty*l.sweepCost) }

// dirState is a configured directory: watched itself when present, else its
// nearest existing ancestor is watched for the creation of the next component.
type dirState struct {
	path    string
	watched string
	present bool
}

// pendingFile is a namespace file waiting for its bind mount.
type pendingFile struct {
	deadline time.Time
	next     time.Time
	delay    time.Duration
}

const (
	firstMountRetry = time.Millisecond
	maxMountRetry   = 100 * time.Millisecond
)

func newLoop(w *Watcher) (*loop, error) {
	fsw, err := fsnotify.NewBufferedWatcher(1024)
	if err != nil {
		return nil, fmt.Errorf("fsnotify: %w", err)
	}
	l := &loop{
		w:       w,
		fsw:     fsw,
		refs:    make(map[string]int),
		paths:   make(map[string]*nsEntry),
		pending: make(map[string]*pendingFile),
		timer:   time.NewTimer(time.Hour),
	}
	l.timer.Stop()
	l.sweepTimer = time.NewTimer(time.Hour)
	l.sweepTimer.Stop()
	if l.mounts, err = newMountWatcher(); err != nil {
		fsw.Close()
		return nil, err
	}
	if err := l.openHost(); err != nil {
		fsw.Close()
		l.mounts.close()
		return nil, err
	}
	return l, nil
}

// hostNetnsPath names the namespace of the process (its main thread).
const hostNetnsPath = "/proc/self/ns/net"

// openHost opens the host namespace: always as an nsid resolution candidate,
// and as a watched namespace when configured.
func (l *loop) openHost() error {
	// thread-self, from an unlocked goroutine: only locked threads ever
	// leave the process's namespace, and /proc/self (the main thread) may be
	// one of them for a moment.
	f, err := netns.Open("/proc/thread-self/ns/net")
	if err != nil {
		return fmt.Errorf("host netns: %w", err)
	}
	id := netif.Netns(f.Inode())
	r := l.w.reg
	r.hostID, r.hostNS = id, f
	if l.w.host {
		l.start(&nsEntry{
			ns:     Namespace{ID: id, Path: hostNetnsPath, Host: true},
			file:   f,
			paths:  make(map[string]struct{}),
			pinned: true,
		})
	}
	return nil
}

func (l *loop) run(ctx context.Context) {
	// Watch first, then list: a file created in between is seen twice and
	// deduplicated, never missed.
	for _, d := range l.w.dirs {
		ds := &dirState{path: d}
		l.dirs = append(l.dirs, ds)
		l.arm(ds)
	}
	go l.w.markSynced(l.w.reg.entries())
	for {
		select {
		case <-ctx.Done():
			l.shutdown()
			return
		case ev, ok := <-l.fsw.Events:
			if ok {
				l.fsEvent(ev)
			}
		case err, ok := <-l.fsw.Errors:
			if !ok {
				continue
			}
			l.w.setLastError(fmt.Errorf("fsnotify: %w", err))
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				l.w.stats.recoveries.Add(1)
				l.rescan()
			}
		case <-l.timer.C:
			l.retryPending()
		case <-l.sweepTimer.C:
			l.sweepDue = false
			l.sweepUnmounted()
		case <-l.mounts.changed:
			l.mountsChanged()
		}
	}
}

func (l *loop) shutdown() {
	for _, e := range l.w.reg.entries() {
		e.worker.stop(false)
	}
	for _, e := range l.w.reg.entries() {
		<-e.worker.exited
		l.w.reg.remove(e)
		if e.file != l.w.reg.hostNS {
			e.file.Close()
		}
	}
	l.w.reg.hostNS.Close()
	l.w.reg.hostNS = nil
	l.fsw.Close()
	l.mounts.close()
	l.timer.Stop()
}

// mountsChanged runs when the mount table changed: a waiting file may have
// got its bind mount, a known one may have lost it (unmounted but not
// removed) or been remounted with another namespace.
func (l *loop) mountsChanged() {
	for path := range l.pending {
		if ok, err := netns.IsNsfs(path); err == nil && ok && l.try(path) {
			delete(l.pending, path)
		}
	}
	l.resetTimer()
	if wait := l.sweepGap() - time.Since(l.lastSweep); wait > 0 {
		if !l.sweepDue {
			l.sweepDue = true
			l.sweepTimer.Reset(wait)
		}
		return
	}
	l.sweepUnmounted()
}

// sweepUnmounted forgets files that are no longer the namespace mount we
// knew (unmounted, or mounted over with another namespace).
func (l *loop) sweepUnmounted() {
	l.lastSweep = time.Now()
	defer func() { l.sweepCost = time.Since(l.lastSweep) }()
	for path, e := range l.paths {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err == nil && netif.Netns(st.Ino) == e.ns.ID {
			if ok, err := netns.IsNsfs(path); err == nil && ok {
				continue
			}
		}
		l.gone(path)
		l.candidate(path) // mounted again, or waits for a new mount
	}
}

// start registers a namespace and starts its worker.
func (l *loop) start(e *nsEntry) {
	e.worker = newWorker(l.w, e.ns, e.file)
	l.w.reg.add(e)
	go e.worker.run()
}

// removeNamespace stops a worker, which reports the removals, waits for it and
// releases the namespace.
func (l *loop) removeNamespace(e *nsEntry) {
	e.worker.stop(true)
	<-e.worker.exited
	l.w.reg.remove(e)
	e.file.Close()
}

func (l *loop) watch(path string) error {
	if l.refs[path] == 0 {
		if err := l.fsw.Add(path); err != nil {
			return err
		}
	}
	l.refs[path]++
	return nil
}

func (l *loop) unwatch(path string) {
	if path == "" || l.refs[path] == 0 {
		return
	}
	l.refs[path]--
	if l.refs[path] == 0 {
		delete(l.refs, path)
		_ = l.fsw.Remove(path) // fails when the kernel already dropped it
	}
}

// arm watches the directory, or its nearest existing ancestor, and lists it
// once it is watched.
func (l *loop) arm(d *dirState) {
	for {
		l.unwatch(d.watched)
		d.watched, d.present = "", false
		p := d.path
		for {
			if err := l.watch(p); err == nil {
				break
			}
			if p == "/" {
				return // nothing watchable; an overflow rescan retries
			}
			p = filepath.Dir(p)
		}
		d.watched = p
		if p == d.path {
			d.present = true
			l.scan(d)
			return
		}
		// The next component may have appeared before the watch existed.
		rel := strings.TrimPrefix(strings.TrimPrefix(d.path, p), "/")
		next := filepath.Join(p, strings.SplitN(rel, "/", 2)[0])
		if fi, err := os.Stat(next); err != nil || !fi.IsDir() {
			return
		}
	}
}

// scan offers every file of a present directory.
func (l *loop) scan(d *dirState) {
	ents, err := os.ReadDir(d.path)
	if err != nil {
		l.w.setLastError(fmt.Errorf("list %s: %w", d.path, err))
		return
	}
	for _, ent := range ents {
		if !ent.IsDir() {
			l.candidate(filepath.Join(d.path, ent.Name()))
		}
	}
}

// rescan recovers from an fsnotify overflow: forget files that are gone or no
// longer the namespace we knew, and offer every file again.
func (l *loop) rescan() {
	for path, e := range l.paths {
		f, err := netns.Open(path)
		if err != nil || netif.Netns(f.Inode()) != e.ns.ID {
			l.gone(path)
		}
		if err == nil {
			f.Close()
		}
	}
	for _, d := range l.dirs {
		if !d.present {
			l.arm(d)
			continue
		}
		if fi, err := os.Stat(d.path); err != nil || !fi.IsDir() {
			l.dirGone(d)
			continue
		}
		l.scan(d)
	}
}

func (l *loop) fsEvent(ev fsnotify.Event) {
	name := filepath.Clean(ev.Name)
	parent := filepath.Dir(name)
	for _, d := range l.dirs {
		switch {
		case d.present && parent == d.path:
			if ev.Has(fsnotify.Create) {
				l.candidate(name)
			} else if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				l.gone(name)
			}
		case d.present && name == d.path && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
			l.dirGone(d)
		case !d.present && name == d.watched && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)):
			l.arm(d) // the ancestor went away: watch higher up
		case !d.present && parent == d.watched && ev.Has(fsnotify.Create) &&
			(d.path == name || strings.HasPrefix(d.path, name+"/")):
			l.arm(d)
		}
	}
}

// dirGone removes every namespace known through a directory that went away
// and waits for it to come back.
func (l *loop) dirGone(d *dirState) {
	for path := range l.paths {
		if filepath.Dir(path) == d.path {
			l.gone(path)
		}
	}
	for path := range l.pending {
		if filepath.Dir(path) == d.path {
			delete(l.pending, path)
		}
	}
	l.arm(d)
}

// candidate handles a file that appeared in a watched directory.
func (l *loop) candidate(path string) {
	if _, ok := l.paths[path]; ok {
		return
	}
	if _, ok := l.pending[path]; ok {
		return
	}
	now := time.Now()
	if !l.try(path) {
		l.pending[path] = &pendingFile{deadline: now.Add(l.w.mountWait), next: now.Add(firstMountRetry), delay: firstMountRetry}
		l.resetTimer()
	}
}

// try opens path as a namespace; false means "not mounted yet, try later".
func (l *loop) try(path string) bool {
	f, err := netns.Open(path)
	switch {
	case err == nil:
		l.addPath(path, f)
	case errors.Is(err, netns.ErrNotNsfs):
		if fi, serr := os.Lstat(path); serr == nil && fi.IsDir() {
			return true // a directory is never a namespace
		}
		return false
	case errors.Is(err, netns.ErrNotNetwork):
		l.w.stats.ignoredFiles.Add(1)
	case errors.Is(err, os.ErrNotExist):
	default:
		l.w.stats.openErrors.Add(1)
		l.w.setLastError(err)
	}
	return true
}

// addPath records a namespace file; a second file of a known namespace only
// adds a name to it.
func (l *loop) addPath(path string, f *netns.NS) {
	id := netif.Netns(f.Inode())
	if e := l.w.reg.get(id); e != nil {
		f.Close()
		e.paths[path] = struct{}{}
		l.paths[path] = e
		return
	}
	e := &nsEntry{
		ns:    Namespace{ID: id, Path: path, Name: filepath.Base(path), Host: id == l.w.reg.hostID},
		file:  f,
		paths: map[string]struct{}{path: {}},
	}
	l.paths[path] = e
	l.start(e)
}

// gone handles a file that left a watched directory. The namespace leaves our
// view when no other watched file names it (it may live on elsewhere).
func (l *loop) gone(path string) {
	delete(l.pending, path)
	e := l.paths[path]
	if e == nil {
		return
	}
	delete(l.paths, path)
	delete(e.paths, path)
	if len(e.paths) == 0 && !e.pinned {
		l.removeNamespace(e)
	}
}

// retryPending checks the files waiting for their bind mount, backing off
// from 1 ms to 100 ms, until MountWait.
func (l *loop) retryPending() {
	now := time.Now()
	for path, p := range l.pending {
		if now.Before(p.next) {
			continue
		}
		if ok, err := netns.IsNsfs(path); (err != nil || ok) && l.try(path) {
			delete(l.pending, path)
			continue
		}
		if now.After(p.deadline) {
			delete(l.pending, path)
			l.w.stats.mountTimeouts.Add(1)
			l.w.setLastError(fmt.Errorf("netns file %s: no nsfs mount after %v", path, l.w.mountWait))
			continue
		}
		p.delay = min(2*p.delay, maxMountRetry)
		p.next = now.Add(p.delay)
	}
	l.resetTimer()
}

func (l *loop) resetTimer() {
	var next time.Time
	for _, p := range l.pending {
		if next.IsZero() || p.next.Before(next) {
			next = p.next
		}
	}
	if next.IsZero() {
		l.timer.Stop()
		return
	}
	l.timer.Reset(max(time.Until(next), 0))
}
