package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/datapath"
	"github.com/nsint/nsint/pkg/dropreason"
	"github.com/nsint/nsint/pkg/intreport"
)

// reportExpect is one report a test waits for: the flow (src, dst, proto),
// where it was observed (ingress and egress port as "<netns name>:<port
// name>"; out "" for a drop) and, for a drop, the kernel's reason by name.
type reportExpect struct {
	what       string
	src, dst   netip.Addr
	proto      uint8
	in, out    string
	drop       bool
	dropReason string // SKB_DROP_REASON_…, for a drop
}

// waitReports waits until rcv holds a report for each of expects (up to 10 s
// each, scaled) and fails the test, prefixed by label, for each that never
// came, listing what came for its address pair. A drop must carry its reason:
// the INT code and, in v2.0, the kernel's value — or reason unknown (INT code
// 0, kernel value 0) on a kernel whose kfree_skb has none.
func waitReports(t *testing.T, label string, rcv *receiver, topo api.Topology, expects []reportExpect) {
	t.Helper()
	err := datapath.HaveDropReason()
	if err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		t.Fatal(err)
	}
	haveReason := err == nil
	if !haveReason {
		t.Log("kernel without drop reasons on kfree_skb: expecting drops with reason unknown")
	}
	kernelReason := func(name string) uint32 {
		if !haveReason {
			return 0
		}
		v, err := datapath.DropReasonByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	intCode := func(name string) uint8 {
		if !haveReason {
			return dropreason.CodeUnknown
		}
		return dropreason.CodeFor(name)
	}
	matches := func(r received, e reportExpect) bool {
		if r.tuple.Src != e.src || r.tuple.Dst != e.dst || r.tuple.Proto != e.proto ||
			e.drop != (r.rep.Kind == intreport.Drop) || portName(topo, r.rep.IngressPort) != e.in {
			return false
		}
		if e.out != "" && portName(topo, r.rep.EgressPort) != e.out {
			return false
		}
		if e.drop {
			if r.rep.DropReason != intCode(e.dropReason) {
				return false
			}
			if r.format == intreport.V20 && r.rep.KernelDropReason != kernelReason(e.dropReason) {
				return false
			}
		}
		return true
	}
	for _, e := range expects {
		found := func() bool {
			reps, _ := rcv.snapshot()
			for _, r := range reps {
				if matches(r, e) {
					return true
				}
			}
			return false
		}
		deadline := time.Now().Add(scaled(10 * time.Second))
		for !found() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if found() {
			continue
		}
		reps, _ := rcv.snapshot()
		var seen []string
		for _, r := range reps {
			if r.tuple.Src == e.src && r.tuple.Dst == e.dst {
				seen = append(seen, fmt.Sprintf("%s proto %d %s→%s drop=%d/%d", r.rep.Kind, r.tuple.Proto,
					portName(topo, r.rep.IngressPort), portName(topo, r.rep.EgressPort), r.rep.DropReason,
					r.rep.KernelDropReason))
			}
		}
		t.Errorf("%s: no report for %s (%s→%s proto %d at %s→%s); reports of that address pair:\n%s",
			label, e.what, e.src, e.dst, e.proto, e.in, e.out, strings.Join(seen, "\n"))
	}
}
