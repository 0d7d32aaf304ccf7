package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/internal/netnstest"
)

// linkListener is the attach-latency baseline: a bare rtnetlink socket
// subscribed to link events inside one namespace, the least any discovery
// can do to learn that an interface appeared. It does nothing but read.
type linkListener struct {
	fd int
	ns string
}

// listenLinks subscribes a new rtnetlink socket in ns to link events. Its
// receive timeout bounds each read, so that wait can give up.
func listenLinks(ns *netnstest.NS) (*linkListener, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netns %s: rtnetlink socket: %w", ns.Name, err)
	}
	tv := unix.Timeval{Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns %s: receive timeout: %w", ns.Name, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: unix.RTMGRP_LINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netns %s: subscribe to link events: %w", ns.Name, err)
	}
	return &linkListener{fd: fd, ns: ns.Name}, nil
}

// wait reads link events until each of names has been seen in an
// RTM_NEWLINK, or timeout passes, and closes the socket. It returns when
// each name was first seen (the time its message was read). onSeen, when
// not nil, is called at once for each name's first sighting with the
// link's index; what it does delays the reading of later messages, as it
// would in any single-threaded discovery.
func (l *linkListener) wait(timeout time.Duration, onSeen func(name string, index int), names ...string) (map[string]time.Time, error) {
	defer unix.Close(l.fd)
	seen := make(map[string]time.Time, len(names))
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	buf := make([]byte, 64<<10)
	deadline := time.Now().Add(timeout)
	for len(seen) < len(names) {
		if time.Now().After(deadline) {
			return seen, fmt.Errorf("netns %s: saw %d of %v within %v", l.ns, len(seen), names, timeout)
		}
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		at := time.Now()
		switch {
		case errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return seen, fmt.Errorf("netns %s: read link events: %w", l.ns, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return seen, fmt.Errorf("netns %s: parse link events: %w", l.ns, err)
		}
		for _, m := range msgs {
			if m.Header.Type != unix.RTM_NEWLINK {
				continue
			}
			attrs, err := syscall.ParseNetlinkRouteAttr(&m)
			if err != nil {
				continue
			}
			for _, a := range attrs {
				if a.Attr.Type != unix.IFLA_IFNAME {
					continue
				}
				name := unix.ByteSliceToString(a.Value)
				if _, done := seen[name]; want[name] && !done {
					seen[name] = at
					if onSeen != nil && len(m.Data) >= unix.SizeofIfInfomsg {
						onSeen(name, int(int32(binary.NativeEndian.Uint32(m.Data[4:8])))) // ifi_index
					}
				}
			}
		}
	}
	return seen, nil
}
