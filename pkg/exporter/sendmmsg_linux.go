package exporter

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendmmsg hands msgs to the kernel in one system call and returns how many
// it accepted. golang.org/x/sys/unix has the types but no wrapper. The
// messages point into Go memory that stays referenced by the caller for the
// duration of the call.
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, unix.Errno) {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
		uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// waitWritable waits up to timeoutMs for fd to accept more data.
func waitWritable(fd int, timeoutMs int) bool {
	pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		n, err := unix.Poll(pfd[:], timeoutMs)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n > 0
	}
}

// gsoCmsgSpace is the room for one UDP_SEGMENT control message.
var gsoCmsgSpace = unix.CmsgSpace(2)

// putGSOSize writes a UDP_SEGMENT control message into b (gsoCmsgSpace
// bytes): the kernel cuts the message into datagrams of size bytes.
func putGSOSize(b []byte, size uint16) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&b[unix.CmsgLen(0)])) = size // host order, as the kernel reads it
}

// isGSOUnsupported tells the errors with which the kernel refuses
// segmentation offload on this route (no checksum offload on the device,
// an IPsec route, an old kernel) from errors of the destination.
func isGSOUnsupported(errno unix.Errno) bool {
	return errno == unix.EIO || errno == unix.EINVAL || errno == unix.ENOPROTOOPT || errno == unix.EOPNOTSUPP
}
