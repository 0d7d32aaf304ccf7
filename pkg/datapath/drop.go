package datapath

import (
	"fmt"
	"io"

	"github.com/cilium/ebpf/link"
)

// AttachDropHook attaches the kfree_skb program (raw tracepoint). It reports
// drops of packets on configured ports, or in namespaces that have a
// local-stack port, with the kernel's drop reason, rate-limited per flow by
// DropReportInterval. Close the returned value to detach.
func (d *Datapath) AttachDropHook() (io.Closer, error) {
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{
		Name:    "kfree_skb",
		Program: d.objs.NsintKfreeSkb,
	})
	if err != nil {
		return nil, fmt.Errorf("attach kfree_skb drop hook: %w", err)
	}
	return l, nil
}
