package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

// hwIDMask keeps the 6 bits of hw_id both report versions carry.
const hwIDMask = 0x3F

// writableWaitMs bounds how long one batch waits for a full socket buffer of
// one collector before dropping the rest of the batch for that collector.
const writableWaitMs = 10

// SendError is what Config.OnSendError receives: the latest error of one
// collector and how many errors it had since the previous call.
type SendError struct {
	Collector string // as configured
	Count     uint64 // errors since the previous OnSendError call for this collector, this one included
	Err       error  // a unix.Errno such as ECONNREFUSED or ENETUNREACH, or why a replicated collector has no replica
}

func (e *SendError) Error() string {
	return fmt.Sprintf("send to collector %s: %v (%d errors since last report)", e.Collector, e.Err, e.Count)
}

func (e *SendError) Unwrap() error { return e.Err }

// collector is one destination: its socket, its sequence numbers and counters.
// Everything but the counters belongs to the sender goroutine.
type collector struct {
	name string // as configured
	addr *net.UDPAddr
	sa   unix.Sockaddr
	fd   int

	// rep is set for a replicated collector, whose address is the replica
	// chosen for this agent and follows rep's choice (current: the one the
	// socket is connected to; invalid before the first).
	rep     *replicas
	current netip.AddrPort
	address atomic.Pointer[string] // addr as a string, for Stats
	moves   atomic.Uint64

	connected   bool
	lastConnect time.Time
	gso         bool // UDP segmentation offload: on until the route refuses it

	seq [hwIDMask + 1]uint32

	sent      atomic.Uint64
	errs      atomic.Uint64
	dropped   atomic.Uint64
	lastErrno atomic.Uintptr

	pendingErrs uint64
	lastNotice  time.Time
}

func openCollector(name string) (*collector, error) {
	addr, sa, err := resolveCollector(name)
	if err != nil {
		return nil, err
	}
	c := &collector{name: name, fd: -1}
	if err := c.open(addr, sa); err != nil {
		return nil, err
	}
	return c, nil
}

// openReplicated makes the collector of a replicated name. Its first
// resolution happens here; a name without addresses yet (replicas not ready)
// is not an error: reports are dropped, and counted, until it has some.
func openReplicated(ctx context.Context, rep *replicas) *collector {
	c := &collector{name: net.JoinHostPort(rep.host, strconv.Itoa(int(rep.port))), fd: -1, rep: rep, gso: true}
	c.address.Store(new(string))
	_ = rep.resolve(ctx) // kept in rep.lastErr
	return c
}

// open opens a socket for addr and connects it; a missing route is not an
// error (the socket is connected again later).
func (c *collector) open(addr *net.UDPAddr, sa unix.Sockaddr) error {
	family := unix.AF_INET6
	if _, ok := sa.(*unix.SockaddrInet4); ok {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return fmt.Errorf("socket for collector %s: %w", c.name, err)
	}
	c.addr, c.sa, c.fd, c.gso = addr, sa, fd, true
	str := addr.String()
	c.address.Store(&str)
	if err := c.connect(time.Now()); err != nil && !isRouteError(err) {
		c.close()
		return fmt.Errorf("connect to collector %s: %w", c.name, err)
	}
	return nil
}

// follow points a replicated collector's socket at the replica chosen now,
// and returns false while none is known. A move opens a new socket and starts
// the sequence numbers again from 0: the new replica sees an agent that
// (re)started, and when the agent later moves back, the old replica sees a
// restart (a resynchronisation) instead of a gap it would count as lost.
func (c *collector) follow() error {
	want := c.rep.chosen.Load()
	if want == nil {
		return c.rep.err()
	}
	if *want == c.current && c.fd >= 0 {
		return nil
	}
	if c.current.IsValid() {
		c.moves.Add(1)
	}
	if err := c.close(); err != nil {
		return fmt.Errorf("close socket of collector %s: %w", c.name, err)
	}
	c.current = *want
	c.seq = [hwIDMask + 1]uint32{}
	addr := net.UDPAddrFromAddrPort(*want)
	return c.open(addr, sockaddrOf(addr))
}

// connect (re)connects the socket so the kernel reports ICMP errors for it and
// picks the route and source address.
func (c *collector) connect(now time.Time) error {
	c.lastConnect = now
	if err := unix.Connect(c.fd, c.sa); err != nil {
		c.connected = false
		return err
	}
	c.connected = true
	return nil
}

// isRouteError tells the errors that mean "no way there right now" from
// configuration errors.
func isRouteError(err error) bool {
	return errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EHOSTUNREACH) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENETDOWN)
}

// errnoOf extracts the errno of a system call error (EIO if there is none).
func errnoOf(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return unix.EIO
}

