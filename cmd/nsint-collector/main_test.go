package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nsint/nsint/internal/certtest"
	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector"
	"github.com/nsint/nsint/pkg/collector/deepinsight"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/intreport"
)

// TestMain lets a test run this binary's main with the environment variable
// NSINT_COLLECTOR_TEST_MAIN set, to observe exit codes.
func TestMain(m *testing.M) {
	if os.Getenv("NSINT_COLLECTOR_TEST_MAIN") == "1" {
		os.Args = append([]string{"nsint-collector"}, strings.Fields(os.Getenv("NSINT_COLLECTOR_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runMain(t *testing.T, args string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, "NSINT_COLLECTOR_TEST_MAIN=1", "NSINT_COLLECTOR_TEST_ARGS="+args)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), out.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String()
}

func TestInvalidConfigurationExitsWithStatus2(t *testing.T) {
	dir := t.TempDir()
	yml := filepath.Join(dir, "c.yaml")
	os.WriteFile(yml, []byte("max-flows: -5\n"), 0o644)
	bogus := filepath.Join(dir, "bogus.yaml")
	os.WriteFile(bogus, []byte("listen: \":1\"\nnot-a-flag: 3\n"), 0o644)
	for _, tc := range []struct {
		args  string
		env   []string
		wants []string
	}{
		{"--max-flows 0", nil, []string{"max-flows", `"0"`}},
		{"--listen nonsense", nil, []string{"listen", `"nonsense"`}},
		{"--agents ftp://x", nil, []string{"agents", "ftp://x"}},
		{"--max-flows abc", nil, []string{"max-flows", "abc"}},
		{"", []string{"NSINT_COLLECTOR_AGENT_API_PORT=70000"}, []string{"agent-api-port", "70000"}},
		{"--config " + yml, nil, []string{"max-flows", "-5"}},
		{"--config " + bogus, nil, []string{"not-a-flag"}},
		{"flows --port x", nil, []string{"port", "x"}},
		{"deepinsight-topology", nil, []string{"agents"}},
		{"serve extra", nil, []string{"extra"}},
		{"--otlp-endpoint nonsense", nil, []string{"otlp-endpoint", `"nonsense"`}},
		{"--otlp-endpoint ftp://h:4318", nil, []string{"otlp-endpoint", "ftp://h:4318", "http or https"}},
		{"--otlp-endpoint h:99999", nil, []string{"otlp-endpoint", "h:99999"}},
		{"--otlp-endpoint https://h:4318 --otlp-insecure", nil, []string{"otlp-insecure", "https://h:4318"}},
		{"--otlp-interval 10ms", nil, []string{"otlp-interval", `"10ms"`}},
		{"--otlp-interval soon", nil, []string{"otlp-interval", "soon"}},
		{"", []string{"NSINT_COLLECTOR_OTLP_QUEUE_SIZE=0"}, []string{"otlp-queue-size", `"0"`}},
		{"--otlp-queue-size 5 --otlp-batch-size 10", nil, []string{"otlp-batch-size", `"10"`}},
		{"--otlp-max-retry-time -1s", nil, []string{"otlp-max-retry-time", `"-1s"`}},
		{"flows --token @" + filepath.Join(dir, "absent"), nil, []string{"--token", filepath.Join(dir, "absent"), "no such file"}},
		{"flows --token @" + yml + " --server https://h", nil, []string{"--token", yml, "white space"}},
		{"flows --ca-file " + yml + " --server https://h", nil, []string{"--ca-file", yml, "no PEM certificate"}},
		{"flows --kubeconfig " + filepath.Join(dir, "absent"), nil, []string{"--kubeconfig", filepath.Join(dir, "absent")}},
		{"flows --token abc --server http://198.18.0.1:8080", nil, []string{"--server", "https"}},
		{"flows --server ftp://h", nil, []string{"--server", "ftp://h"}},
	} {
		code, out := runMain(t, tc.args, tc.env...)
		if code != 2 {
			t.Errorf("%q %v: exit %d, want 2; output %s", tc.args, tc.env, code, out)
		}
		for _, w := range tc.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%q %v: output %q does not name %s", tc.args, tc.env, out, w)
			}
		}
	}
}

// serveCollector runs the collector (`run` with flags from the environment)
// with an agent of switch 9 on node-a, until the test ends. It returns a UDP
// connection to the collector and its base URL.
func serveCollector(t *testing.T) (net.Conn, string) {
	t.Helper()
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(topology.Document{SwitchID: 9, Node: "node-a", Generation: 1, Ports: []api.Port{
			{ID: 5, Name: "net1", Ifindex: 3, Pod: &topology.Pod{Namespace: "default", Name: "pod-a"}, Network: "default/macvlan-net"},
			{ID: 6, Name: ":stack", LocalStack: true},
		}})
	}))
	t.Cleanup(agent.Close)
	udpPort, apiPort := freePort(t, "udp"), freePort(t, "tcp")
	t.Setenv("NSINT_COLLECTOR_LISTEN", "127.0.0.1:"+udpPort)
	t.Setenv("NSINT_COLLECTOR_API_ADDR", "127.0.0.1:"+apiPort)
	t.Setenv("NSINT_COLLECTOR_AGENTS", agent.URL)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, io.Discard, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	server := "http://127.0.0.1:" + apiPort
	// Run listens on UDP before HTTP: once HTTP answers, reports are received.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(server + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("collector never served: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := net.Dial("udp", "127.0.0.1:"+udpPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, server
}

