package agentproc

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
)

// Attachments lists what of nsint's is attached in ns, one entry per hook
// attachment: legacy cls_bpf filters named nsint-* and TCX programs named
// nsint_*, on every interface of the namespace.
func Attachments(ns *netnstest.NS) ([]string, error) {
	h, err := ns.Handle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list links in %s: %w", ns.Name, err)
	}
	var found []string
	for _, l := range links {
		name, idx := l.Attrs().Name, l.Attrs().Index
		for _, parent := range []uint32{netlink.HANDLE_MIN_INGRESS, netlink.HANDLE_MIN_EGRESS} {
			filters, err := h.FilterList(l, parent)
			if err != nil {
				continue // no clsact on this device
			}
			for _, f := range filters {
				if bf, ok := f.(*netlink.BpfFilter); ok && strings.HasPrefix(bf.Name, "nsint-") {
					found = append(found, fmt.Sprintf("%s tc %x %s", name, parent, bf.Name))
				}
			}
		}
		err := ns.Do(func() error {
			for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
				res, err := link.QueryPrograms(link.QueryOptions{Target: idx, Attach: at})
				if err != nil {
					continue // no TCX on this device or kernel
				}
				for _, qp := range res.Programs {
					prog, err := ebpf.NewProgramFromID(qp.ID)
					if err != nil {
						continue
					}
					info, err := prog.Info()
					prog.Close()
					if err == nil && strings.HasPrefix(info.Name, "nsint_") {
						found = append(found, fmt.Sprintf("%s tcx %s %s", name, at, info.Name))
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("query tcx programs in %s: %w", ns.Name, err)
		}
	}
	return found, nil
}