func (c *collector) close() error {
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// send numbers the batch's reports for this collector (slots, in order) and
// hands them to the kernel as msgs, where msgs[i] carries counts[i] reports.
func (c *collector) send(e *Exporter, msgs []unix.Mmsghdr, counts []int, slots []*slot) {
	if c.rep != nil {
		if err := c.follow(); err != nil {
			c.failErr(e, err, time.Now())
			c.dropped.Add(uint64(len(slots)))
			return
		}
	}
	// Every report gets its number, sent or not, so that a gap at the
	// collector means a lost report.
	for _, s := range slots {
		seq := c.seq[s.hwID]
		c.seq[s.hwID] = seq + 1
		// The slot was encoded by intreport itself, so patching cannot
		// fail short of a bug there; a failure would show as a gap.
		_ = intreport.SetSequence(s.buf[:s.n], seq)
	}
	if !c.connected {
		now := time.Now()
		if now.Sub(c.lastConnect) < e.retryInterval {
			c.dropped.Add(uint64(len(slots)))
			return
		}
		if err := c.connect(now); err != nil {
			c.fail(e, errnoOf(err), now)
			c.dropped.Add(uint64(len(slots)))
			return
		}
	}
	if from := c.transmit(e, msgs, counts); from >= 0 {
		// The route refuses segmentation offload: from now on one
		// datagram per message, starting with the report that failed.
		c.gso = false
		c.transmit(e, e.msgs[from:len(slots)], e.ones[from:len(slots)])
	}
}

// transmit sends msgs with sendmmsg, counting reports as sent or dropped.
// It returns -1, or the index of the first report not handled when a
// segmented message was refused for want of segmentation offload.
func (c *collector) transmit(e *Exporter, msgs []unix.Mmsghdr, counts []int) int {
	off, report, retried := 0, 0, false
	skip := func() { // drops msgs[off]
		c.dropped.Add(uint64(counts[off]))
		report += counts[off]
		off++
		retried = false
	}
	for off < len(msgs) {
		sent, errno := sendmmsg(c.fd, msgs[off:])
		if errno == 0 && sent == 0 {
			errno = unix.EAGAIN // never seen; keeps the loop finite if it happens
		}
		if errno == 0 {
			for _, n := range counts[off : off+sent] {
				c.sent.Add(uint64(n))
				report += n
			}
			off += sent
			retried = false
			continue
		}
		switch {
		case errno == unix.EINTR:
			continue
		case errno == unix.EAGAIN:
			if waitWritable(c.fd, writableWaitMs) {
				continue
			}
		case errno == unix.ECONNREFUSED:
			// An ICMP port unreachable answered an earlier datagram; the
			// kernel reports it once, on this call, and sent nothing. The
			// current message deserves one more try: the collector may
			// be back.
			c.fail(e, errno, time.Now())
			if !retried {
				retried = true
				continue
			}
			skip()
			continue
		case counts[off] > 1 && isGSOUnsupported(errno):
			return report
		case errno == unix.EMSGSIZE:
			c.fail(e, errno, time.Now())
			skip()
			continue
		}
		// Anything else (ENETUNREACH, EHOSTUNREACH, ENOBUFS, EAGAIN after
		// the bounded wait, ...) would fail the same way for the rest of
		// the batch.
		c.fail(e, errno, time.Now())
		for _, n := range counts[off:] {
			c.dropped.Add(uint64(n))
		}
		return -1
	}
	return -1
}

// fail counts one error and tells the caller about it at most once per
// Config.ErrorInterval.
func (c *collector) fail(e *Exporter, errno unix.Errno, now time.Time) {
	c.lastErrno.Store(uintptr(errno))
	c.failErr(e, errno, now)
}

// failErr is fail for any error.
func (c *collector) failErr(e *Exporter, err error, now time.Time) {
	c.errs.Add(1)
	c.pendingErrs++
	if e.onSendError == nil || (!c.lastNotice.IsZero() && now.Sub(c.lastNotice) < e.errorInterval) {
		return
	}
	count := c.pendingErrs
	c.pendingErrs, c.lastNotice = 0, now
	e.onSendError(c.name, &SendError{Collector: c.name, Count: count, Err: err})
}

func (c *collector) stats() CollectorStats {
	st := CollectorStats{
		Collector: c.name,
		Address:   *c.address.Load(),
		Sent:      c.sent.Load(),
		Errors:    c.errs.Load(),
		Dropped:   c.dropped.Load(),
		Segmented: c.gso,
	}
	if errno := unix.Errno(c.lastErrno.Load()); errno != 0 {
		st.LastError = errno
	}
	if c.rep != nil {
		st.Replicas = int(c.rep.members.Load())
		st.Moves = c.moves.Load()
		if c.rep.chosen.Load() == nil {
			st.LastError = c.rep.err()
		}
	}
	return st
}
