// Package replica chooses, for one agent, the collector replica its reports
// go to: rendezvous (highest-random-weight) hashing of a key — the agent's
// node name — over the replicas' addresses.
//
// The choice depends only on the key and the set of addresses, never on their
// order or on earlier choices, so every agent computes its own without
// talking to the others, and a change of the set moves as few agents as
// possible: adding a replica to N moves about 1/(N+1) of the agents (each to
// the new one), and removing one moves exactly the agents it had, spread over
// the rest as evenly as hashing allows. Agents of the replicas that stay are
// not moved.
//
// The package is pure: no DNS, no sockets, no state.
package replica

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
)

// Pick returns the member whose weight for key is highest, and false when
// members is empty. Members are compared unmapped (an IPv4-mapped IPv6
// address is its IPv4 address); duplicates change nothing.
func Pick(key string, members []netip.AddrPort) (netip.AddrPort, bool) {
	var best netip.AddrPort
	var bestW uint64
	found := false
	for _, m := range members {
		m = netip.AddrPortFrom(m.Addr().Unmap(), m.Port())
		w := Weight(key, m)
		// Ties (never seen with 64-bit weights, but possible) go to the
		// smaller address, so the result does not depend on the order.
		if !found || w > bestW || (w == bestW && m.Compare(best) < 0) {
			best, bestW, found = m, w, true
		}
	}
	return best, found
}

// Weight is the rendezvous weight of member for key: a 64-bit hash of both,
// finalised so that weights of neighbouring addresses are unrelated.
func Weight(key string, member netip.AddrPort) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0}) // a key is never taken for a prefix of key+address
	a := member.Addr().Unmap().As16()
	h.Write(a[:])
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], member.Port())
	h.Write(port[:])
	return mix(h.Sum64())
}

// mix is the splitmix64 finaliser: FNV alone spreads short inputs that
// differ in their last bytes poorly.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
