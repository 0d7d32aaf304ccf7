package collector

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"github.com/nsint/nsint/pkg/api"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/intreport"
)

// fakeAgent serves a topology document that a test can change.
type fakeAgent struct {
	mu   sync.Mutex
	doc  topology.Document
	hits int
	srv  *httptest.Server
}

func newFakeAgent(t testing.TB, doc topology.Document) *fakeAgent {
	t.Helper()
	a := &fakeAgent{doc: doc}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != topology.Path {
			http.NotFound(w, r)
			return
		}
		a.mu.Lock()
		a.hits++
		b, _ := json.Marshal(a.doc)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *fakeAgent) set(doc topology.Document) {
	a.mu.Lock()
	a.doc = doc
	a.mu.Unlock()
}

// serveV6 serves the agent on [::1] too, at the same port (so that reports
// from [::1] come from a known agent), and returns that URL.
func (a *fakeAgent) serveV6(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(a.port())))
	if err != nil {
		t.Fatalf("fake agent on [::1]: %v", err)
	}
	srv := &http.Server{Handler: a.srv.Config.Handler, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

func (a *fakeAgent) port() int {
	return a.srv.Listener.Addr().(*net.TCPAddr).Port
}

// twoPodTopology: node-a with pod-a's net1 (port 5), eth0 (port 7) and local
// stack (port 6), and pod-b's net1 (port 8).
func twoPodTopology(switchID uint32) topology.Document {
	podA := &topology.Pod{Namespace: "default", Name: "pod-a", UID: "uid-a"}
	podB := &topology.Pod{Namespace: "team-b", Name: "pod-b", UID: "uid-b"}
	return topology.Document{SwitchID: switchID, Node: "node-a", Generation: 1, Ports: []api.Port{
		{ID: 5, Name: "net1", Ifindex: 3, Netns: topology.Netns{Inode: 4026532481, Name: "pod-a"}, Pod: podA,
			Network: "default/macvlan-net", IPs: []string{"198.18.1.2"}},
		{ID: 6, Name: ":stack", LocalStack: true, Netns: topology.Netns{Inode: 4026532481, Name: "pod-a"}, Pod: podA},
		{ID: 7, Name: "eth0", Ifindex: 2, Netns: topology.Netns{Inode: 4026532481, Name: "pod-a"}, Pod: podA,
			Network: "default/pod-net"},
		{ID: 8, Name: "net1", Ifindex: 3, Netns: topology.Netns{Inode: 4026532999, Name: "pod-b"}, Pod: podB,
			Network: "team-b/sriov-net"},
	}}
}

// tcpFrame builds Ethernet/IPv4/TCP (or Ethernet/IPv6/TCP) headers.
func tcpFrame(src, dst netip.Addr, sport, dport uint16, payloadLen int) []byte {
	b := []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1}
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = 5 << 4
	if src.Is4() {
		b = binary.BigEndian.AppendUint16(b, 0x0800)
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+20+payloadLen))
		ip[8], ip[9] = 64, 6
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		b = append(b, ip...)
	} else {
		b = binary.BigEndian.AppendUint16(b, 0x86DD)
		ip := make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(20+payloadLen))
		ip[6], ip[7] = 6, 64
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
		b = append(b, ip...)
	}
	return append(b, tcp...)
}

// startCollector serves a collector on 127.0.0.1 (UDP and HTTP) and, when
// withV6, also on [::1] (UDP). It returns the UDP addresses and the HTTP base
// URL.
func startCollector(t testing.TB, cfg Config, withV6 bool) (*Collector, []netip.AddrPort, string) {
	t.Helper()
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("new collector: %v", err)
	}
	var conns []*net.UDPConn
	var addrs []netip.AddrPort
	hosts := []string{"127.0.0.1:0"}
	if withV6 {
		hosts = append(hosts, "[::1]:0")
	}
	for _, h := range hosts {
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(h)))
		if err != nil {
			t.Fatalf("listen udp %s: %v", h, err)
		}
		conns = append(conns, conn)
		addrs = append(addrs, conn.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, conns, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return c, addrs, "http://" + ln.Addr().String()
}

func testConfig(agentPort int) Config {
	cfg := DefaultConfig()
	cfg.Listen, cfg.APIAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentAPIPort = agentPort
	cfg.TopologyRefresh = time.Second
	return cfg
}

// send sends each payload as one datagram to dst.
func send(t testing.TB, dst netip.AddrPort, payloads ...[]byte) {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Fatalf("dial %s: %v", dst, err)
	}
	defer conn.Close()
	for _, p := range payloads {
		if _, err := conn.Write(p); err != nil {
			t.Fatalf("send to %s: %v", dst, err)
		}
	}
}

// getJSON fetches url into v and returns the status code.
func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("get %s: %v", url, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
	return resp.StatusCode
}

// eventually polls cond until it holds or a generous bound passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func encode(f intreport.Format, r intreport.Report) []byte {
	return intreport.Append(nil, f, &r)
}

// readVectors parses a hex dump in the format of shared/int-vectors/
// vectors.txt: "# title" lines start a payload, "  0000  02 20 …" lines hold
// its bytes.
func readVectors(t testing.TB, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case strings.HasPrefix(f[0], "#"):
			out = append(out, nil)
		case len(out) > 0:
			b, err := hex.DecodeString(strings.Join(f[1:], ""))
			if err != nil {
				t.Fatalf("%s: %q: %v", path, line, err)
			}
			out[len(out)-1] = append(out[len(out)-1], b...)
		}
	}
	return out
}

func flowtableAll() flowtable.Filter { return flowtable.MatchAll() }
