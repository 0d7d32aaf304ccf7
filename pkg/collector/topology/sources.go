package topology

import (
	"context"
	"maps"
	"net"
	"net/netip"
)

// SourceState is what the resolver knows of a report's source address: whether
// an agent sends from it.
type SourceState uint8

const (
	// SourceUnknown: no topology fetch from the address has completed yet
	// (with static agents: their host names are not all resolved yet);
	// its reports may wait for the first one.
	SourceUnknown SourceState = iota
	// SourceAgent: a known agent. Its topology was fetched from the address
	// (over verified TLS when the client checks certificates), or the
	// address is the host of a static agent URL.
	SourceAgent
	// SourceRejected: no agent. The first fetch from the address failed
	// (fetches go on every Refresh, so it becomes an agent when one
	// answers), or, with static agents, it is none of their hosts.
	SourceRejected
)

// Source says whether reports from addr come from a known agent. It never
// blocks and is safe for concurrent use.
func (r *Resolver) Source(addr netip.Addr) SourceState {
	s := r.snap.Load()
	if st, ok := s.sources[addr.Unmap().WithZone("")]; ok {
		return st
	}
	if s.staticDone {
		return SourceRejected
	}
	return SourceUnknown
}

// urlAddr returns the address of u's host when it is an IP literal.
func urlAddr(u string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(hostOf(u))
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// resolveHost returns the addresses of u's host (nil when it cannot be
// resolved: the previous addresses are kept).
func resolveHost(ctx context.Context, u string) []netip.Addr {
	if a, ok := urlAddr(u); ok {
		return []netip.Addr{a}
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(u))
	if err != nil || len(addrs) == 0 {
		return nil
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap().WithZone("")
	}
	return addrs
}

// sourcesLocked computes the source states of the agents: a static agent's
// host addresses and the address of every agent whose topology was fetched
// are agents; the address of a discovered agent whose fetches all failed
// is rejected.
func (r *Resolver) sourcesLocked() (map[netip.Addr]SourceState, bool) {
	out := map[netip.Addr]SourceState{}
	staticDone := r.static
	for _, a := range r.agents {
		if a.static && !a.done && a.addrs == nil {
			staticDone = false
		}
		if a.static || a.doc != nil || a.lastErr == "" {
			continue
		}
		if addr, ok := urlAddr(a.url); ok {
			out[addr] = SourceRejected
		}
	}
	for _, a := range r.agents {
		if a.static {
			for _, addr := range a.addrs {
				out[addr] = SourceAgent
			}
		}
		if a.doc != nil {
			if addr, ok := urlAddr(a.url); ok {
				out[addr] = SourceAgent
			}
		}
	}
	return out, staticDone
}

func sourcesChanged(old, cur *snapshot) bool {
	return old.staticDone != cur.staticDone || !maps.Equal(old.sources, cur.sources)
}

// evictRejectedLocked forgets one discovered agent whose fetches all failed
// (not one being fetched), to make room for a new one; false when there is
// none. Without it, reports from many addresses where no agent answers would
// fill the agent list and keep new agents out.
func (r *Resolver) evictRejectedLocked() bool {
	for u, a := range r.agents {
		if !a.static && a.doc == nil && a.lastErr != "" && !a.inFlight {
			delete(r.agents, u)
			return true
		}
	}
	return false
}
