package ifacewatch

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
	"github.com/nsint/nsint/pkg/netif"
)

// nsWorker is the one goroutine and the one netlink socket of a namespace. It
// keeps two views: the kernel's state as last heard ("working": links, addrs)
// and what the consumer has been told ("published"). Events are the
// differences between the two, computed after each received datagram (or, while
// the namespace is being listed, once the listing is complete), so a re-list
// after a lost notification emits only what changed.
type nsWorker struct {
	w    *Watcher
	ns   Namespace
	file *netns.NS // owned by the main loop, open for the worker's whole life

	mu      sync.Mutex // guards sock, stopped, removed
	sock    *rtnlSocket
	stopped bool
	removed bool
	done    chan struct{} // closed by stop
	exited  chan struct{} // closed when run returns
	// listed is closed once the first complete listing has been queued for
	// delivery (or the worker stopped before one).
	listed     chan struct{}
	listedOnce sync.Once

	// Owned by the run goroutine.
	links    map[int]*linkState
	addrs    map[int]map[netip.Prefix]struct{}
	dirty    map[int]struct{}
	phase    listPhase
	dumpSeq  uint32
	dumpIntr bool
	seen     map[int]struct{}                  // links listed or announced during this listing
	newAddrs map[int]map[netip.Prefix]struct{} // addresses listed during this listing
	backlog  []nlMessage                       // read while waiting for a reply; processed next
	nsids    nsidCache

	pubMu     sync.Mutex
	published map[int]*Interface // selected interfaces as last reported
}

// listPhase is where a (re-)listing of the namespace stands.
type listPhase uint8

const (
	phaseIdle  listPhase = iota // listing complete: notifications flush as they come
	phaseLinks                  // RTM_GETLINK dump in progress
	phaseAddrs                  // RTM_GETADDR dump in progress
)

// linkState is one link in the working view, with the facts fetched once per
// device (driver, bus), not per message.
type linkState struct {
	msg      linkMsg
	infoDone bool
	driver   string
	pci      string
	vf       bool
	physfn   string
}

func newWorker(w *Watcher, ns Namespace, file *netns.NS) *nsWorker {
	return &nsWorker{
		w:         w,
		ns:        ns,
		file:      file,
		done:      make(chan struct{}),
		exited:    make(chan struct{}),
		listed:    make(chan struct{}),
		links:     make(map[int]*linkState),
		addrs:     make(map[int]map[netip.Prefix]struct{}),
		dirty:     make(map[int]struct{}),
		published: make(map[int]*Interface),
		nsids:     newNsidCache(),
	}
}

// stop ends the worker; removed says whether the namespace left our view (emit
// removals) or the watcher is shutting down (emit nothing).
func (k *nsWorker) stop(removed bool) {
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		return
	}
	k.stopped, k.removed = true, removed
	if k.sock != nil {
		k.sock.Close()
	}
	k.mu.Unlock()
	close(k.done)
}

func (k *nsWorker) isStopped() bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stopped
}

// breakSocket closes the current socket as a failure would (test hook).
func (k *nsWorker) breakSocket() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.sock != nil {
		k.sock.Close()
	}
}

func (k *nsWorker) emit(kind EventKind, iface *Interface) {
	k.w.disp.push(Event{Kind: kind, Netns: k.ns, Iface: iface})
}

// run is the namespace's goroutine.
func (k *nsWorker) run() {
	defer close(k.exited)
	k.emit(NetnsAdded, nil)
	retry := 10 * time.Millisecond
	for {
		opened, err := k.session()
		if k.isStopped() {
			break
		}
		k.w.stats.netlinkErrors.Add(1)
		k.w.stats.recoveries.Add(1)
		k.w.setLastError(fmt.Errorf("netns %d (%s): %w", k.ns.ID, k.ns.Path, err))
		if opened {
			retry = 10 * time.Millisecond
			continue
		}
		// The socket could not even be opened (fd limit?): back off.
		select {
		case <-k.done:
		case <-time.After(retry):
		}
		retry = min(2*retry, time.Second)
	}
	k.finish()
}

