package datapath

import (
	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// The C side numbers the hooks with enum nsint_direction
// (bpf/headers/nsint_types.h): the index of the tail-call table and of the
// per-direction counters, and the dir of identities, flow keys and events.
// Only this package sees those numbers; everything it hands out or takes is
// a netif.Direction, converted by the two functions below.
const (
	cIngress = bpf.NsintNsintDirectionNSINT_DIR_INGRESS
	cEgress  = bpf.NsintNsintDirectionNSINT_DIR_EGRESS
)

// cDirection returns dir's value in enum nsint_direction; ok is false when
// dir is neither hook.
func cDirection(dir netif.Direction) (c bpf.NsintNsintDirection, ok bool) {
	switch dir {
	case netif.Ingress:
		return cIngress, true
	case netif.Egress:
		return cEgress, true
	}
	return 0, false
}

// directionOf returns the hook a C dir field names, the zero Direction
// when it names neither.
func directionOf(c uint8) netif.Direction {
	switch bpf.NsintNsintDirection(c) {
	case cIngress:
		return netif.Ingress
	case cEgress:
		return netif.Egress
	}
	return 0
}
