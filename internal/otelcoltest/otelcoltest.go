package otelcoltest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary returns the path of nsint-otelcol, building it first when it is
// missing or stale (hack/otelcol/build.sh: minutes cold, well under a second
// warm).
func Binary(tb testing.TB) string {
	tb.Helper()
	script := filepath.Join(repoRoot(tb), "hack", "otelcol", "build.sh")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("build the OpenTelemetry Collector (%s): %v\n%s", script, err, stderr.String())
	}
	bin := strings.TrimSpace(stdout.String())
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		tb.Fatalf("%s printed %q, not an executable", script, bin)
	}
	return bin
}

// repoRoot is the directory of the main module's go.mod (the go command
// finds it from the test's working directory, the package's directory).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		tb.Fatalf("go env GOMOD: %q, %v: run the tests inside the repository", gomod, err)
	}
	return filepath.Dir(gomod)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Collector is a running nsint-otelcol.
type Collector struct {
	Endpoint string // host:port of its OTLP/HTTP receiver
	Output   string // the file its file exporter writes
	cmd      *exec.Cmd
	log      *lockedWriter // its standard output and error
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start runs bin with an OTLP/HTTP receiver on 127.0.0.1:port writing every
// log record it receives to output (OTLP JSON, one request per line), and
// waits until the receiver accepts connections. Cleanup stops it.
func Start(tb testing.TB, bin string, port int, output string) *Collector {
	tb.Helper()
	endpoint := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// No telemetry server of its own (it would take port 8888), warnings
	// only in its log.
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: %q
exporters:
  file:
    path: %q
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`, endpoint, output)
	cfgPath := output + ".config.yaml"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		tb.Fatal(err)
	}
	c := &Collector{Endpoint: endpoint, Output: output, log: &lockedWriter{}, done: make(chan struct{})}
	c.cmd = exec.Command(bin, "--config", cfgPath)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	if err := c.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		c.cmd.Wait()
		close(c.done)
	}()
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Errorf("stop the OpenTelemetry Collector: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", endpoint, time.Second)
		if err == nil {
			conn.Close()
			return c
		}
		select {
		case <-c.done:
			tb.Fatalf("the OpenTelemetry Collector exited at start: %v\n%s", c.cmd.ProcessState, c.Log())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the OpenTelemetry Collector does not listen on %s after 30s:\n%s", endpoint, c.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the collector by its PID: SIGTERM, which flushes what it
// received to Output, then SIGKILL if it has not exited within 15 s. It
// returns an error when the process had to be killed or exited in error.
func (c *Collector) Stop() error {
	c.stopOnce.Do(func() {
		select {
		case <-c.done:
		default:
			c.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(15 * time.Second):
				c.cmd.Process.Kill()
				<-c.done
				c.stopErr = fmt.Errorf("pid %d ignored SIGTERM for 15s and was killed", c.cmd.Process.Pid)
				return
			}
		}
		if st := c.cmd.ProcessState; !st.Success() {
			// Exiting on SIGTERM is a clean exit for the collector.
			if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				c.stopErr = fmt.Errorf("pid %d: %v\n%s", c.cmd.Process.Pid, st, c.Log())
			}
		}
	})
	return c.stopErr
}

// Log returns what the collector wrote to its standard output and error.
func (c *Collector) Log() string {
	c.log.mu.Lock()
	defer c.log.mu.Unlock()
	return c.log.buf.String()
}

type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Record is one log record as the file exporter wrote it.
type Record struct {
	Resource             map[string]any // resource attributes
	Scope                string         // instrumentation scope name
	EventName            string
	TimeUnixNano         int64
	ObservedTimeUnixNano int64
	SeverityText         string
	// Attrs holds each attribute's value: string, int64, float64, bool, or
	// for other kinds the raw OTLP JSON value.
	Attrs map[string]any
}

// ReadLogs parses the log records of output files; a missing file holds
// none. A line still being written (no newline yet) is ignored.
func ReadLogs(tb testing.TB, paths ...string) []Record {
	tb.Helper()
	var out []Record
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			recs, err := parseRequest(line)
			if err != nil {
				if !bytes.HasSuffix(data, []byte("\n")) && bytes.HasSuffix(data, line) {
					continue // the last line, half written
				}
				tb.Fatalf("%s: %v: %s", p, err, line)
			}
			out = append(out, recs...)
		}
	}
	return out
}

type jsonKV struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type jsonRequest struct {
	ResourceLogs []struct {
		Resource struct {
			Attributes []jsonKV `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			LogRecords []struct {
				TimeUnixNano         string   `json:"timeUnixNano"`
				ObservedTimeUnixNano string   `json:"observedTimeUnixNano"`
				SeverityText         string   `json:"severityText"`
				EventName            string   `json:"eventName"`
				Attributes           []jsonKV `json:"attributes"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

func parseRequest(line []byte) ([]Record, error) {
	var req jsonRequest
	if err := json.Unmarshal(line, &req); err != nil {
		return nil, err
	}
	var out []Record
	for _, rl := range req.ResourceLogs {
		res, err := attrs(rl.Resource.Attributes)
		if err != nil {
			return nil, err
		}
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				a, err := attrs(lr.Attributes)
				if err != nil {
					return nil, err
				}
				r := Record{Resource: res, Scope: sl.Scope.Name, EventName: lr.EventName,
					SeverityText: lr.SeverityText, Attrs: a}
				r.TimeUnixNano, _ = strconv.ParseInt(lr.TimeUnixNano, 10, 64)
				r.ObservedTimeUnixNano, _ = strconv.ParseInt(lr.ObservedTimeUnixNano, 10, 64)
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// attrs decodes OTLP JSON attributes (an intValue is a decimal string).
func attrs(kvs []jsonKV) (map[string]any, error) {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		var v struct {
			S *string  `json:"stringValue"`
			I *string  `json:"intValue"`
			D *float64 `json:"doubleValue"`
			B *bool    `json:"boolValue"`
		}
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("attribute %s: %w", kv.Key, err)
		}
		switch {
		case v.S != nil:
			m[kv.Key] = *v.S
		case v.I != nil:
			n, err := strconv.ParseInt(*v.I, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", kv.Key, err)
			}
			m[kv.Key] = n
		case v.D != nil:
			m[kv.Key] = *v.D
		case v.B != nil:
			m[kv.Key] = *v.B
		default:
			m[kv.Key] = kv.Value
		}
	}
	return m, nil
}
