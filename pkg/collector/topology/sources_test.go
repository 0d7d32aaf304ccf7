package topology

import (
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// TestSourceStates asks a discovering resolver about a source where an agent
// answers (an agent once fetched, even when a later fetch fails) and one where
// nothing answers (rejected after the first failed fetch, even for a report
// naming a known switch); OnSources tells each change.
func TestSourceStates(t *testing.T) {
	a := newAgentServer(t, doc(10, "node-a", 1, 1))
	port := a.srv.Listener.Addr().(*net.TCPAddr).Port
	var calls atomic.Int32
	r, _ := runResolver(t, Config{AgentPort: port, Refresh: time.Hour, OnSources: func() { calls.Add(1) }})
	good, bad := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	if r.Source(good) != SourceUnknown || r.Source(bad) != SourceUnknown {
		t.Fatal("sources known before any fetch")
	}
	r.Request(good, 10)
	waitFor(t, "127.0.0.1 an agent", func() bool { return r.Source(good) == SourceAgent })
	if r.Source(netip.MustParseAddr("::ffff:127.0.0.1")) != SourceAgent {
		t.Error("the IPv4-mapped form of an agent's address is not an agent")
	}
	// Switch 10 is known (at 127.0.0.1): a report from 127.0.0.2 claiming it
	// still makes the resolver ask 127.0.0.2.
	r.Request(bad, 10)
	waitFor(t, "127.0.0.2 rejected", func() bool { return r.Source(bad) == SourceRejected })
	if n := calls.Load(); n != 2 {
		t.Errorf("OnSources called %d times, want 2", n)
	}
	a.set(Document{}, true)
	r.Request(good, 10)
	waitFor(t, "a failed fetch", func() bool { return r.Stats().FetchErrors >= 2 })
	if r.Source(good) != SourceAgent {
		t.Error("an agent whose later fetch failed is no longer one")
	}
}

// TestStaticSources: with static agents, their hosts' addresses (a name is
// resolved) are agents before any fetch succeeds, and every other address is
// rejected once the names are resolved.
func TestStaticSources(t *testing.T) {
	a := newAgentServer(t, doc(10, "node-a", 1, 1))
	port := strconv.Itoa(a.srv.Listener.Addr().(*net.TCPAddr).Port)
	r, err := New(Config{Agents: []string{"http://198.18.0.7:1", "http://localhost:" + port}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Source(netip.MustParseAddr("198.18.0.7")) != SourceAgent {
		t.Error("a static agent's IP is not an agent before Run")
	}
	if r.Source(netip.MustParseAddr("127.0.0.2")) != SourceUnknown {
		t.Error("another source is decided before the static names are resolved")
	}
	r, _ = runResolver(t, Config{Agents: []string{"http://198.18.0.7:1", "http://localhost:" + port}, Refresh: time.Hour})
	waitFor(t, "localhost resolved", func() bool { return r.Source(netip.MustParseAddr("127.0.0.1")) == SourceAgent })
	if r.Source(netip.MustParseAddr("127.0.0.2")) != SourceRejected {
		t.Error("an address that is no static agent's is not rejected")
	}
	if r.Source(netip.MustParseAddr("198.18.0.7")) != SourceAgent {
		t.Error("a static agent whose fetch failed is no longer an agent")
	}
}

// TestRejectedAgentsMakeRoom: sources where nothing answers do not keep new
// agents out of a full agent list.
func TestRejectedAgentsMakeRoom(t *testing.T) {
	a := newAgentServer(t, doc(10, "node-a", 1, 1))
	port := a.srv.Listener.Addr().(*net.TCPAddr).Port
	r, _ := runResolver(t, Config{AgentPort: port, Refresh: time.Hour, MaxAgents: 3})
	for i := 2; i <= 6; i++ {
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(i)})
		r.Request(src, 99)
		waitFor(t, src.String()+" rejected", func() bool { return r.Source(src) == SourceRejected || r.Stats().AgentsOverflow > 0 })
	}
	good := netip.MustParseAddr("127.0.0.1")
	r.Request(good, 10)
	waitFor(t, "127.0.0.1 an agent", func() bool { return r.Source(good) == SourceAgent })
	if s := r.Stats(); s.AgentsOverflow != 0 || s.Agents > 3 {
		t.Errorf("stats %+v: want no overflow and at most 3 agents", s)
	}
}
