package ifacewatch

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// mountWatcher wakes the main loop whenever the mount table of our mount
// namespace changes: /proc/self/mountinfo reports POLLPRI then. inotify sees
// neither a bind mount appearing on a namespace file nor its unmount, so
// this is what makes both event driven (the bounded backoff in retryPending
// stays as a safety net).
type mountWatcher struct {
	mountinfo int
	stopFd    int // eventfd: written to stop the poller
	changed   chan struct{}
	exited    chan struct{}
}

func newMountWatcher() (*mountWatcher, error) {
	mi, err := unix.Open("/proc/self/mountinfo", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open mountinfo: %w", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(mi)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	m := &mountWatcher{mountinfo: mi, stopFd: efd, changed: make(chan struct{}, 1), exited: make(chan struct{})}
	go m.run()
	return m, nil
}

// run blocks in poll(2) on its own thread: mountinfo is not pollable through
// Go's netpoller.
func (m *mountWatcher) run() {
	defer close(m.exited)
	for {
		// The kernel remembers, per open file, the mount table generation
		// last reported by poll; no need to read the file.
		fds := []unix.PollFd{{Fd: int32(m.mountinfo), Events: unix.POLLPRI}, {Fd: int32(m.stopFd), Events: unix.POLLIN}}
		for {
			_, err := unix.Poll(fds, -1)
			if !errors.Is(err, unix.EINTR) {
				break
			}
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			select {
			case m.changed <- struct{}{}:
			default:
			}
		}
	}
}

func (m *mountWatcher) close() {
	var one = [8]byte{1}
	unix.Write(m.stopFd, one[:])
	<-m.exited
	unix.Close(m.stopFd)
	unix.Close(m.mountinfo)
}
