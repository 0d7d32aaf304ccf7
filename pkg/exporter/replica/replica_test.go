package replica

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
)

func members(n int) []netip.AddrPort {
	out := make([]netip.AddrPort, n)
	for i := range out {
		out[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(10 + i)}), 32766)
	}
	return out
}

func nodes(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("worker-%04d", i)
	}
	return out
}

func assign(keys []string, ms []netip.AddrPort) map[string]netip.AddrPort {
	out := make(map[string]netip.AddrPort, len(keys))
	for _, k := range keys {
		m, ok := Pick(k, ms)
		if !ok {
			panic("no member")
		}
		out[k] = m
	}
	return out
}

func TestPickEmpty(t *testing.T) {
	if _, ok := Pick("n", nil); ok {
		t.Fatal("Pick of no members returned one")
	}
}

// The choice depends on the set, not on its order, and is the same every time.
func TestPickDeterministic(t *testing.T) {
	ms := members(5)
	want := assign(nodes(200), ms)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := append([]netip.AddrPort(nil), ms...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		shuffled = append(shuffled, shuffled[0]) // a duplicate record changes nothing
		for k, m := range assign(nodes(200), shuffled) {
			if want[k] != m {
				t.Fatalf("node %s: %v, then %v with the members reordered", k, want[k], m)
			}
		}
	}
	// Known values pin the hash: a change of it would move every agent of a
	// cluster whose agents run different versions.
	if got, _ := Pick("worker-0000", ms); got.String() != "198.18.0.10:32766" {
		t.Errorf("worker-0000 → %v, the hash changed", got)
	}
	mapped := netip.AddrPortFrom(netip.AddrFrom16(ms[0].Addr().As16()), ms[0].Port())
	if Weight("k", mapped) != Weight("k", ms[0]) {
		t.Error("an IPv4-mapped address weighs differently from its IPv4 address")
	}
}

// Every replica gets a fair share.
func TestPickBalance(t *testing.T) {
	const n, keys = 4, 4000
	per := map[netip.AddrPort]int{}
	for _, m := range assign(nodes(keys), members(n)) {
		per[m]++
	}
	for m, c := range per {
		if c < keys/n*8/10 || c > keys/n*12/10 {
			t.Errorf("%v has %d of %d nodes, want about %d", m, c, keys, keys/n)
		}
	}
	if len(per) != n {
		t.Errorf("%d of %d replicas chosen", len(per), n)
	}
}

// Adding a replica moves about 1/(N+1) of the nodes, all of them to the new
// one; the others stay where they were.
func TestAddMovesOnlyToNew(t *testing.T) {
	const keys = 3000
	for _, n := range []int{1, 2, 3, 5} {
		before := assign(nodes(keys), members(n))
		grown := members(n + 1)
		added := grown[n]
		after := assign(nodes(keys), grown)
		moved := 0
		for k, m := range after {
			if m == before[k] {
				continue
			}
			moved++
			if m != added {
				t.Errorf("N=%d: node %s moved from %v to %v, not to the new replica", n, k, before[k], m)
			}
		}
		want := keys / (n + 1)
		if moved < want*8/10 || moved > want*12/10 {
			t.Errorf("N=%d→%d: %d of %d nodes moved, want about %d", n, n+1, moved, keys, want)
		}
	}
}

// A replica that dies gives its nodes to the others, spread over all of
// them; the nodes of the others do not move.
func TestDeadReplicaSpreads(t *testing.T) {
	const n, keys = 4, 4000
	ms := members(n)
	before := assign(nodes(keys), ms)
	dead := ms[1]
	rest := append(append([]netip.AddrPort(nil), ms[:1]...), ms[2:]...)
	after := assign(nodes(keys), rest)
	got := map[netip.AddrPort]int{}
	orphans := 0
	for k, m := range after {
		if before[k] != dead {
			if m != before[k] {
				t.Errorf("node %s of a live replica moved from %v to %v", k, before[k], m)
			}
			continue
		}
		orphans++
		got[m]++
	}
	if len(got) != n-1 {
		t.Fatalf("the dead replica's %d nodes went to %d replicas, want %d", orphans, len(got), n-1)
	}
	for m, c := range got {
		if c < orphans/(n-1)*7/10 || c > orphans/(n-1)*13/10 {
			t.Errorf("%v took %d of the dead replica's %d nodes, want about %d", m, c, orphans, orphans/(n-1))
		}
	}
}
