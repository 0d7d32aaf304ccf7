package topology

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/netif"
)

type agentServer struct {
	mu   sync.Mutex
	doc  Document
	fail bool
	hits atomic.Int32
	srv  *httptest.Server
}

func newAgentServer(t *testing.T, doc Document) *agentServer {
	a := &agentServer{doc: doc}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.fail || r.URL.Path != Path {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(a.doc)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *agentServer) set(doc Document, fail bool) {
	a.mu.Lock()
	a.doc, a.fail = doc, fail
	a.mu.Unlock()
}

func doc(sw uint32, node string, gen uint64, ids ...uint16) Document {
	d := Document{SwitchID: sw, Node: node, Generation: gen}
	for _, id := range ids {
		d.Ports = append(d.Ports, api.Port{ID: id, Name: "p" + strconv.Itoa(int(id)), Netns: Netns{Inode: netif.Netns(id)}})
	}
	return d
}

func runResolver(t *testing.T, cfg Config) (*Resolver, *atomic.Int32) {
	t.Helper()
	var changes atomic.Int32
	cfg.OnChange = func() { changes.Add(1) }
	cfg.MinInterval = time.Millisecond
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return r, &changes
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStaticAgentsMatchBySwitchID(t *testing.T) {
	a := newAgentServer(t, doc(10, "node-a", 1, 1, 2))
	b := newAgentServer(t, doc(20, "", 1, 1))
	r, _ := runResolver(t, Config{Agents: []string{a.srv.URL + "/", b.srv.URL + Path}, Refresh: time.Hour})
	waitFor(t, "both agents", func() bool { return len(r.Documents()) == 2 })
	p := r.Lookup(Key{SwitchID: 20, Port: 1})
	if p == nil || p.SwitchID != 20 || p.Node != "127.0.0.1" { // no node name: the agent's host
		t.Fatalf("lookup switch 20 port 1: %+v", p)
	}
	if p := r.Lookup(Key{SwitchID: 10, Port: 2}); p == nil || p.Node != "node-a" || p.Name != "p2" {
		t.Fatalf("lookup switch 10 port 2: %+v", p)
	}
	if r.Lookup(Key{SwitchID: 10, Port: 3}) != nil || r.Lookup(Key{SwitchID: 30, Port: 1}) != nil {
		t.Fatal("lookup of unknown ports succeeded")
	}
	if n := len(r.Ports()); n != 3 {
		t.Errorf("%d ports, want 3", n)
	}
}

func TestDynamicAgentRefreshOnRequestAndGeneration(t *testing.T) {
	a := newAgentServer(t, doc(10, "node-a", 1, 1))
	port := a.srv.Listener.Addr().(*net.TCPAddr).Port
	r, changes := runResolver(t, Config{AgentPort: port, Refresh: time.Hour})
	src := netip.MustParseAddr("127.0.0.1")
	if r.Lookup(Key{SwitchID: 10, Port: 1}) != nil {
		t.Fatal("known before any request")
	}
	r.Request(src, 10)
	waitFor(t, "port 1", func() bool { return r.Lookup(Key{SwitchID: 10, Port: 1}) != nil })

	// Same generation: no change. New generation: the new port appears.
	r.Request(src, 10)
	waitFor(t, "second fetch", func() bool { return r.Stats().Fetches >= 2 })
	if n := changes.Load(); n != 1 {
		t.Errorf("%d changes after an unchanged generation, want 1", n)
	}
	a.set(doc(10, "node-a", 2, 1, 7), false)
	r.Request(src, 10)
	waitFor(t, "port 7", func() bool { return r.Lookup(Key{SwitchID: 10, Port: 7}) != nil })

	// A failing agent keeps its last topology and counts the error.
	a.set(Document{}, true)
	r.Request(src, 10)
	waitFor(t, "fetch error", func() bool { return r.Stats().FetchErrors >= 1 })
	if r.Lookup(Key{SwitchID: 10, Port: 7}) == nil {
		t.Error("port 7 forgotten after a failed fetch")
	}
	if st := r.Agents(); len(st) != 1 || st[0].LastError == "" || st[0].Generation != 2 {
		t.Errorf("agent status: %+v", st)
	}
}

func TestNormalizeAgentURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:4048": "http://h:4048", "h:4048": "http://h:4048", "http://h:4048/api/v1/topology": "http://h:4048",
		"https://[fd00::1]:4048/": "https://[fd00::1]:4048",
	} {
		if got, err := NormalizeAgentURL(in); err != nil || got != want {
			t.Errorf("NormalizeAgentURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://h", "http://", "://x", ""} {
		if _, err := NormalizeAgentURL(bad); err == nil {
			t.Errorf("NormalizeAgentURL(%q) accepted", bad)
		}
	}
	if got := AgentURL(netip.MustParseAddr("::ffff:198.18.0.1"), 4048); got != "http://198.18.0.1:4048" {
		t.Errorf("AgentURL mapped v4: %s", got)
	}
	if got := AgentURL(netip.MustParseAddr("fd00::1"), 4048); got != "http://[fd00::1]:4048" {
		t.Errorf("AgentURL v6: %s", got)
	}
}

// Node names the agent of a switch ID once its topology is known: its
// document's node, else its URL's host; a switch ID no topology has is unknown.
func TestNodeOfSwitch(t *testing.T) {
	r, err := New(Config{AgentPort: 4048})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Node(7); ok {
		t.Error("switch 7 known before any topology")
	}
	if err := r.Install("http://198.18.0.1:4048", doc(7, "node-a", 1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := r.Install("http://198.18.0.2:4048", doc(8, "", 1, 1)); err != nil {
		t.Fatal(err)
	}
	for sw, want := range map[uint32]string{7: "node-a", 8: "198.18.0.2"} {
		if n, ok := r.Node(sw); !ok || n != want {
			t.Errorf("Node(%d) = %q %v, want %q", sw, n, ok, want)
		}
	}
	if n, ok := r.Node(9); ok {
		t.Errorf("Node(9) = %q, want unknown", n)
	}
}