// markListed records that the namespace's interfaces have been queued once.
func (k *nsWorker) markListed() { k.listedOnce.Do(func() { close(k.listed) }) }

// finish reports the removal of every interface, then of the namespace, when
// the namespace left our view.
func (k *nsWorker) finish() {
	defer k.markListed()
	k.mu.Lock()
	removed := k.removed
	k.mu.Unlock()
	k.pubMu.Lock()
	idx := slices.Sorted(maps.Keys(k.published))
	gone := make([]*Interface, 0, len(idx))
	for _, i := range idx {
		gone = append(gone, k.published[i])
		delete(k.published, i)
	}
	k.pubMu.Unlock()
	k.w.stats.interfaces.Add(-int64(len(gone)))
	if !removed {
		return
	}
	for _, iface := range gone {
		k.emit(IfaceRemoved, iface)
	}
	k.emit(NetnsRemoved, nil)
}

// session opens the socket, lists the namespace and follows its notifications
// until an error. opened reports whether the socket was opened.
func (k *nsWorker) session() (opened bool, err error) {
	sock, err := openRTNL(k.file, k.w.rcvBuf, k.ns.Path)
	if err != nil {
		k.w.stats.openErrors.Add(1)
		return false, err
	}
	k.mu.Lock()
	if k.stopped {
		k.mu.Unlock()
		sock.Close()
		return true, nil
	}
	k.sock = sock
	k.mu.Unlock()
	defer func() {
		k.mu.Lock()
		k.sock = nil
		k.mu.Unlock()
		sock.Close()
	}()

	k.backlog = nil
	if err := k.startListing(sock); err != nil {
		return true, err
	}
	for {
		for len(k.backlog) > 0 {
			m := k.backlog[0]
			k.backlog = k.backlog[1:]
			if err := k.handle(sock, m); err != nil {
				return true, err
			}
		}
		if k.phase == phaseIdle {
			if err := k.flushDirty(sock); err != nil {
				return true, err
			}
			k.markListed()
		}
		if len(k.backlog) > 0 {
			continue // read while flushing (an nsid query): handle before blocking
		}
		if hook := k.w.beforeRecv; hook != nil {
			hook(k.ns.ID)
		}
		buf, n, err := sock.recv()
		if err != nil {
			return true, fmt.Errorf("receive: %w", err)
		}
		err = splitMessages((*buf)[:n], func(m nlMessage) error { return k.handle(sock, m) })
		putBuf(buf)
		if err != nil {
			return true, err
		}
	}
}

// startListing begins a full listing: links first, then addresses.
func (k *nsWorker) startListing(sock *rtnlSocket) error {
	k.phase = phaseLinks
	k.dumpIntr = false
	k.seen = make(map[int]struct{})
	k.newAddrs = nil
	k.dumpSeq = sock.nextSeq()
	if err := sock.send(dumpRequest(unix.RTM_GETLINK, k.dumpSeq)); err != nil {
		return fmt.Errorf("request link dump: %w", err)
	}
	return nil
}

func (k *nsWorker) isDumpReply(sock *rtnlSocket, m nlMessage) bool {
	return k.phase != phaseIdle && m.hdr.Pid == sock.pid && m.hdr.Seq == k.dumpSeq
}

