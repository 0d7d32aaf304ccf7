package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/exporter/replica"
	"github.com/nsint/nsint/pkg/intreport"
)

// fakeResolver answers LookupNetIP with what the test set, no DNS involved.
type fakeResolver struct {
	mu    sync.Mutex
	addrs []netip.Addr
	err   error
	calls int
}

func (r *fakeResolver) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if network != "ip" || host != "collector.nsint.svc" {
		return nil, fmt.Errorf("unexpected lookup %s %s", network, host)
	}
	return append([]netip.Addr(nil), r.addrs...), r.err
}

func (r *fakeResolver) set(err error, addrs ...netip.Addr) {
	r.mu.Lock()
	r.addrs, r.err = addrs, err
	r.mu.Unlock()
}

func (r *fakeResolver) lookups() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// replicaPair listens on 127.0.0.1 and [::1] on one port, as two replicas
// behind one name do.
func replicaPair(tb testing.TB) (v4, v6 *receiver, port int) {
	tb.Helper()
	for range 20 {
		v4 = listen(tb, "udp4", "127.0.0.1:0")
		port = v4.conn.LocalAddr().(*net.UDPAddr).Port
		conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback, Port: port})
		if err == nil {
			return v4, serve(tb, conn), port
		}
	}
	tb.Fatal("no port free on both 127.0.0.1 and ::1")
	return nil, nil, 0
}

// keyChoosing returns a node name that the replica choice sends to first
// among {first} ∪ others and to second among {first, second}.
func keyChoosing(tb testing.TB, first, second netip.AddrPort) string {
	tb.Helper()
	for i := range 1000 {
		k := fmt.Sprintf("node-%d", i)
		a, _ := replica.Pick(k, []netip.AddrPort{first})
		b, _ := replica.Pick(k, []netip.AddrPort{first, second})
		if a == first && b == second {
			return k
		}
	}
	tb.Fatal("no key moves to the second replica")
	return ""
}

// seqsOf decodes the sequence numbers of received payloads.
func seqsOf(tb testing.TB, payloads [][]byte) []uint32 {
	tb.Helper()
	var out []uint32
	var d intreport.Decoded
	for _, p := range payloads {
		if err := intreport.Decode(p, &d); err != nil || len(d.Reports) == 0 {
			tb.Fatalf("decode: %v", err)
		}
		out = append(out, d.Reports[0].Seq)
	}
	return out
}

func wantSeqs(tb testing.TB, who string, got []uint32, from, n int) {
	tb.Helper()
	if len(got) != n {
		tb.Fatalf("%s got %d reports, want %d", who, len(got), n)
	}
	for i, s := range got {
		if s != uint32(from+i) {
			tb.Fatalf("%s: sequence %v, want %d.. in order", who, got, from)
		}
	}
}

// A replica added to the name takes over the agents that now choose it; the
// sequence numbers start again at 0 there. A failed lookup keeps the replica;
// a replica gone from the name gives its agents back, numbered from 0 again.
func TestReplicaFollowsName(t *testing.T) {
	v4, v6, port := replicaPair(t)
	a4 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	a6 := netip.AddrPortFrom(netip.MustParseAddr("::1"), uint16(port))
	key := keyChoosing(t, a4, a6)
	res := &fakeResolver{}
	res.set(nil, a4.Addr())
	e := newExporter(t, Config{Replicas: fmt.Sprintf("collector.nsint.svc:%d", port), ReplicaKey: key,
		ReplicaRefresh: 10 * time.Millisecond, Resolver: res, Format: intreport.V20})
	run(t, e)
	send := func(n int) {
		for i := range n {
			if !e.Enqueue(testReport(i, 1)) {
				t.Fatal("enqueue refused")
			}
		}
	}
	waitChosen := func(want netip.AddrPort) {
		eventually(t, "replica "+want.String()+" chosen", func() bool {
			p := e.collectors[0].rep.chosen.Load()
			return p != nil && *p == want
		})
	}

	send(5)
	eventually(t, "5 reports at 127.0.0.1", func() bool { return v4.count() == 5 })
	wantSeqs(t, "127.0.0.1", seqsOf(t, v4.payloads()), 0, 5)

	res.set(nil, a6.Addr(), a4.Addr()) // a replica added
	waitChosen(a6)
	send(3)
	eventually(t, "3 reports at ::1", func() bool { return v6.count() == 3 })
	wantSeqs(t, "::1", seqsOf(t, v6.payloads()), 0, 3)

	calls := res.lookups()
	res.set(errors.New("SERVFAIL")) // a failed lookup moves nothing
	eventually(t, "two more lookups", func() bool { return res.lookups() >= calls+2 })
	send(2)
	eventually(t, "5 reports at ::1", func() bool { return v6.count() == 5 })
	wantSeqs(t, "::1", seqsOf(t, v6.payloads()), 0, 5)

	res.set(nil, a4.Addr()) // ::1 died
	waitChosen(a4)
	send(4)
	eventually(t, "9 reports at 127.0.0.1", func() bool { return v4.count() == 9 })
	wantSeqs(t, "127.0.0.1 after the move back", seqsOf(t, v4.payloads()[5:]), 0, 4)

	st := e.Stats().Collectors[0]
	if st.Sent != 14 || st.Dropped != 0 || st.Moves != 2 || st.Replicas != 1 || st.Address != a4.String() {
		t.Errorf("stats %+v, want 14 sent, none dropped, 2 moves, 1 replica, address %s", st, a4)
	}
	if v6.count() != 5 {
		t.Errorf("::1 got %d reports after it left the name, want 5", v6.count())
	}
}

// A name with no address yet (replicas not ready) is not an error at New:
// reports are dropped, counted and reported, until the name has one.
func TestReplicaNameWithoutAddressYet(t *testing.T) {
	v4, _, port := replicaPair(t)
	res := &fakeResolver{}
	res.set(&net.DNSError{Err: "no such host", Name: "collector.nsint.svc", IsNotFound: true})
	errs := make(chan error, 16)
	e := newExporter(t, Config{Replicas: fmt.Sprintf("collector.nsint.svc:%d", port), ReplicaKey: "node-a",
		ReplicaRefresh: 10 * time.Millisecond, Resolver: res, Format: intreport.V20,
		OnSendError: func(_ string, err error) {
			select {
			case errs <- err:
			default:
			}
		}})
	run(t, e)
	e.Enqueue(testReport(0, 0))
	eventually(t, "a dropped report", func() bool { return e.Stats().Collectors[0].Dropped == 1 })
	var dnsErr *net.DNSError
	if err := <-errs; !errors.As(err, &dnsErr) {
		t.Errorf("send error %v, want the lookup's", err)
	}
	res.set(nil, netip.MustParseAddr("127.0.0.1"))
	eventually(t, "a report sent", func() bool {
		e.Enqueue(testReport(1, 0))
		time.Sleep(5 * time.Millisecond)
		return v4.count() > 0
	})
	if seq := seqsOf(t, v4.payloads())[0]; seq != 0 {
		t.Errorf("first report at the replica numbered %d, want 0", seq)
	}
}

func TestReplicaConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Replicas: "collector.nsint.svc:0", ReplicaKey: "n", Format: intreport.V20},
		{Replicas: "collector.nsint.svc:32766", Format: intreport.V20}, // no key
		{Replicas: ":32766", ReplicaKey: "n", Format: intreport.V20},
	} {
		if e, err := New(cfg); err == nil {
			e.Close()
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}
