package ifacewatch

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netns"
)

// rtnlSocket is the one rtnetlink socket of a namespace: it receives the link
// and address notifications, carries the dumps that (re-)list the namespace,
// the RTM_GETNSID queries, and the ethtool ioctls (a netlink socket hands
// device ioctls to its own namespace, so no second socket is needed).
//
// The fd is non-blocking and registered with Go's poller through os.File, so
// a reader parks without a thread and Close wakes it.
type rtnlSocket struct {
	f    *os.File
	rc   syscall.RawConn
	pid  uint32 // our port id: the nlmsg_pid of replies to our requests
	seq  uint32
	name string
}

// rtnlGroups are the multicast groups every namespace subscribes to.
var rtnlGroups = []int{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR}

// defaultRcvBuf is the receive buffer asked for (SO_RCVBUFFORCE). Memory is
// only charged while messages wait in it.
const defaultRcvBuf = 4 << 20

// openRTNL opens a subscribed rtnetlink socket inside the namespace ns.
func openRTNL(ns *netns.NS, rcvBuf int, name string) (*rtnlSocket, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket in netns %s: %w", name, err)
	}
	s, err := setupRTNL(fd, rcvBuf)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket in netns %s: %w", name, err)
	}
	s.name = name
	return s, nil
}

func setupRTNL(fd int, rcvBuf int) (*rtnlSocket, error) {
	if rcvBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf); err != nil {
				return nil, fmt.Errorf("SO_RCVBUF: %w", err)
			}
		}
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	for _, g := range rtnlGroups {
		if err := unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, g); err != nil {
			return nil, fmt.Errorf("join group %d: %w", g, err)
		}
	}
	// Kernels that know it filter dump requests strictly; harmless elsewhere.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_GET_STRICT_CHK, 1)
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return nil, fmt.Errorf("getsockname: %w", err)
	}
	nsa, ok := sa.(*unix.SockaddrNetlink)
	if !ok {
		return nil, fmt.Errorf("getsockname: unexpected address %T", sa)
	}
	f := os.NewFile(uintptr(fd), "rtnetlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("syscall conn: %w", err)
	}
	return &rtnlSocket{f: f, rc: rc, pid: nsa.Pid}, nil
}

// Close closes the socket; a goroutine blocked in recv returns an error.
func (s *rtnlSocket) Close() error { return s.f.Close() }

// nextSeq returns a fresh sequence number for a request.
func (s *rtnlSocket) nextSeq() uint32 {
	s.seq++
	if s.seq == 0 {
		s.seq = 1
	}
	return s.seq
}

// send writes one complete netlink message.
func (s *rtnlSocket) send(msg []byte) error {
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err != nil {
		return err
	}
	return serr
}

// recvBufSize bounds one datagram: the kernel caps dump skbs at 32 KiB.
const recvBufSize = 64 << 10

var recvBufs = sync.Pool{New: func() any { b := make([]byte, recvBufSize); return &b }}

// recv waits for one datagram and returns it in a pooled buffer, which the
// caller hands back with putBuf. Buffers are taken only once data is there, so
// a thousand idle namespaces hold none.
func (s *rtnlSocket) recv() (*[]byte, int, error) {
	var (
		buf  *[]byte
		n    int
		rerr error
	)
	err := s.rc.Read(func(fd uintptr) bool {
		buf = recvBufs.Get().(*[]byte)
		var flags int
		n, _, flags, _, rerr = unix.Recvmsg(int(fd), *buf, nil, 0)
		if rerr == unix.EAGAIN {
			recvBufs.Put(buf)
			buf = nil
			return false
		}
		if rerr == nil && flags&unix.MSG_TRUNC != 0 {
			rerr = fmt.Errorf("netlink datagram larger than %d bytes", recvBufSize)
		}
		return true
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		if buf != nil {
			recvBufs.Put(buf)
		}
		return nil, 0, err
	}
	return buf, n, nil
}

func putBuf(b *[]byte) { recvBufs.Put(b) }

// ethtoolDrvinfo runs ETHTOOL_GDRVINFO for the interface name in the socket's
// namespace.
func (s *rtnlSocket) ethtoolDrvinfo(name string) (*unix.EthtoolDrvinfo, error) {
	var (
		info *unix.EthtoolDrvinfo
		ierr error
	)
	err := s.rc.Control(func(fd uintptr) {
		info, ierr = unix.IoctlGetEthtoolDrvinfo(int(fd), name)
	})
	if err != nil {
		return nil, err
	}
	return info, ierr
}

// nlmsg builds a netlink request: header, fixed payload, then attributes.
func nlmsg(typ, flags uint16, seq uint32, payload []byte, attrs ...[]byte) []byte {
	n := unix.NLMSG_HDRLEN + nlaAlign(len(payload))
	for _, a := range attrs {
		n += nlaAlign(len(a))
	}
	b := make([]byte, n)
	h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
	h.Len = uint32(n)
	h.Type = typ
	h.Flags = flags
	h.Seq = seq
	off := unix.NLMSG_HDRLEN
	copy(b[off:], payload)
	off += nlaAlign(len(payload))
	for _, a := range attrs {
		copy(b[off:], a)
		off += nlaAlign(len(a))
	}
	return b
}

// nlattr encodes one attribute.
func nlattr(typ uint16, val []byte) []byte {
	b := make([]byte, unix.SizeofNlAttr+len(val))
	a := (*unix.NlAttr)(unsafe.Pointer(&b[0]))
	a.Len = uint16(len(b))
	a.Type = typ
	copy(b[unix.SizeofNlAttr:], val)
	return b
}

func nlaAlign(n int) int { return (n + unix.NLA_ALIGNTO - 1) &^ (unix.NLA_ALIGNTO - 1) }
