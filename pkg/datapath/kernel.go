package datapath

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"

	"github.com/cilium/ebpf/btf"
)

// ErrUnknownDropReason is returned when the running kernel has no drop
// reason of the given name.
var ErrUnknownDropReason = errors.New("unknown kernel drop reason")

// kfreeSkbInfo is what the drop hook needs to know about this kernel.
type kfreeSkbInfo struct {
	hasReason bool
	// hasRxSk: the tracepoint also passes the receiving socket (6.12+).
	hasRxSk bool
	// names are the kernel's drop reasons, value to name.
	names map[uint32]string
	// consumed is SKB_CONSUMED where kfree_skb can report it, else ^0.
	consumed uint32
}

// probeKfreeSkb reads from kernel BTF whether the kfree_skb tracepoint passes
// an enum skb_drop_reason (5.17+): btf_trace_kfree_skb is a pointer to
// func(void *, struct sk_buff *, void *location[, reason[, rx_sk]]).
func probeKfreeSkb(kernel *btf.Spec) (kfreeSkbInfo, error) {
	info := kfreeSkbInfo{consumed: ^uint32(0)}
	var td *btf.Typedef
	if err := kernel.TypeByName("btf_trace_kfree_skb", &td); err != nil {
		return info, fmt.Errorf("kernel btf: btf_trace_kfree_skb: %w", err)
	}
	ptr, ok := btf.UnderlyingType(td.Type).(*btf.Pointer)
	if !ok {
		return info, fmt.Errorf("kernel btf: btf_trace_kfree_skb is %s, not a pointer", td.Type)
	}
	proto, ok := btf.UnderlyingType(ptr.Target).(*btf.FuncProto)
	if !ok {
		return info, fmt.Errorf("kernel btf: btf_trace_kfree_skb points to %s, not a function", ptr.Target)
	}
	if len(proto.Params) < 4 {
		return info, nil
	}
	enum, ok := btf.UnderlyingType(proto.Params[3].Type).(*btf.Enum)
	if !ok || enum.Name != "skb_drop_reason" {
		return info, nil
	}
	info.hasReason = true
	info.names = make(map[uint32]string, len(enum.Values))
	for _, v := range enum.Values {
		info.names[uint32(v.Value)] = v.Name
		if v.Name == "SKB_CONSUMED" {
			info.consumed = uint32(v.Value)
		}
	}
	if len(proto.Params) >= 5 {
		if p, ok := btf.UnderlyingType(proto.Params[4].Type).(*btf.Pointer); ok {
			if s, ok := btf.UnderlyingType(p.Target).(*btf.Struct); ok && s.Name == "sock" {
				info.hasRxSk = true
			}
		}
	}
	return info, nil
}

// kernelDropInfo is what kernel BTF says about drops.
type kernelDropInfo struct {
	kfree kfreeSkbInfo
	// names is the enum skb_drop_reason, value to name (empty before 5.17).
	names map[uint32]string
}

// kernelDrops reads kernelDropInfo from kernel BTF once per process; Load,
// HaveDropReason and the drop reason names share it. Nothing writes the
// result after.
var kernelDrops = sync.OnceValues(func() (kernelDropInfo, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return kernelDropInfo{}, fmt.Errorf("load kernel btf: %w", err)
	}
	kfree, err := probeKfreeSkb(kernel)
	if err != nil {
		return kernelDropInfo{}, err
	}
	names, err := dropReasonNames(kernel)
	if err != nil {
		return kernelDropInfo{}, err
	}
	return kernelDropInfo{kfree: kfree, names: names}, nil
})

// DropReasonNames returns the running kernel's enum skb_drop_reason, value to
// name ("SKB_DROP_REASON_NO_SOCKET"), read from kernel BTF once per process
// (the map returned is the caller's). Values differ between kernels: resolve
// them here, never hard-code them. Empty on kernels without drop reasons.
func DropReasonNames() (map[uint32]string, error) {
	drops, err := kernelDrops()
	if err != nil {
		return nil, err
	}
	return maps.Clone(drops.names), nil
}

func dropReasonNames(kernel *btf.Spec) (map[uint32]string, error) {
	var enum *btf.Enum
	err := kernel.TypeByName("skb_drop_reason", &enum)
	if errors.Is(err, btf.ErrNotFound) {
		return map[uint32]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel btf: enum skb_drop_reason: %w", err)
	}
	names := make(map[uint32]string, len(enum.Values))
	for _, v := range enum.Values {
		if v.Value <= math.MaxUint32 {
			names[uint32(v.Value)] = v.Name
		}
	}
	return names, nil
}

// DropReasonByName resolves one kernel drop reason by its enum name.
func DropReasonByName(name string) (uint32, error) {
	drops, err := kernelDrops()
	if err != nil {
		return 0, err
	}
	for v, n := range drops.names {
		if n == name {
			return v, nil
		}
	}
	return 0, fmt.Errorf("%s: %w", name, ErrUnknownDropReason)
}