// handle applies one message to the working view.
func (k *nsWorker) handle(sock *rtnlSocket, m nlMessage) error {
	dump := k.isDumpReply(sock, m)
	if dump && m.hdr.Flags&unix.NLM_F_DUMP_INTR != 0 {
		k.dumpIntr = true
	}
	switch m.hdr.Type {
	case unix.NLMSG_DONE:
		if !dump {
			return nil
		}
		if err := errorCode(m.data); err != nil && !errors.Is(err, errShortMessage) {
			return fmt.Errorf("dump: %w", err)
		}
		return k.dumpDone(sock)
	case unix.NLMSG_ERROR:
		if dump {
			if err := errorCode(m.data); err != nil {
				return fmt.Errorf("dump: %w", err)
			}
		}
	case unix.RTM_NEWLINK:
		lm, err := parseLink(m.data)
		if err != nil {
			return err
		}
		if lm.family != unix.AF_UNSPEC {
			return nil // bridge port (AF_BRIDGE) notifications, not devices
		}
		k.applyLink(sock, lm)
	case unix.RTM_DELLINK:
		lm, err := parseLink(m.data)
		if err != nil {
			return err
		}
		if lm.family != unix.AF_UNSPEC {
			return nil // a port leaving a bridge, not a device going away
		}
		return k.deleteLink(sock, lm.index)
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		am, ok, err := parseAddr(m.data)
		if err != nil || !ok {
			return err
		}
		k.applyAddr(am, m.hdr.Type == unix.RTM_NEWADDR, dump)
	}
	return nil
}

func (k *nsWorker) applyLink(sock *rtnlSocket, lm linkMsg) {
	st := k.links[lm.index]
	if st == nil || st.msg.kind != lm.kind {
		// A device's kind never changes: a different kind under a known
		// ifindex is a new device whose predecessor's removal we missed.
		st = &linkState{}
		k.links[lm.index] = st
	}
	st.msg = lm
	// The first end of a veth pair is announced before its peer exists, with
	// no IFLA_LINK, and nothing is sent when the peer appears: complete it
	// from the peer's announcement.
	if lm.kind == "veth" && lm.link != 0 && lm.linkNsid < 0 {
		if peer := k.links[lm.link]; peer != nil && peer.msg.kind == "veth" && peer.msg.link == 0 {
			peer.msg.link = lm.index
			k.dirty[lm.link] = struct{}{}
		}
	}
	if !st.infoDone {
		k.fetchInfo(sock, st)
	}
	if k.phase == phaseLinks {
		k.seen[lm.index] = struct{}{}
	}
	k.dirty[lm.index] = struct{}{}
}

// deleteLink forgets a link and reports its removal at once, even during a
// listing, so that a new device reusing the ifindex is a new identity.
func (k *nsWorker) deleteLink(sock *rtnlSocket, index int) error {
	delete(k.links, index)
	delete(k.addrs, index)
	delete(k.seen, index)
	delete(k.newAddrs, index)
	delete(k.dirty, index)
	return k.flush(sock, index)
}

func (k *nsWorker) applyAddr(am addrMsg, add, dump bool) {
	set := func(m map[int]map[netip.Prefix]struct{}) {
		if m == nil {
			return
		}
		s := m[am.index]
		if add {
			if s == nil {
				s = make(map[netip.Prefix]struct{})
				m[am.index] = s
			}
			s[am.prefix] = struct{}{}
		} else {
			delete(s, am.prefix)
		}
	}
	if k.phase == phaseAddrs {
		set(k.newAddrs)
	}
	if !dump {
		set(k.addrs)
	}
	k.dirty[am.index] = struct{}{}
}

// dumpDone moves the listing on: after the links, sweep those that vanished
// unannounced and list the addresses; after the addresses, publish.
func (k *nsWorker) dumpDone(sock *rtnlSocket) error {
	switch k.phase {
	case phaseLinks:
		for idx := range k.links {
			if _, ok := k.seen[idx]; !ok {
				delete(k.links, idx)
				delete(k.addrs, idx)
				k.dirty[idx] = struct{}{}
			}
		}
		k.seen = nil
		k.phase = phaseAddrs
		k.newAddrs = make(map[int]map[netip.Prefix]struct{})
		k.dumpSeq = sock.nextSeq()
		if err := sock.send(dumpRequest(unix.RTM_GETADDR, k.dumpSeq)); err != nil {
			return fmt.Errorf("request address dump: %w", err)
		}
	case phaseAddrs:
		k.addrs = k.newAddrs
		k.newAddrs = nil
		if k.dumpIntr {
			// The kernel says the dump saw concurrent changes: list again.
			return k.startListing(sock)
		}
		k.phase = phaseIdle
		for idx := range k.links {
			k.dirty[idx] = struct{}{}
		}
		k.pubMu.Lock()
		for idx := range k.published {
			k.dirty[idx] = struct{}{}
		}
		k.pubMu.Unlock()
	}
	return nil
}

