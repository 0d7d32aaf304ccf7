package collector

import (
	"fmt"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSender sends many datagrams per system call on a connected UDP
// socket, so that one test goroutine can flood faster than one write(2) per
// report allows.
type batchSender struct {
	conn *net.UDPConn
	iovs []unix.Iovec
	msgs []mmsghdr
}

func newBatchSender(conn *net.UDPConn, batch int) *batchSender {
	return &batchSender{conn: conn, iovs: make([]unix.Iovec, batch), msgs: make([]mmsghdr, batch)}
}

// send sends every payload (at most the batch size) and returns how many the
// kernel accepted.
func (s *batchSender) send(payloads [][]byte) (int, error) {
	for i, p := range payloads {
		s.iovs[i].Base = &p[0]
		s.iovs[i].SetLen(len(p))
		s.msgs[i] = mmsghdr{}
		s.msgs[i].hdr.Iov = &s.iovs[i]
		s.msgs[i].hdr.SetIovlen(1)
	}
	raw, err := s.conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	sent := 0
	var serr error
	err = raw.Write(func(fd uintptr) bool {
		for sent < len(payloads) {
			n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.msgs[sent])),
				uintptr(len(payloads)-sent), 0, 0, 0)
			if errno == unix.EAGAIN {
				return false
			}
			if errno != 0 {
				serr = fmt.Errorf("sendmmsg: %w", errno)
				return true
			}
			sent += int(n)
		}
		return true
	})
	if err == nil {
		err = serr
	}
	return sent, err
}
