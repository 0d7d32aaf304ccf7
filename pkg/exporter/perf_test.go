package exporter

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/nsint/nsint/pkg/intreport"
)

// TestNoAllocationPerReport drives the whole path, Enqueue (encode into a
// slot) and one batch of sendmmsg to two collectors, one of them refusing,
// and requires zero allocations.
func TestNoAllocationPerReport(t *testing.T) {
	for _, f := range []intreport.Format{intreport.V05, intreport.V20} {
		t.Run(f.String(), func(t *testing.T) {
			// A collector that is read would allocate in the test's
			// receiver, which AllocsPerRun counts too.
			up := silentSink(t)
			down := freeUDPPort(t)
			const batch = 16
			// No OnSendError: its *SendError, once a second, is the one
			// allocation the error path is allowed.
			e := newExporter(t, Config{Collectors: []string{up, down.String()}, Format: f, BatchSize: batch})
			reports := make([]*intreport.Report, batch)
			for i := range reports {
				reports[i] = testReport(i, hwPattern(i))
			}
			allocs := testing.AllocsPerRun(200, func() {
				for _, r := range reports {
					if !e.Enqueue(r) {
						t.Fatal("queue full")
					}
				}
				e.sendBatch(batch)
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d reports, want 0", allocs, batch)
			}
			st := e.Stats()
			if st.Collectors[0].Sent == 0 || st.Collectors[1].Errors == 0 {
				t.Errorf("the measured path did not send and refuse: %+v", st)
			}
		})
	}
}

// BenchmarkEnqueue measures encoding a report into a queue slot.
func BenchmarkEnqueue(b *testing.B) {
	rcv := listen(b, "udp4", "127.0.0.1:0")
	e := newExporter(b, Config{Collectors: []string{rcv.addr()}, Format: intreport.V20, QueueLen: 1 << 16})
	r := testReport(1, 1)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if !e.Enqueue(r) {
			e.q.release(e.q.queued()) // make room without sending
			e.Enqueue(r)
		}
	}
}

// BenchmarkExport measures the whole path, Enqueue → Run's sendmmsg batches →
// a loopback collector, with producer and sender sharing the CPUs given by
// -cpu. The collector socket is not read (the kernel drops what overflows its
// buffer), so the figure is the exporter's cost, not a receiver's. A full
// queue makes the producer yield and retry; every report is sent.
func BenchmarkExport(b *testing.B) {
	for _, f := range []intreport.Format{intreport.V05, intreport.V20} {
		b.Run(f.String(), func(b *testing.B) {
			sink := silentSink(b)
			e := newExporter(b, Config{Collectors: []string{sink}, Format: f})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- e.Run(ctx) }()
			r := testReport(1, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for !e.Enqueue(r) {
					runtime.Gosched()
				}
			}
			for e.Stats().Queued > 0 {
				runtime.Gosched()
			}
			b.StopTimer()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			st := e.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
			b.ReportMetric(float64(st.QueueDrops)/float64(b.N), "full/report")
			if c := st.Collectors[0]; c.Sent != uint64(b.N) {
				b.Fatalf("sent %d of %d: %+v", c.Sent, b.N, c)
			}
		})
	}
}

// silentSink binds a loopback UDP socket that nobody reads and returns its
// address.
func silentSink(tb testing.TB) string {
	tb.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c.LocalAddr().String()
}

// BenchmarkSendBatch measures the sender alone: one sendmmsg batch of
// BatchSize reports to one loopback collector, reported per report.
func BenchmarkSendBatch(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			e := newExporter(b, Config{Collectors: []string{silentSink(b)}, Format: intreport.V20, BatchSize: batch})
			r := testReport(1, 1)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e.Enqueue(r)
				if i%batch == batch-1 {
					e.sendBatch(batch)
				}
			}
			if c := e.Stats().Collectors[0]; c.Errors != 0 {
				b.Fatalf("send errors: %+v", c)
			}
		})
	}
}
