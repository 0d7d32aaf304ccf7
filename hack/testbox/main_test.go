package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
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
