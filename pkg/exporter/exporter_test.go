package exporter

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

func TestNewRejectsBadCollectors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		collectors []string
		want       string // in the error
	}{
		{"none", nil, "no collector"},
		{"bad port", []string{"127.0.0.1:notaport"}, "127.0.0.1:notaport"},
		{"zero port", []string{"127.0.0.1:0"}, "127.0.0.1:0"},
		{"no host", []string{":9000"}, ":9000"},
		{"unknown host", []string{"nsint-no-such-host.invalid:9000"}, "nsint-no-such-host.invalid"},
		{"second bad", []string{"127.0.0.1:9000", "[::1:9000"}, "[::1:9000"},
		{"duplicate", []string{"127.0.0.1:9000", "127.0.0.1:9000"}, "same address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(Config{Collectors: tc.collectors})
			if err == nil {
				e.Close()
				t.Fatalf("New(%q) succeeded", tc.collectors)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%q) = %v, want an error naming %q", tc.collectors, err, tc.want)
			}
		})
	}
	if _, err := New(Config{Collectors: []string{"127.0.0.1:9000"}, Format: intreport.Format(9)}); err == nil {
		t.Error("New accepted an unknown format")
	}
}

func TestResolveCollector(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:9000": "127.0.0.1:9000",
		"127.0.0.1":      "127.0.0.1:32766",
		"[::1]:9000":     "[::1]:9000",
		"[::1]":          "[::1]:32766",
		"::1":            "[::1]:32766",
		"localhost:9000": "127.0.0.1:9000",
	} {
		addr, sa, err := resolveCollector(in)
		if err != nil {
			t.Errorf("resolveCollector(%q): %v", in, err)
			continue
		}
		if addr.String() != want {
			t.Errorf("resolveCollector(%q) = %s, want %s", in, addr, want)
		}
		_, v4 := sa.(*unix.SockaddrInet4)
		if v4 != (addr.IP.To4() != nil) {
			t.Errorf("resolveCollector(%q): socket address family does not match %s", in, addr)
		}
	}
}

// hwPattern spreads reports over three hardware subsystems unevenly.
func hwPattern(i int) uint8 { return []uint8{1, 2, 1, 1, 63, 2}[i%6] }

// checkAll asserts that a collector received exactly the reports 0..n-1, each
// byte for byte as the encoder makes it with the sequence number that report
// has in its own (collector, hw_id) numbering.
func checkAll(t *testing.T, f intreport.Format, dest string, got [][]byte, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%s: received %d reports, want %d", dest, len(got), n)
	}
	byPort := make(map[uint16][]byte, n)
	var d intreport.Decoded
	for _, p := range got {
		if err := intreport.Decode(p, &d); err != nil {
			t.Fatalf("%s: decode %x: %v", dest, p, err)
		}
		if d.Format != f || len(d.Reports) != 1 {
			t.Fatalf("%s: decoded format %v with %d reports", dest, d.Format, len(d.Reports))
		}
		byPort[d.Reports[0].IngressPort] = p
	}
	var seq [64]uint32
	for i := range n {
		r := testReport(i, hwPattern(i))
		want := expectedPayload(t, f, r, seq[r.HwID])
		seq[r.HwID]++
		p, ok := byPort[uint16(i)]
		if !ok {
			t.Fatalf("%s: report %d missing", dest, i)
		}
		if !bytes.Equal(p, want) {
			t.Fatalf("%s: report %d is\n%x\nwant\n%x", dest, i, p, want)
		}
		if err := intreport.Decode(p, &d); err != nil {
			t.Fatal(err)
		}
		got := d.Reports[0]
		if got.Seq != seq[r.HwID]-1 || got.HwID != r.HwID || !bytes.Equal(got.Inner, r.Inner) ||
			got.SwitchID != r.SwitchID || got.EgressPort != r.EgressPort {
			t.Fatalf("%s: report %d decodes to %+v, want %+v with seq %d", dest, i, got.Report, *r, seq[r.HwID]-1)
		}
	}
}