// udpFrame is Ethernet/IPv4/UDP 198.18.0.1:5000 → 198.18.0.2:53.
var udpFrame = append(make([]byte, 12), 0x08, 0x00, 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0,
	198, 18, 0, 1, 198, 18, 0, 2, 0x13, 0x88, 0x00, 0x35, 0, 20, 0, 0)

// TestServeAndFlowsCommand runs the collector, sends it a report, and prints
// the net1 flows with the `flows` command: no agent lost reports, so nothing
// follows the table.
func TestServeAndFlowsCommand(t *testing.T) {
	conn, server := serveCollector(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	payload := intreport.AppendV20(nil, &intreport.Report{Kind: intreport.Flow, SwitchID: 9, IngressPort: 5,
		EgressPort: 6, HopLatency: 2500, Packets: 4, Bytes: 160, Inner: udpFrame})
	deadline := time.Now().Add(15 * time.Second)
	var out bytes.Buffer
	for {
		conn.Write(payload)
		out.Reset()
		if err := run(context.Background(), []string{"flows", "--server", server, "--iface", "net1"}, &out, log); err == nil &&
			strings.Count(out.String(), "\n") == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flows never showed the report: %q", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	t.Logf("flows output:\n%s", out.String())
	for _, want := range []string{"node-a", "default/pod-a", "net1", "ingress", "default/macvlan-net", "udp",
		"198.18.0.1:5000", "198.18.0.2:53", "2.5µs"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("flows row %q lacks %q", lines[1], want)
		}
	}
	if !strings.HasPrefix(lines[0], "NODE") {
		t.Errorf("header %q", lines[0])
	}
	err := run(context.Background(), []string{"flows", "--server", server, "--limit", "0", "--sort", "bogus"}, &out, log)
	if err == nil || !strings.Contains(err.Error(), `"sort"`) {
		t.Errorf("bad sort: %v", err)
	}
}

// TestFlowsCommandShowsReportLoss sends reports with a gap in their sequence
// numbers: the `flows` output ends with a line saying the agent lost reports.
func TestFlowsCommandShowsReportLoss(t *testing.T) {
	conn, server := serveCollector(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, seq := range []uint32{1, 2, 6} { // 3, 4 and 5 lost
		conn.Write(intreport.AppendV20(nil, &intreport.Report{Kind: intreport.Flow, Seq: seq, SwitchID: 9,
			IngressPort: 5, EgressPort: 6, Packets: 1, Bytes: 40, Inner: udpFrame}))
	}
	const want = "node-a (127.0.0.1): 3 reports lost — totals may be short"
	deadline := time.Now().Add(15 * time.Second)
	var out bytes.Buffer
	for {
		out.Reset()
		err := run(context.Background(), []string{"flows", "--server", server, "--iface", "net1"}, &out, log)
		if err == nil && strings.Contains(out.String(), want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flows never showed the loss (err %v): %q", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("flows output:\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NODE") || !strings.Contains(lines[1], "net1") || lines[2] != want {
		t.Errorf("flows output: header, the net1 row, then %q; got %q", want, lines)
	}
	if !strings.Contains(lines[1], " 3 ") {
		t.Errorf("net1 row %q: want 3 packets (the reports that arrived)", lines[1])
	}
}

func TestDeepInsightTopologyCommand(t *testing.T) {
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(topology.Document{SwitchID: 9, Node: "node-a", Generation: 1, Ports: []api.Port{
			{ID: 5, Name: "net1", IPs: []string{"198.18.1.2", "fd00:1::2"}, Network: "default/macvlan-net", Netns: topology.Netns{Inode: 1}},
			{ID: 6, Name: ":stack", LocalStack: true, Netns: topology.Netns{Inode: 1}},
		}})
	}))
	defer agent.Close()
	out := filepath.Join(t.TempDir(), "topo.json")
	if err := run(context.Background(), []string{"deepinsight-topology", "--agents", agent.URL, "--output", out}, io.Discard,
		slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var topo deepinsight.Topology
	if err := json.Unmarshal(raw, &topo); err != nil {
		t.Fatal(err)
	}
	if len(topo.Switches) != 1 || topo.Switches[0].SwitchID != 9 || len(topo.Subnets) != 2 || len(topo.Links) != 4 {
		t.Errorf("topology: %s", raw)
	}
}

func freePort(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, p, _ := net.SplitHostPort(c.LocalAddr().String())
		return p
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// deepinsight-topology reaches an https agent with --agent-tls-ca, the
// default --agent-tls-server-name and --agent-token-file.
func TestDeepInsightTopologyHTTPS(t *testing.T) {
	ca, err := certtest.NewCA("agents")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := ca.WriteServing(dir, "agent", "nsint-agent", []string{collector.DefaultAgentServerName}, nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile, tokenFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := ca.WriteCA(caFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte("agent-reader-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	agent := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer agent-reader-token" {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(topology.Document{SwitchID: 9, Node: "node-a", Generation: 1, Ports: []api.Port{
			{ID: 5, Name: "net1", IPs: []string{"198.18.1.2"}, Netns: topology.Netns{Inode: 1}},
		}})
	}))
	agent.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	agent.StartTLS()
	defer agent.Close()
	out := filepath.Join(t.TempDir(), "topo.json")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := run(context.Background(), []string{"deepinsight-topology", "--agents", agent.URL, "--output", out}, io.Discard, log); err == nil {
		t.Error("an https agent whose CA was not given was read")
	}
	if err := run(context.Background(), []string{"deepinsight-topology", "--agents", agent.URL, "--output", out,
		"--agent-tls-ca", caFile, "--agent-token-file", tokenFile}, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"node-a"`) {
		t.Errorf("topology: %s", raw)
	}
}
