package ifacewatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nlMessage is one netlink message inside a received datagram.
type nlMessage struct {
	hdr  unix.NlMsghdr
	data []byte // payload after the header; aliases the receive buffer
}

var errShortMessage = errors.New("truncated netlink message")

// splitMessages walks the messages of one datagram.
func splitMessages(b []byte, fn func(nlMessage) error) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		h := *(*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
		if int(h.Len) < unix.NLMSG_HDRLEN || int(h.Len) > len(b) {
			return errShortMessage
		}
		if err := fn(nlMessage{hdr: h, data: b[unix.NLMSG_HDRLEN:h.Len]}); err != nil {
			return err
		}
		next := nlmAlign(int(h.Len))
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return nil
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// walkAttrs calls fn for each attribute in b.
func walkAttrs(b []byte, fn func(typ uint16, val []byte)) {
	for len(b) >= unix.SizeofNlAttr {
		a := *(*unix.NlAttr)(unsafe.Pointer(&b[0]))
		if int(a.Len) < unix.SizeofNlAttr || int(a.Len) > len(b) {
			return
		}
		fn(a.Type&^(unix.NLA_F_NESTED|unix.NLA_F_NET_BYTEORDER), b[unix.SizeofNlAttr:a.Len])
		next := nlaAlign(int(a.Len))
		if next > len(b) {
			return
		}
		b = b[next:]
	}
}

// linkMsg is what we keep of an RTM_NEWLINK/RTM_DELLINK message. Every field
// is a copy: nothing aliases the receive buffer.
type linkMsg struct {
	family       uint8
	index        int
	flags        uint32
	name         string
	mac          []byte
	mtu          int
	operState    uint8
	kind         string
	link         int
	linkNsid     int // IFLA_LINK_NETNSID; -1 when absent (same namespace)
	master       int
	parentDev    string // IFLA_PARENT_DEV_NAME, the PCI address for PCI devices
	parentDevBus string
}

func parseLink(data []byte) (linkMsg, error) {
	if len(data) < unix.SizeofIfInfomsg {
		return linkMsg{}, fmt.Errorf("link message: %w", errShortMessage)
	}
	ifi := (*unix.IfInfomsg)(unsafe.Pointer(&data[0]))
	m := linkMsg{family: ifi.Family, index: int(ifi.Index), flags: ifi.Flags, linkNsid: -1}
	walkAttrs(data[unix.SizeofIfInfomsg:], func(typ uint16, val []byte) {
		switch typ {
		case unix.IFLA_IFNAME:
			m.name = cstring(val)
		case unix.IFLA_ADDRESS:
			m.mac = append([]byte(nil), val...)
		case unix.IFLA_MTU:
			m.mtu = int(u32(val))
		case unix.IFLA_OPERSTATE:
			if len(val) > 0 {
				m.operState = val[0]
			}
		case unix.IFLA_LINK:
			m.link = int(u32(val))
		case unix.IFLA_LINK_NETNSID:
			m.linkNsid = int(int32(u32(val)))
		case unix.IFLA_MASTER:
			m.master = int(u32(val))
		case unix.IFLA_PARENT_DEV_NAME:
			m.parentDev = cstring(val)
		case unix.IFLA_PARENT_DEV_BUS_NAME:
			m.parentDevBus = cstring(val)
		case unix.IFLA_LINKINFO:
			walkAttrs(val, func(t uint16, v []byte) {
				if t == unix.IFLA_INFO_KIND {
					m.kind = cstring(v)
				}
			})
		}
	})
	return m, nil
}

// addrMsg is one RTM_NEWADDR/RTM_DELADDR.
type addrMsg struct {
	index  int
	prefix netip.Prefix
}

func parseAddr(data []byte) (addrMsg, bool, error) {
	if len(data) < unix.SizeofIfAddrmsg {
		return addrMsg{}, false, fmt.Errorf("address message: %w", errShortMessage)
	}
	ifa := (*unix.IfAddrmsg)(unsafe.Pointer(&data[0]))
	var local, address []byte
	walkAttrs(data[unix.SizeofIfAddrmsg:], func(typ uint16, val []byte) {
		switch typ {
		case unix.IFA_LOCAL:
			local = val
		case unix.IFA_ADDRESS:
			address = val
		}
	})
	// As iproute2: IFA_LOCAL is the address of this end when present (IFA_ADDRESS
	// is then the peer of a point-to-point link).
	raw := local
	if raw == nil {
		raw = address
	}
	ip, ok := netip.AddrFromSlice(raw)
	if !ok || (ifa.Family != unix.AF_INET && ifa.Family != unix.AF_INET6) {
		return addrMsg{}, false, nil
	}
	p, err := ip.Unmap().Prefix(int(ifa.Prefixlen))
	if err != nil {
		return addrMsg{}, false, nil
	}
	// Prefix masks the host bits; keep the address itself.
	p = netip.PrefixFrom(ip.Unmap(), p.Bits())
	return addrMsg{index: int(ifa.Index), prefix: p}, true, nil
}

// operStates names IF_OPER_* as the kernel and iproute2 do.
var operStates = [...]string{"unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up"}

func operStateName(s uint8) string {
	if int(s) < len(operStates) {
		return operStates[s]
	}
	return fmt.Sprintf("oper(%d)", s)
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

func u32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(b)
}

// errorCode returns the errno of an NLMSG_ERROR payload (0 for an ack).
func errorCode(data []byte) error {
	if len(data) < 4 {
		return errShortMessage
	}
	code := int32(binary.NativeEndian.Uint32(data))
	if code == 0 {
		return nil
	}
	return unix.Errno(-code)
}

// dumpRequest builds an RTM_GETLINK or RTM_GETADDR dump for all families.
func dumpRequest(typ uint16, seq uint32) []byte {
	var payload []byte
	switch typ {
	case unix.RTM_GETLINK:
		payload = make([]byte, unix.SizeofIfInfomsg)
	default:
		payload = make([]byte, unix.SizeofIfAddrmsg)
	}
	return nlmsg(typ, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, seq, payload)
}

// getNsidRequest asks which nsid the socket's namespace gave the namespace fd.
func getNsidRequest(seq uint32, fd int) []byte {
	var v [4]byte
	binary.NativeEndian.PutUint32(v[:], uint32(fd))
	// struct rtgenmsg is one byte (family), padded to 4 by nlmsg.
	return nlmsg(unix.RTM_GETNSID, unix.NLM_F_REQUEST, seq, []byte{unix.AF_UNSPEC}, nlattr(unix.NETNSA_FD, v[:]))
}

// parseNsid reads NETNSA_NSID from an RTM_NEWNSID reply; -1 when not assigned.
func parseNsid(data []byte) int {
	nsid := -1
	if len(data) < 4 {
		return nsid
	}
	walkAttrs(data[4:], func(typ uint16, val []byte) {
		if typ == unix.NETNSA_NSID {
			nsid = int(int32(u32(val)))
		}
	})
	return nsid
}
