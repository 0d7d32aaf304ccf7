package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxDatagram is the largest UDP payload read; longer ones are truncated by
// the kernel and then rejected by the decoder.
const maxDatagram = 65535

// socketCounters count what happened below the decoder.
type socketCounters struct {
	// kernelDrops is the kernel's count of datagrams dropped because the
	// socket's receive buffer was full (SO_RXQ_OVFL), summed over sockets.
	kernelDrops atomic.Uint64
}

// prepareSocket enlarges the receive buffer (SO_RCVBUFFORCE when allowed)
// and asks the kernel to report its drop counter with every datagram.
func prepareSocket(conn *net.UDPConn, readBuffer int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket of %s: %w", conn.LocalAddr(), err)
	}
	var serr error
	err = raw.Control(func(fd uintptr) {
		if readBuffer > 0 {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, readBuffer) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, readBuffer)
			}
		}
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set socket options on %s: %w", conn.LocalAddr(), err)
	}
	return nil
}

// readBatch is how many datagrams one recvmmsg call may return.
const readBatch = 64

// receive reads datagrams from conn until ctx ends or conn is closed.
func (c *Collector) receive(ctx context.Context, conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket of %s: %w", conn.LocalAddr(), err)
	}
	in := c.NewIngester()
	br := newBatchReader(readBatch, maxDatagram+1, unix.CmsgSpace(4)*2)
	var lastDrops uint32
	for {
		n, err := br.read(raw)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			c.ing.errors[ReasonReceive].Add(1)
			// A persistent error must not spin the CPU.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		now := time.Now().UnixNano()
		for i := range n {
			payload, from, oob, truncated := br.datagram(i)
			if d, ok := rxqOverflow(oob); ok {
				// The counter is cumulative per socket and wraps at 2^32.
				c.sock.kernelDrops.Add(uint64(d - lastDrops))
				lastDrops = d
			}
			if truncated || len(payload) > maxDatagram {
				c.ing.datagrams.Add(1)
				c.ing.errors[ReasonTruncated].Add(1)
				continue
			}
			in.Ingest(from, payload, now)
		}
	}
}

// rxqOverflow finds the SO_RXQ_OVFL control message.
func rxqOverflow(oob []byte) (uint32, bool) {
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0])) // length checked above
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			return 0, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL && l >= unix.CmsgLen(4) {
			data := oob[unix.CmsgLen(0):unix.CmsgLen(4)]
			return binary.NativeEndian.Uint32(data), true
		}
		oob = oob[min(unix.CmsgSpace(l-unix.CmsgLen(0)), len(oob)):]
	}
	return 0, false
}
