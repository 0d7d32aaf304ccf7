package exporter

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

// DefaultPort is the UDP port used for a collector given without one: the
// de-facto default of the INT ecosystem (DeepInsight, fabric-tna, ONOS).
const DefaultPort = intreport.DefaultPort

// resolveCollector turns "host:port", "[v6]:port", or a host alone (DefaultPort)
// into a socket address. Host names are resolved here, once.
func resolveCollector(collector string) (*net.UDPAddr, unix.Sockaddr, error) {
	hostport := collector
	if !hasPort(collector) {
		hostport = net.JoinHostPort(strings.Trim(collector, "[]"), strconv.Itoa(DefaultPort))
	}
	addr, err := net.ResolveUDPAddr("udp", hostport)
	if err != nil {
		return nil, nil, fmt.Errorf("collector %q: %w", collector, err)
	}
	if addr.Port == 0 || addr.IP == nil || addr.IP.IsUnspecified() {
		return nil, nil, fmt.Errorf("collector %q: need a host and a non-zero port", collector)
	}
	sa := sockaddrOf(addr)
	if sa6, ok := sa.(*unix.SockaddrInet6); ok && addr.Zone != "" {
		ifi, err := net.InterfaceByName(addr.Zone)
		if err != nil {
			idx, perr := strconv.Atoi(addr.Zone)
			if perr != nil {
				return nil, nil, fmt.Errorf("collector %q: zone %q: %w", collector, addr.Zone, err)
			}
			sa6.ZoneId = uint32(idx)
		} else {
			sa6.ZoneId = uint32(ifi.Index)
		}
	}
	return addr, sa, nil
}

// sockaddrOf is addr as the socket calls take it (without its zone).
func sockaddrOf(addr *net.UDPAddr) unix.Sockaddr {
	if ip4 := addr.IP.To4(); ip4 != nil {
		sa := &unix.SockaddrInet4{Port: addr.Port}
		copy(sa.Addr[:], ip4)
		return sa
	}
	sa := &unix.SockaddrInet6{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To16())
	return sa
}

// hasPort reports whether a collector address names a port.
func hasPort(s string) bool {
	if strings.HasPrefix(s, "[") {
		return !strings.HasSuffix(s, "]")
	}
	switch strings.Count(s, ":") {
	case 0:
		return false
	case 1:
		return true
	default: // a bare IPv6 address
		return false
	}
}