// flushDirty publishes the differences for every link touched, by ifindex.
func (k *nsWorker) flushDirty(sock *rtnlSocket) error {
	if len(k.dirty) == 0 {
		return nil
	}
	idx := slices.Sorted(maps.Keys(k.dirty))
	clear(k.dirty)
	for _, i := range idx {
		if err := k.flush(sock, i); err != nil {
			return err
		}
	}
	return nil
}

// flush compares the working and published state of one ifindex and emits
// what changed. Selection is evaluated on the current state, so a rename can
// add or remove an interface from the consumer's view.
func (k *nsWorker) flush(sock *rtnlSocket, index int) error {
	cur, err := k.build(sock, index)
	if err != nil {
		return err
	}
	sel := cur != nil && k.w.sel.selected(k.ns, cur)
	k.pubMu.Lock()
	pub := k.published[index]
	switch {
	case sel:
		k.published[index] = cur
	case pub != nil:
		delete(k.published, index)
	}
	k.pubMu.Unlock()
	switch {
	case pub != nil && !sel:
		k.w.stats.interfaces.Add(-1)
		k.emit(IfaceRemoved, pub)
	case pub == nil && sel:
		k.w.stats.interfaces.Add(1)
		k.emit(IfaceAdded, cur.Clone())
	case pub != nil && sel && pub.Kind != cur.Kind:
		k.emit(IfaceRemoved, pub)
		k.emit(IfaceAdded, cur.Clone())
	case pub != nil && sel && !pub.equal(cur):
		k.emit(IfaceChanged, cur.Clone())
	}
	return nil
}

// build makes the Interface for index from the working view; nil when the
// link does not exist.
func (k *nsWorker) build(sock *rtnlSocket, index int) (*Interface, error) {
	st := k.links[index]
	if st == nil {
		return nil, nil
	}
	m := &st.msg
	iface := &Interface{
		ID:          netif.ID{Netns: k.ns.ID, Ifindex: netif.Ifindex(index)},
		Name:        m.name,
		MAC:         slices.Clone(m.mac),
		Kind:        m.kind,
		Driver:      st.driver,
		PCIAddress:  st.pci,
		VF:          st.vf,
		PhysFn:      st.physfn,
		LinkIndex:   netif.Ifindex(m.link),
		MasterIndex: netif.Ifindex(m.master),
		OperState:   operStateName(m.operState),
		AdminUp:     m.flags&unix.IFF_UP != 0,
		MTU:         m.mtu,
	}
	if iface.Kind == "" {
		switch {
		case m.flags&unix.IFF_LOOPBACK != 0:
			iface.Kind = KindLoopback
		case st.vf:
			iface.Kind = KindVF
		default:
			iface.Kind = KindPhysical
		}
	}
	if m.link != 0 {
		if m.linkNsid < 0 {
			iface.LinkNetns = k.ns.ID
		} else {
			id, err := k.resolveNsid(sock, m.linkNsid)
			if err != nil {
				return nil, err
			}
			iface.LinkNetns = id
		}
	}
	if s := k.addrs[index]; len(s) > 0 {
		iface.Addrs = slices.SortedFunc(maps.Keys(s), comparePrefix)
	}
	return iface, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// snapshot copies the published interfaces, by ifindex.
func (k *nsWorker) snapshot() []Interface {
	k.pubMu.Lock()
	defer k.pubMu.Unlock()
	out := make([]Interface, 0, len(k.published))
	for _, i := range slices.Sorted(maps.Keys(k.published)) {
		out = append(out, *k.published[i].Clone())
	}
	return out
}