func TestTwoCollectorsGetSameReportsWithOwnSequences(t *testing.T) {
	for _, f := range []intreport.Format{intreport.V05, intreport.V20} {
		t.Run(f.String(), func(t *testing.T) {
			v4 := listen(t, "udp4", "127.0.0.1:0")
			v6 := listen(t, "udp6", "[::1]:0")
			e := newExporter(t, Config{Collectors: []string{v4.addr(), v6.addr()}, Format: f, BatchSize: 16})

			const n = 300
			// Half before Run (sent in full batches), half while running.
			for i := range n / 2 {
				if !e.Enqueue(testReport(i, hwPattern(i))) {
					t.Fatalf("Enqueue %d refused", i)
				}
			}
			run(t, e)
			for i := n / 2; i < n; i++ {
				for !e.Enqueue(testReport(i, hwPattern(i))) {
					eventually(t, "room in the queue", func() bool { return e.Stats().Queued < DefaultQueueLen })
				}
			}
			eventually(t, "both collectors to receive everything", func() bool { return v4.count() >= n && v6.count() >= n })

			checkAll(t, f, "127.0.0.1", v4.payloads(), n)
			checkAll(t, f, "::1", v6.payloads(), n)
			st := e.Stats()
			for _, c := range st.Collectors {
				if c.Sent != n || c.Errors != 0 || c.Dropped != 0 || c.LastError != nil {
					t.Errorf("stats of %s: %+v, want %d sent and no error", c.Collector, c, n)
				}
			}
		})
	}
}

func TestFullQueueDropsAndCountsWithoutBlocking(t *testing.T) {
	rcv := listen(t, "udp4", "127.0.0.1:0")
	e := newExporter(t, Config{Collectors: []string{rcv.addr()}, Format: intreport.V20, QueueLen: 8})

	// Nothing sends yet: a blocking Enqueue would hang here.
	for i := range 8 {
		if !e.Enqueue(testReport(i, hwPattern(i))) {
			t.Fatalf("Enqueue %d refused with room in the queue", i)
		}
	}
	for i := range 100 {
		if e.Enqueue(testReport(8+i, hwPattern(8+i))) {
			t.Fatalf("Enqueue into a full queue accepted report %d", 8+i)
		}
	}
	st := e.Stats()
	if st.Enqueued != 8 || st.QueueDrops != 100 || st.Queued != 8 {
		t.Fatalf("stats %+v, want 8 enqueued, 100 queue drops, 8 queued", st)
	}

	run(t, e)
	eventually(t, "the queued reports", func() bool { return rcv.count() >= 8 })
	eventually(t, "an empty queue", func() bool { return e.Stats().Queued == 0 })
	if !e.Enqueue(testReport(8, hwPattern(8))) {
		t.Fatal("Enqueue refused after the queue drained")
	}
	eventually(t, "the report after the drops", func() bool { return rcv.count() >= 9 })
	checkAll(t, intreport.V20, "127.0.0.1", rcv.payloads(), 9)
}

func TestJumboInnerFrameFitsASlot(t *testing.T) {
	rcv := listen(t, "udp4", "127.0.0.1:0")
	e := newExporter(t, Config{Collectors: []string{rcv.addr()}, Format: intreport.V20})
	r := testReport(0, 1)
	r.Inner = make([]byte, 9000) // truncated to MaxInner by the encoder: must fit
	if !e.Enqueue(r) {
		t.Fatalf("a report with a jumbo inner frame was refused: %+v", e.Stats())
	}
}

// freeUDPPort returns a loopback port on which nothing listens.
func freeUDPPort(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().(*net.UDPAddr)
	c.Close()
	return addr
}

