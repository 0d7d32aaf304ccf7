package collector

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr of recvmmsg(2)/sendmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// batchReader receives up to len(msgs) datagrams per recvmmsg(2) call, each
// with its source address and control messages (SO_RXQ_OVFL).
type batchReader struct {
	bufs  [][]byte
	oobs  [][]byte
	names []unix.RawSockaddrAny
	iovs  []unix.Iovec
	msgs  []mmsghdr
}

func newBatchReader(batch, bufSize, oobSize int) *batchReader {
	r := &batchReader{
		bufs: make([][]byte, batch), oobs: make([][]byte, batch), names: make([]unix.RawSockaddrAny, batch),
		iovs: make([]unix.Iovec, batch), msgs: make([]mmsghdr, batch),
	}
	for i := range batch {
		r.bufs[i] = make([]byte, bufSize)
		r.oobs[i] = make([]byte, oobSize)
	}
	return r
}

// read blocks (through the runtime's poller) until at least one datagram is
// there and returns how many were received.
func (r *batchReader) read(raw syscall.RawConn) (int, error) {
	for i := range r.msgs {
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(len(r.bufs[i]))
		h := &r.msgs[i].hdr
		*h = unix.Msghdr{}
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = unix.SizeofSockaddrAny
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oobs[i][0]
		h.SetControllen(len(r.oobs[i]))
		r.msgs[i].len = 0
	}
	var n int
	var errno syscall.Errno
	err := raw.Read(func(fd uintptr) bool {
		// The socket is non-blocking: EAGAIN hands the wait to the poller.
		r0, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])),
			uintptr(len(r.msgs)), 0, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		n, errno = int(r0), e
		return true
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	return n, nil
}

// datagram returns the i-th datagram of the last read: payload, source,
// control messages and whether the kernel truncated it.
func (r *batchReader) datagram(i int) (payload []byte, from netip.Addr, oob []byte, truncated bool) {
	m := &r.msgs[i]
	switch r.names[i].Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.names[i]))
		from = netip.AddrFrom4(sa.Addr)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.names[i]))
		from = netip.AddrFrom16(sa.Addr).Unmap()
	}
	n := min(int(m.len), len(r.bufs[i]))
	return r.bufs[i][:n], from, r.oobs[i][:m.hdr.Controllen], m.hdr.Flags&unix.MSG_TRUNC != 0
}
