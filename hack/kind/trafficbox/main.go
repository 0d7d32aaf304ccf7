package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	port := flag.Int("port", 7000, "TCP and UDP echo port (served, and used on the peers)")
	every := flag.Duration("every", 250*time.Millisecond, "interval between two messages to each peer")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *port, *every, flag.Args()); err != nil {
		log.Error("trafficbox failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, port int, every time.Duration, peers []string) error {
	addr := net.JoinHostPort("", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	defer ln.Close()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen udp %s: %w", addr, err)
	}
	defer pc.Close()
	go serveTCP(ln)
	go serveUDP(pc)
	for _, p := range peers {
		if net.ParseIP(p) == nil {
			return fmt.Errorf("peer %q: want an IP address", p)
		}
		target := net.JoinHostPort(p, strconv.Itoa(port))
		go keepSending(ctx, log, "tcp", target, every)
		go keepSending(ctx, log, "udp", target, every)
	}
	log.Info("serving", "port", port, "peers", peers)
	<-ctx.Done()
	return nil
}

func serveTCP(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		}()
	}
}

func serveUDP(pc net.PacketConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// keepSending sends one message every interval over one connection to
// target, dialling again only after an error.
func keepSending(ctx context.Context, log *slog.Logger, network, target string, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	var (
		conn    net.Conn
		r       *bufio.Reader
		sent    uint64
		answers uint64
	)
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if conn == nil {
			d := net.Dialer{Timeout: 2 * time.Second}
			c, err := d.DialContext(ctx, network, target)
			if err != nil {
				log.Warn("dial", "network", network, "target", target, "err", err)
				continue
			}
			conn, r = c, bufio.NewReader(c)
		}
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		msg := fmt.Sprintf("nsint %s %d\n", network, seq)
		if _, err := conn.Write([]byte(msg)); err != nil {
			log.Warn("send", "network", network, "target", target, "err", err)
			conn.Close()
			conn = nil
			continue
		}
		sent++
		if _, err := r.ReadBytes('\n'); err != nil {
			var ne net.Error
			if network == "udp" && errors.As(err, &ne) && ne.Timeout() {
				continue // a lost datagram: keep the socket
			}
			log.Warn("answer", "network", network, "target", target, "err", err)
			conn.Close()
			conn = nil
			continue
		}
		answers++
		if answers == 1 || answers%100 == 0 {
			log.Info("answered", "network", network, "target", target, "sent", sent, "answered", answers)
		}
	}
}