func TestCollectorDownThenBack(t *testing.T) {
	up := listen(t, "udp6", "[::1]:0")
	downAddr := freeUDPPort(t)

	var mu sync.Mutex
	var notices []error
	e := newExporter(t, Config{
		Collectors: []string{downAddr.String(), up.addr()},
		Format:     intreport.V05,
		BatchSize:  8,
		OnSendError: func(collector string, err error) {
			if collector != downAddr.String() {
				t.Errorf("OnSendError for %s, which is up: %v", collector, err)
			}
			mu.Lock()
			notices = append(notices, err)
			mu.Unlock()
		},
	})
	start := time.Now()
	run(t, e)

	sent := 0
	enqueue := func(k int) {
		for range k {
			for !e.Enqueue(testReport(sent, hwPattern(sent))) {
				eventually(t, "room in the queue", func() bool { return e.Stats().Queued < DefaultQueueLen })
			}
			sent++
		}
	}

	// Down: the kernel answers with ICMP port unreachable, the socket
	// reports ECONNREFUSED.
	enqueue(200)
	eventually(t, "the live collector to get the first 200", func() bool { return up.count() >= 200 })
	eventually(t, "refusals counted", func() bool {
		c := e.Stats().Collectors[0]
		return c.Errors > 0 && errors.Is(c.LastError, unix.ECONNREFUSED)
	})
	mu.Lock()
	if len(notices) == 0 || !errors.Is(notices[0], unix.ECONNREFUSED) {
		t.Errorf("OnSendError got %v, want ECONNREFUSED first", notices)
	}
	var se *SendError
	if len(notices) > 0 && (!errors.As(notices[0], &se) || se.Collector != downAddr.String() || se.Count == 0) {
		t.Errorf("OnSendError got %#v, want a *SendError naming %s", notices[0], downAddr)
	}
	// At most one notice per ErrorInterval (1s) per collector.
	if allowed := 1 + int(time.Since(start)/time.Second); len(notices) > allowed {
		t.Errorf("OnSendError called %d times for one collector, want it rate limited", len(notices))
	}
	mu.Unlock()

	// Back: a collector listens on the same port again.
	conn, err := net.ListenUDP("udp4", downAddr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", downAddr, err)
	}
	back := serve(t, conn)
	before := sent
	for back.count() == 0 {
		enqueue(1)
		eventually(t, "report to be sent", func() bool { return e.Stats().Queued == 0 })
		if sent-before > 1000 {
			t.Fatal("the collector that came back received nothing")
		}
	}
	// The socket still held the refusal of the last datagram sent while the
	// collector was down; that stale error must not cost the first report.
	if sent-before != 1 {
		t.Errorf("the collector that came back got its first report after %d tries, want 1", sent-before)
	}
	enqueue(100)
	eventually(t, "the live collector to get everything", func() bool { return up.count() >= sent })
	eventually(t, "the collector that came back to get the last 100", func() bool { return back.count() >= 100 })

	// The live collector was unaffected throughout: every report, gap-free
	// numbering.
	checkAll(t, intreport.V05, "::1", up.payloads(), sent)

	// The one that came back sees its own numbering continue: strictly
	// increasing per hw_id, the gaps being what it missed.
	last := map[uint8]int64{}
	var d intreport.Decoded
	for _, p := range back.payloads() {
		if err := intreport.Decode(p, &d); err != nil {
			t.Fatal(err)
		}
		r := d.Reports[0]
		if prev, ok := last[r.HwID]; ok && int64(r.Seq) <= prev {
			t.Errorf("collector that came back: hw_id %d seq %d after %d", r.HwID, r.Seq, prev)
		}
		last[r.HwID] = int64(r.Seq)
	}
	st := e.Stats()
	if c := st.Collectors[1]; c.Errors != 0 || c.Sent != uint64(sent) {
		t.Errorf("live collector stats %+v, want %d sent, no error", c, sent)
	}
}

