package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/intreport"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestEchoAnswersTalk runs the echo and talk's senders against it on
// loopback: both protocols are answered.
func TestEchoAnswersTalk(t *testing.T) {
	tl, ul, err := listen("0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close(); ul.Close() })
	go func() { _ = serveTCP(tl) }()
	go serveUDP(ul)
	_, port, _ := net.SplitHostPort(tl.Addr().String())
	_, uport, _ := net.SplitHostPort(ul.LocalAddr().String())

	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { keepSending(ctx, log, "tcp", net.JoinHostPort("127.0.0.1", port), 20*time.Millisecond) })
	wg.Go(func() { keepSending(ctx, log, "udp", net.JoinHostPort("127.0.0.1", uport), 20*time.Millisecond) })
	wg.Wait()
	for _, network := range []string{"tcp", "udp"} {
		if !strings.Contains(out.String(), "msg=answered network="+network) {
			t.Errorf("no %s message answered; log:\n%s", network, out.String())
		}
	}
}

// TestForgedReportDecodes: what "report" sends is a v2.0 flow report that the
// collector's decoder reads as the forged flow at the given port.
func TestForgedReportDecodes(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)
	if err := report([]string{"127.0.0.1", port, "0x0a0b", "7", "1"}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := pc.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	var d intreport.Decoded
	if err := intreport.Decode(buf[:n], &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Reports) != 1 {
		t.Fatalf("%d reports", len(d.Reports))
	}
	r := d.Reports[0]
	if d.Format != intreport.V20 || r.SwitchID != 0x0a0b || r.ObservationPort != 7 || r.Kind != intreport.Flow {
		t.Errorf("decoded %+v", r.Report)
	}
	ip := r.Inner[14:34]
	if net.IP(ip[12:16]).String() != ForgedSrc || net.IP(ip[16:20]).String() != ForgedDst || ip[9] != 17 {
		t.Errorf("inner IPv4 header %x, want UDP %s -> %s", ip, ForgedSrc, ForgedDst)
	}
}
