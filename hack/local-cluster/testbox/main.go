package main

import (
	"fmt"
	"io"
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
  testbox send udp|tcp ADDR PORT N   send N messages to ADDR:PORT, print how many were answered`

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
		return serve(args[1])
	case args[0] == "send" && len(args) == 5:
		n, err := strconv.Atoi(args[4])
		if err != nil {
			return err
		}
		return send(args[1], net.JoinHostPort(args[2], args[3]), n)
	}
	return fmt.Errorf("%s", usage)
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

func serve(port string) error {
	tl, err := net.Listen("tcp", ":"+port)
	if err != nil {
		return err
	}
	ul, err := net.ListenPacket("udp", ":"+port)
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo(buf[:n], from)
		}
	}()
	for {
		c, err := tl.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
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
