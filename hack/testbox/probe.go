package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// Forged reports carry this flow: UDP from ForgedSrc:ForgedSrcPort to
// ForgedDst:ForgedDstPort, addresses no pod of the tests has, so that a row
// of it in the collector can only come from a forged report.
const (
	ForgedSrc     = "198.18.250.1"
	ForgedDst     = "198.18.250.2"
	ForgedSrcPort = 6661
	ForgedDstPort = 6662
)

// report sends n INT v2.0 flow reports as an agent would, claiming to be
// switch ID sw and to have seen the forged flow at port ID port, to
// addr:udpPort. It prints sent=N.
func report(args []string) error {
	if len(args) != 5 {
		return fmt.Errorf("report ADDR PORT SWITCHID PORTID N: %d arguments", len(args))
	}
	var nums [4]uint64
	for i, a := range args[1:] {
		v, err := strconv.ParseUint(a, 0, 32)
		if err != nil {
			return fmt.Errorf("report: argument %d %q: %w", i+2, a, err)
		}
		nums[i] = v
	}
	c, err := net.Dial("udp", net.JoinHostPort(args[0], strconv.FormatUint(nums[0], 10)))
	if err != nil {
		return err
	}
	defer c.Close()
	frame := forgedFrame()
	sent := 0
	for i := range int(nums[3]) {
		r := intreport.Report{Kind: intreport.Flow, Seq: uint32(i + 1), SwitchID: uint32(nums[1]),
			IngressPort: uint16(nums[2]), EgressPort: uint16(nums[2]), ObservationPort: uint16(nums[2]),
			Direction: netif.Ingress, Packets: 1, Bytes: uint64(len(frame)), IngressTS: uint64(time.Now().UnixNano()),
			Inner: frame}
		if _, err := c.Write(intreport.AppendV20(nil, &r)); err != nil {
			fmt.Printf("sent=%d err=%v\n", sent, err)
			return nil
		}
		sent++
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("sent=%d\n", sent)
	return nil
}

// forgedFrame is an Ethernet frame of the forged flow's first datagram (no
// checksums: the collector reads addresses and ports, never checks them).
func forgedFrame() []byte {
	payload := []byte("nsint forged report\n")
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0xfa, 0x02})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0xfa, 0x01})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[8] = 64
	ip[9] = 17
	copy(ip[12:16], net.ParseIP(ForgedSrc).To4())
	copy(ip[16:20], net.ParseIP(ForgedDst).To4())
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], ForgedSrcPort)
	binary.BigEndian.PutUint16(udp[2:], ForgedDstPort)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(f[42:], payload)
	return f
}

// get requests a URL once and prints status=CODE and the body's first line,
// cut short: what a pod sees of an API (the agent's or the collector's).
// -ca names the CA bundle to check the server against (https), -server-name
// the name to check, -token-file a file whose content is sent as the bearer
// token (a ServiceAccount token of the pod). The token is never printed.
func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	caFile := fs.String("ca", "", "CA bundle (PEM) the server's certificate must chain to")
	serverName := fs.String("server-name", "", "name checked in the server's certificate (default: the URL's host)")
	tokenFile := fs.String("token-file", "", "file holding a bearer token to send")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("get [-ca FILE] [-server-name NAME] [-token-file FILE] URL")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: *serverName, MinVersion: tls.VersionTLS12}}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-ca %s: no certificate in it", *caFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	req, err := http.NewRequest(http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	if *tokenFile != "" {
		tok, err := os.ReadFile(*tokenFile)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	first, _, _ := strings.Cut(string(body), "\n")
	if len(first) > 120 {
		first = first[:120]
	}
	fmt.Printf("status=%d bytes=%d first=%q\n", resp.StatusCode, len(body), first)
	return nil
}
