package exporter

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// receiver is a real UDP collector socket that keeps every datagram.
type receiver struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	done chan struct{}
}

func listen(tb testing.TB, network, addr string) *receiver {
	tb.Helper()
	ua, err := net.ResolveUDPAddr(network, addr)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := net.ListenUDP(network, ua)
	if err != nil {
		tb.Fatalf("listen %s %s: %v", network, addr, err)
	}
	return serve(tb, conn)
}

func serve(tb testing.TB, conn *net.UDPConn) *receiver {
	tb.Helper()
	if err := conn.SetReadBuffer(4 << 20); err != nil {
		tb.Fatal(err)
	}
	r := &receiver{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		buf := make([]byte, 2048)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if err != nil {
				continue // e.g. ECONNREFUSED noise never applies to a listener, but keep reading
			}
			r.mu.Lock()
			r.got = append(r.got, append([]byte(nil), buf[:n]...))
			r.mu.Unlock()
		}
	}()
	tb.Cleanup(r.close)
	return r
}

func (r *receiver) close() {
	r.conn.Close()
	<-r.done
}

func (r *receiver) addr() string { return r.conn.LocalAddr().String() }

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

func (r *receiver) payloads() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.got...)
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a hang guard, not a timing assertion).
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// innerFrame is an Ethernet/IPv4/UDP frame from 198.18.0.1 to 198.18.0.2,
// 64 bytes so that no format pads it.
var innerFrame = func() []byte {
	f := make([]byte, 64)
	copy(f, []byte{0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0x45, 0, 0, 50, 0, 0, 0x40, 0, 64, 17, 0, 0,
		198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x01, 0xbb, 0, 30})
	return f
}()

// testReport returns report number i with hardware subsystem hw. IngressPort
// carries i so that a received report can be matched to what was sent.
func testReport(i int, hw uint8) *intreport.Report {
	return &intreport.Report{
		Kind:        intreport.Flow,
		HwID:        hw,
		SwitchID:    0x0a0b0c0d,
		IngressPort: uint16(i),
		EgressPort:  uint16(1000 + i),
		IngressTS:   uint64(1_000_000 + i),
		EgressTS:    uint64(1_000_500 + i),
		HopLatency:  500,
		Packets:     uint64(i + 1),
		Bytes:       uint64(100 * (i + 1)),
		Direction:   netif.Ingress,
		Tracked:     true,
		Inner:       innerFrame,
	}
}

// expectedPayload is what a collector must receive for r numbered seq: the
// encoder's own bytes with the sequence number patched.
func expectedPayload(tb testing.TB, f intreport.Format, r *intreport.Report, seq uint32) []byte {
	tb.Helper()
	p := intreport.Append(nil, f, r)
	if err := intreport.SetSequence(p, seq); err != nil {
		tb.Fatal(err)
	}
	return p
}

func newExporter(tb testing.TB, cfg Config) *Exporter {
	tb.Helper()
	e, err := New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	tb.Cleanup(func() {
		if err := e.Close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
	return e
}

// run starts e.Run and returns a function that stops it and checks its result.
func run(tb testing.TB, e *Exporter) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				tb.Errorf("Run: %v", err)
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}
