package exporter

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

// sizedReport is testReport i with an inner frame of 64 + 4*(i%3) bytes, so
// that consecutive reports differ in size and segmentation runs break.
func sizedReport(i int) *intreport.Report {
	r := testReport(i, 0)
	inner := make([]byte, 64+4*(i%3))
	copy(inner, innerFrame)
	r.Inner = inner
	return r
}

// sendSized queues n reports (runs of equal and of different sizes), runs
// the exporter and returns what the collector received, in order.
func sendSized(t *testing.T, e *Exporter, rcv *receiver, n int) [][]byte {
	t.Helper()
	for i := range n {
		r := sizedReport(i)
		if i >= n/2 {
			r = testReport(i, 0) // a long run of one size: several full segments
		}
		if !e.Enqueue(r) {
			t.Fatalf("Enqueue %d refused", i)
		}
	}
	stop := run(t, e)
	eventually(t, "every report to arrive", func() bool { return rcv.count() >= n })
	stop()
	return rcv.payloads()
}

// checkSized checks that datagram i is report i, whole, with sequence i.
func checkSized(t *testing.T, got [][]byte, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("received %d datagrams, want %d", len(got), n)
	}
	var d intreport.Decoded
	for i, p := range got {
		if err := intreport.Decode(p, &d); err != nil {
			t.Fatalf("datagram %d (%d bytes): %v", i, len(p), err)
		}
		r := d.Reports[0]
		wantInner := 64 + 4*(i%3)
		if i >= n/2 {
			wantInner = 64
		}
		if r.IngressPort != uint16(i) || r.Seq != uint32(i) || len(r.Inner) != wantInner {
			t.Fatalf("datagram %d: port %d, sequence %d, inner %d bytes; want %d, %d, %d",
				i, r.IngressPort, r.Seq, len(r.Inner), i, i, wantInner)
		}
	}
}

// TestSegmentedBatchesCarryOneReportPerDatagram: with segmentation offload
// a message carries a run of equal-size reports; the collector must still
// get one whole report per datagram, in order, numbered without gaps.
func TestSegmentedBatchesCarryOneReportPerDatagram(t *testing.T) {
	rcv := listen(t, "udp4", "127.0.0.1:0")
	e := newExporter(t, Config{Collectors: []string{rcv.addr()}, Format: intreport.V20, BatchSize: 256})
	const n = 600
	checkSized(t, sendSized(t, e, rcv, n), n)
	c := e.Stats().Collectors[0]
	if !c.Segmented || c.Sent != n || c.Errors != 0 || c.Dropped != 0 {
		t.Fatalf("stats %+v: want segmentation on, %d sent, no error", c, n)
	}
}

// TestSegmentationRefusedFallsBack: a socket without UDP checksums
// (SO_NO_CHECK) makes the kernel refuse UDP_SEGMENT with EINVAL, as a route
// without checksum offload or through IPsec does with EIO. Nothing may be
// lost: the exporter resends one datagram per report from the refused one.
func TestSegmentationRefusedFallsBack(t *testing.T) {
	rcv := listen(t, "udp4", "127.0.0.1:0")
	e := newExporter(t, Config{Collectors: []string{rcv.addr()}, Format: intreport.V20, BatchSize: 256})
	if err := unix.SetsockoptInt(e.collectors[0].fd, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
		t.Fatal(err)
	}
	const n = 600
	checkSized(t, sendSized(t, e, rcv, n), n)
	c := e.Stats().Collectors[0]
	if c.Segmented || c.Sent != n || c.Errors != 0 || c.Dropped != 0 {
		t.Fatalf("stats %+v: want segmentation off after the refusal, %d sent, no error", c, n)
	}
}
