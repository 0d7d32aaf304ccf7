package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const usage = `usage:
  testbox pause                      wait for SIGTERM or SIGINT, reaping children
  testbox serve PORT                 TCP and UDP echo on PORT (every address), until killed
  testbox send udp|tcp ADDR PORT N   send N messages to ADDR:PORT, print how many were answered
  testbox talk [-port 7000] [-every 250ms] PEER...
                                     echo on -port, and keep sending to each PEER's -port over TCP and UDP
  testbox report ADDR PORT SWITCHID PORTID N
                                     send N forged INT flow reports as switch SWITCHID, port PORTID
  testbox get [-ca FILE] [-server-name NAME] [-token-file FILE] URL
                                     GET URL once, print status=CODE`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "testbox: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		args = []string{"pause"}
	}
	switch {
	case args[0] == "pause":
		return pause()
	case args[0] == "serve" && len(args) == 2:
		tl, ul, err := listen(args[1])
		if err != nil {
			return err
		}
		go serveUDP(ul)
		return serveTCP(tl)
	case args[0] == "send" && len(args) == 5:
		n, err := strconv.Atoi(args[4])
		if err != nil {
			return fmt.Errorf("message count %q: %w", args[4], err)
		}
		return send(args[1], net.JoinHostPort(args[2], args[3]), n)
	case args[0] == "talk":
		return talk(args[1:])
	case args[0] == "report":
		return report(args[1:])
	case args[0] == "get":
		return get(args[1:])
	}
	return errors.New(usage)
}

func pause() error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return nil
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
	return nil
}

// listen opens the TCP and UDP echo sockets on port, on every address.
func listen(port string) (net.Listener, net.PacketConn, error) {
	tl, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return nil, nil, fmt.Errorf("listen tcp :%s: %w", port, err)
	}
	ul, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		tl.Close()
		return nil, nil, fmt.Errorf("listen udp :%s: %w", port, err)
	}
	return tl, ul, nil
}

// serveTCP echoes every connection until the listener fails or is closed.
func serveTCP(tl net.Listener) error {
	for {
		c, err := tl.Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

// serveUDP echoes every datagram to its sender until the socket is closed.
func serveUDP(ul net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := ul.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = ul.WriteTo(buf[:n], from)
	}
}

func send(proto, addr string, n int) error {
	c, err := net.DialTimeout(proto, addr, 3*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	answered := 0
	buf := make([]byte, 256)
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("nsint testbox %d\n", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			fmt.Printf("sent=%d answered=%d err=%v\n", i, answered, err)
			return nil
		}
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := io.ReadAtLeast(c, buf, len(msg)); err == nil {
			answered++
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("sent=%d answered=%d\n", n, answered)
	return nil
}

// talk is the kind suite's workload: the echo on -port, and steady traffic
// to each peer's -port until SIGTERM or SIGINT.
func talk(args []string) error {
	fs := flag.NewFlagSet("talk", flag.ContinueOnError)
	port := fs.Int("port", 7000, "TCP and UDP echo port (served, and used on the peers)")
	every := fs.Duration("every", 250*time.Millisecond, "interval between two messages to each peer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	peers := fs.Args()
	for _, p := range peers {
		if net.ParseIP(p) == nil {
			return fmt.Errorf("peer %q: want an IP address", p)
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tl, ul, err := listen(strconv.Itoa(*port))
	if err != nil {
		return err
	}
	defer tl.Close()
	defer ul.Close()
	go func() { _ = serveTCP(tl) }() // ends when the listener closes on return
	go serveUDP(ul)
	for _, p := range peers {
		target := net.JoinHostPort(p, strconv.Itoa(*port))
		go keepSending(ctx, log, "tcp", target, *every)
		go keepSending(ctx, log, "udp", target, *every)
	}
	log.Info("serving", "port", *port, "peers", peers)
	<-ctx.Done()
	return nil
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
