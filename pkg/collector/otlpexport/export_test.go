package otlpexport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	collogpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// endpoint is an OTLP/HTTP logs receiver that answers each request with
// status(n) (n counts requests from 1) and keeps the records it accepts.
type endpoint struct {
	mu       sync.Mutex
	requests int
	records  []map[string]any // attributes of each accepted record
	srv      *httptest.Server
}

func newEndpoint(t *testing.T, status func(n int) int) *endpoint {
	t.Helper()
	e := &endpoint{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		defer e.mu.Unlock()
		e.requests++
		if r.URL.Path != "/v1/logs" {
			http.NotFound(w, r)
			return
		}
		if code := status(e.requests); code != http.StatusOK {
			w.WriteHeader(code)
			return
		}
		var req collogpb.ExportLogsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("request %d: %v", e.requests, err)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, rl := range req.ResourceLogs {
			for _, sl := range rl.ScopeLogs {
				for _, lr := range sl.LogRecords {
					a := map[string]any{}
					for _, kv := range lr.Attributes {
						if s, ok := kv.Value.Value.(*commonpb.AnyValue_StringValue); ok {
							a[kv.Key] = s.StringValue
						} else {
							a[kv.Key] = kv.Value.GetIntValue()
						}
					}
					e.records = append(e.records, a)
				}
			}
		}
		w.Header().Set("Content-Type", "application/x-protobuf")
		b, _ := proto.Marshal(&collogpb.ExportLogsServiceResponse{})
		w.Write(b)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endpoint) got() (requests int, records []map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.requests, append([]map[string]any(nil), e.records...)
}

// table returns a table with n rows of one packet each at pod-a's net1.
func table(n int) *flowtable.Table {
	tb := flowtable.New(100)
	p := &topology.Port{Port: api.Port{ID: 5, Name: "net1", Pod: &topology.Pod{Namespace: "default", Name: "pod-a"}},
		SwitchID: 1, Node: "node-a"}
	for i := range n {
		tb.Add(&flowtable.Observation{TimeNs: int64(i + 1), Packets: 1, Bytes: 100, Tuple: flowkey.Tuple{
			Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("198.18.0.2"),
			SrcPort: uint16(1000 + i), DstPort: 80, Proto: flowkey.ProtoTCP, EtherType: flowkey.EtherTypeIPv4}}, p, nil)
	}
	return tb
}

func testConfig(e *endpoint) Config {
	cfg := DefaultConfig()
	cfg.Endpoint = e.srv.URL // http://127.0.0.1:port
	cfg.Interval, cfg.Timeout = 100*time.Millisecond, time.Second
	return cfg
}

// run starts ex.Run and returns the function that stops it and waits.
func run(t *testing.T, ex *Exporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ex.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	e := newEndpoint(t, func(n int) int {
		if n <= 2 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	tb := table(3)
	ex, err := New(testConfig(e), tb)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ex)
	waitFor(t, "3 records exported", func() bool { return ex.Stats().Exported == 3 })
	s := ex.Stats()
	requests, recs := e.got()
	// One batch: tried three times.
	if s.Records != 3 || s.FailedRequests != 2 || s.Requests != 3 || requests != 3 || len(recs) != 3 {
		t.Errorf("stats %+v; endpoint saw %d requests, %d records", s, requests, len(recs))
	}
	if s.LastError == "" || s.LastSuccessTime == nil {
		t.Errorf("last error %q, last success %v", s.LastError, s.LastSuccessTime)
	}
	for _, r := range recs {
		if r[AttrPodName] != "pod-a" || r[AttrInterface] != "net1" || r[AttrPackets] != int64(1) || r[AttrTransport] != "tcp" {
			t.Errorf("record %v", r)
		}
	}
}

// A batch still failing after MaxRetryTime is dropped and counted, with the
// packets and bytes it held.
func TestGivesUpAfterMaxRetryTime(t *testing.T) {
	e := newEndpoint(t, func(int) int { return http.StatusInternalServerError })
	cfg := testConfig(e)
	cfg.MaxRetryTime = 0
	ex, err := New(cfg, table(4))
	if err != nil {
		t.Fatal(err)
	}
	run(t, ex)
	waitFor(t, "4 records dropped", func() bool { return ex.Stats().Dropped[DropExportFailed] == 4 })
	if s := ex.Stats(); s.Exported != 0 || s.DroppedPackets != 4 || s.DroppedBytes != 400 || s.FailedRequests != 1 {
		t.Errorf("stats %+v, want one failed request of 4 records (4 packets, 400 bytes)", s)
	}
}

// While the endpoint refuses, at most QueueSize records exist; the rest of
// the changes wait in the table and go out, whole, once it accepts.
func TestQueueBoundsMemoryWhileDown(t *testing.T) {
	var mu sync.Mutex
	down := true
	e := newEndpoint(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	cfg := testConfig(e)
	cfg.QueueSize, cfg.BatchSize, cfg.MaxRetryTime = 3, 2, time.Minute
	tb := table(10)
	ex, err := New(cfg, tb)
	if err != nil {
		t.Fatal(err)
	}
	run(t, ex)
	waitFor(t, "the queue to fill", func() bool { return ex.Stats().Queued == 1 }) // 2 in flight, 1 queued
	time.Sleep(300 * time.Millisecond)
	if s := ex.Stats(); s.Records != 3 || s.PendingRows != 7 {
		t.Errorf("while down: %d records made, %d rows pending; want 3 and 7", s.Records, s.PendingRows)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitFor(t, "10 records exported", func() bool { return ex.Stats().Exported == 10 })
	if s := ex.Stats(); s.Records != 10 || len(s.Dropped) != 4 || s.Dropped[DropExportFailed]+s.Dropped[DropQueueFull]+s.Dropped[DropShutdown]+s.Dropped[DropEvicted] != 0 {
		t.Errorf("after the outage: %+v", s)
	}
}

// Stopping takes the last changes and sends them; when the endpoint is
// down, Run still returns within Timeout and counts what it gave up.
func TestFlushOnStop(t *testing.T) {
	e := newEndpoint(t, func(int) int { return http.StatusOK })
	cfg := testConfig(e)
	cfg.Interval = time.Hour
	ex, err := New(cfg, table(2))
	if err != nil {
		t.Fatal(err)
	}
	run(t, ex)()
	if _, recs := e.got(); len(recs) != 2 || ex.Stats().Exported != 2 {
		t.Errorf("flush on stop: endpoint got %d records, stats %+v", len(recs), ex.Stats())
	}

	down := newEndpoint(t, func(int) int { return http.StatusServiceUnavailable })
	cfg = testConfig(down)
	cfg.Interval, cfg.Timeout, cfg.MaxRetryTime = time.Hour, 300*time.Millisecond, time.Hour
	ex, err = New(cfg, table(3))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	run(t, ex)()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stop with the endpoint down took %v, want about --otlp-timeout (300ms)", took)
	}
	if s := ex.Stats(); s.Dropped[DropShutdown] != 3 || s.DroppedPackets != 3 {
		t.Errorf("stop with the endpoint down: %+v, want 3 records dropped at shutdown", s)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mod   func(*Config)
		field string
	}{
		{func(c *Config) { c.Endpoint = "nohost" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint = ":4318" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint = "h:0" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint = "grpc://h:4317" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint = "http://h:4318?x=1" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint = "http://h:70000" }, "otlp-endpoint"},
		{func(c *Config) { c.Endpoint, c.Insecure = "https://h:4318", true }, "otlp-insecure"},
		{func(c *Config) { c.Interval = 0 }, "otlp-interval"},
		{func(c *Config) { c.Timeout = time.Millisecond }, "otlp-timeout"},
		{func(c *Config) { c.MaxRetryTime = -time.Second }, "otlp-max-retry-time"},
		{func(c *Config) { c.QueueSize = 0 }, "otlp-queue-size"},
		{func(c *Config) { c.BatchSize = c.QueueSize + 1 }, "otlp-batch-size"},
	} {
		cfg := DefaultConfig()
		tc.mod(&cfg)
		var fe *FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, tc.field)
		}
	}
	for _, tc := range []struct {
		endpoint string
		insecure bool
		want     target
	}{
		{"collector:4318", false, target{"collector:4318", "", false}},
		{"collector:4318", true, target{"collector:4318", "", true}},
		{"http://collector:4318", false, target{"collector:4318", "", true}},
		{"https://collector/otlp/v1/logs", false, target{"collector", "/otlp/v1/logs", false}},
		{"[fd00::1]:4318", true, target{"[fd00::1]:4318", "", true}},
	} {
		cfg := DefaultConfig()
		cfg.Endpoint, cfg.Insecure = tc.endpoint, tc.insecure
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", tc.endpoint, err)
		}
		if got, _ := cfg.target(); got != tc.want {
			t.Errorf("%s insecure=%v: %+v, want %+v", tc.endpoint, tc.insecure, got, tc.want)
		}
	}
	if cfg := DefaultConfig(); cfg.Validate() != nil {
		err := cfg.Validate()
		t.Errorf("defaults: %v", err)
	}
}

func TestReasonKey(t *testing.T) {
	for code, want := range map[uint8]string{80: "nsint.drops.acl_deny", 71: "nsint.drops.queue_full", 250: "nsint.drops.code_250"} {
		if got := ReasonKey(code); got != want {
			t.Errorf("ReasonKey(%d) = %s, want %s", code, got, want)
		}
	}
}