func TestRunFlushesOnCancelAndStopsOnClose(t *testing.T) {
	rcv := listen(t, "udp4", "127.0.0.1:0")
	e, err := New(Config{Collectors: []string{rcv.addr()}, Format: intreport.V20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		e.Enqueue(testReport(i, hwPattern(i)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.Run(ctx); err != nil {
		t.Fatalf("Run with a cancelled context: %v", err)
	}
	eventually(t, "the flushed reports", func() bool { return rcv.count() >= 100 })
	checkAll(t, intreport.V20, "127.0.0.1", rcv.payloads(), 100)

	errc := make(chan error, 1)
	go func() { errc <- e.Run(context.Background()) }()
	eventually(t, "Run to start", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.running
	})
	if err := e.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run stopped by Close: %v", err)
	}
	if err := e.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if e.Enqueue(testReport(0, 1)) && e.Stats().Queued != 1 {
		t.Error("Enqueue after Close misbehaved")
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestRunReturnsUnderSustainedLoad(t *testing.T) {
	sink := silentSink(t)
	e := newExporter(t, Config{Collectors: []string{sink}, Format: intreport.V05, FlushTimeout: 50 * time.Millisecond})
	stopProducer := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		r := testReport(1, 1)
		for {
			select {
			case <-stopProducer:
				return
			default:
				e.Enqueue(r)
			}
		}
	}()
	defer func() { close(stopProducer); <-producerDone }()

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	eventually(t, "reports to flow", func() bool { return e.Stats().Collectors[0].Sent > 1000 })
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second): // hang guard, not a timing assertion
		t.Fatal("Run kept running after its context ended while reports kept coming")
	}
}

// TestFullQueueWaitsForTheSender: while the sender runs, a producer that
// finds the queue full waits for a free slot instead of dropping; once the
// sender stops, a waiting producer drops and counts.
func TestFullQueueWaitsForTheSender(t *testing.T) {
	q := newRing(2)
	q.setSending(true)
	for i := range 2 {
		if !q.put(intreport.V20, testReport(i, 1)) {
			t.Fatalf("report %d refused with room in the queue", i)
		}
	}
	done := make(chan bool)
	go func() { done <- q.put(intreport.V20, testReport(2, 1)) }()
	eventually(t, "the producer to wait", func() bool { return q.queueWaits.Load() == 1 })
	q.release(1)
	if !<-done {
		t.Fatal("the report that waited was refused after a slot was freed")
	}
	if q.queueDrops.Load() != 0 || q.queued() != 2 {
		t.Fatalf("%d drops, %d queued; want 0 and 2", q.queueDrops.Load(), q.queued())
	}

	go func() { done <- q.put(intreport.V20, testReport(3, 1)) }()
	eventually(t, "the producer to wait again", func() bool { return q.queueWaits.Load() == 2 })
	q.setSending(false)
	if <-done {
		t.Fatal("a full queue without a sender took the report")
	}
	if q.queueDrops.Load() != 1 || q.queued() != 2 {
		t.Fatalf("%d drops, %d queued; want 1 and 2", q.queueDrops.Load(), q.queued())
	}
}

// TestBurstWhileRunningLosesNothing: a producer far faster than the
// sender, into a queue of 8 slots: every report is sent, none dropped.
func TestBurstWhileRunningLosesNothing(t *testing.T) {
	e := newExporter(t, Config{Collectors: []string{silentSink(t)}, Format: intreport.V20, QueueLen: 8})
	run(t, e)
	eventually(t, "Run to start", e.q.sending.Load) // before it, a full queue drops
	const n = 20000
	r := testReport(1, 1)
	for range n {
		e.Enqueue(r)
	}
	eventually(t, "every report sent", func() bool { st := e.Stats(); return st.Collectors[0].Sent+st.Collectors[0].Dropped >= n })
	if st := e.Stats(); st.QueueDrops != 0 || st.QueueWaits == 0 || st.Collectors[0].Sent != n {
		t.Errorf("stats %+v: want no drop, some waits", st)
	}
}
