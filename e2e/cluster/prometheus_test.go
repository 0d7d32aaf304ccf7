package cluster

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/nsint/nsint/internal/kubee2e"
	"github.com/nsint/nsint/pkg/api"
)

// promSample is one sample of an instant query's vector.
type promSample struct {
	Metric map[string]string
	Value  float64
}

// promQuery runs an instant query through the HTTP API (/api/v1/query) of
// the suite's Prometheus and returns the vector it evaluates to.
func (e *env) promQuery(query string) ([]promSample, error) {
	resp, err := http.Get(e.prometheus + "/api/v1/query?" + url.Values{"query": {query}}.Encode())
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", query, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %s: decode the answer (HTTP %s): %w", query, resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s: %s", query, body.Status, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: result type %q, want vector", query, body.Data.ResultType)
	}
	out := make([]promSample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %s: value %v: %w", query, r.Value, err)
		}
		out = append(out, promSample{Metric: r.Metric, Value: v})
	}
	return out, nil
}

// byLabel returns the samples' values by the value of one label; two samples
// with the same value of it are an error.
func byLabel(samples []promSample, label string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, s := range samples {
		k := s.Metric[label]
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("two samples with %s=%q: %v", label, k, samples)
		}
		out[k] = s.Value
	}
	return out, nil
}

// net1Counters returns the agent's own counters of p's net1, as its topology
// shows them now.
func (e *env) net1Counters(t *testing.T, p pod) api.PortCounters {
	t.Helper()
	for _, port := range podPorts(e.topology(t), p) {
		if port.Name == "net1" && port.Counters != nil {
			return *port.Counters
		}
	}
	t.Fatalf("%s has no net1 with counters in the agent's topology", p)
	return api.PortCounters{}
}

// sentAnswered parses what `testbox send` printed.
func sentAnswered(t *testing.T, out string) (sent, answered int) {
	t.Helper()
	if _, err := fmt.Sscanf(out, "sent=%d answered=%d", &sent, &answered); err != nil {
		t.Fatalf("testbox send printed %q: %v", out, err)
	}
	return sent, answered
}

// scrapedAfter checks that every sample of query (a series selector)
// was scraped after when: a scrape passed after the traffic ended.
func (e *env) scrapedAfter(query string, when time.Time) error {
	ts, err := e.promQuery("timestamp(" + query + ")")
	if err != nil {
		return err
	}
	if len(ts) == 0 {
		return fmt.Errorf("no sample of %s", query)
	}
	for _, s := range ts {
		if s.Value < float64(when.UnixMilli())/1000 {
			return fmt.Errorf("last scrape of %s at %.3f, before the traffic ended at %.3f",
				query, s.Value, float64(when.UnixMilli())/1000)
		}
	}
	return nil
}

// The suite's Prometheus (hack/local-cluster/prometheus.sh) finds the agent
// pod through the API server and its prometheus.io annotations, and scrapes
// it over HTTPS with a token that may get /metrics only (and the collector
// likewise). What its PromQL answers for net1 of one pod is exactly what the test
// sent: the UDP datagrams and their echoes, counted once a scrape after the
// traffic has passed (in a window where nothing else crossed net1); and a closed-port probe's datagrams appear as drops of
// the receiving pod's net1 with the kernel's reason, no more and no fewer.
// Last, the queries docs/operations.md shows evaluate.
func testPrometheus(t *testing.T, e *env, a, b pod) {
	if e.prometheus == "" {
		t.Fatal("PROMETHEUS is not set: make e2e-cluster starts one (hack/local-cluster/prometheus.sh start DIR KUBECONFIG)")
	}
	agents := agentPods(t, e)
	if len(agents) != 1 {
		t.Fatalf("%d agent pods", len(agents))
	}
	kubee2e.Eventually(t, 60*time.Second, "Prometheus scrapes the agent pod it discovered", func() error {
		up, err := e.promQuery(`up{job="nsint-agent"}`)
		if err != nil {
			return err
		}
		if len(up) != 1 {
			return fmt.Errorf("targets %v, want the one agent pod", up)
		}
		m := up[0].Metric
		if up[0].Value != 1 || m["agent_pod"] != agents[0].Name || m["agent_namespace"] != agentNamespace ||
			m["instance"] != nodeIP+":4048" {
			return fmt.Errorf("target %v = %v, want agent_pod %s at %s:4048, up", m, up[0].Value, agents[0].Name, nodeIP)
		}
		return nil
	})
	// The collector too, over TLS with the same token (nsint-metrics-reader).
	kubee2e.Eventually(t, 60*time.Second, "Prometheus scrapes the collector", func() error {
		up, err := e.promQuery(`up{job="nsint-collector"}`)
		if err != nil {
			return err
		}
		if len(up) != 1 || up[0].Value != 1 {
			return fmt.Errorf("collector targets %v, want one up", up)
		}
		return nil
	})
	if renamed, err := e.promQuery(`{job="nsint-agent", exported_pod!=""}`); err != nil || len(renamed) > 0 {
		t.Errorf("series whose pod label Prometheus renamed (%v): %v", err, renamed)
	}

	t.Run("PacketsOfNet1", func(t *testing.T) { testPromPackets(t, e, a, b) })
	t.Run("DropsWithReason", func(t *testing.T) { testPromDrops(t, e, a, b) })
	t.Run("DocumentedQueries", func(t *testing.T) { testPromDocQueries(t, e, b) })
}

// Packets of a's net1 per direction. The pods' own stacks send now and then
// on their own (IPv6 router solicitations back off for an hour, neighbour
// probes, multicast reports), so a measurement counts only when net1's own
// kernel counters, read from the host, say that the test's datagrams and
// echoes were all that crossed it meanwhile; otherwise it is made again.
func testPromPackets(t *testing.T, e *env, a, b pod) {
	sel := fmt.Sprintf(`pod_namespace=%q, pod=%q, interface="net1"`, a.namespace, a.name)
	packets := fmt.Sprintf(`nsint_port_packets_total{%s}`, sel)
	const n, attempts = 20, 5
	for attempt := 1; ; attempt++ {
		before := e.promAgrees(t, a, packets)
		rx0, tx0 := net1Stats(t, e, a)
		sent, answered := sentAnswered(t, e.mustExec(t, a, "testbox", "send", "udp", b.net1v4, echoPort, strconv.Itoa(n)))
		ended := time.Now()
		if sent != n || answered == 0 {
			t.Fatalf("UDP echo over net1: sent %d answered %d, want %d sent and answers", sent, answered, n)
		}
		var after map[string]float64
		kubee2e.Eventually(t, 30*time.Second, "a scrape of "+a.String()+" net1 after the traffic", func() error {
			if err := e.scrapedAfter(packets, ended); err != nil {
				return err
			}
			after = e.promAgrees(t, a, packets)
			return nil
		})
		rx1, tx1 := net1Stats(t, e, a)
		egress, ingress := after["egress"]-before["egress"], after["ingress"]-before["ingress"]
		if tx1-tx0 != uint64(sent) || rx1-rx0 != uint64(answered) {
			msg := fmt.Sprintf("attempt %d: net1 carried other packets too (its counters: %d out, %d in; the test's: %d, %d; Prometheus: %v, %v)",
				attempt, tx1-tx0, rx1-rx0, sent, answered, egress, ingress)
			if attempt == attempts {
				t.Fatal(msg)
			}
			t.Log(msg + "; measuring again")
			continue
		}
		if egress != float64(sent) || ingress != float64(answered) {
			t.Fatalf("%s rose by %v egress and %v ingress, want exactly the %d datagrams sent and %d echoes received",
				packets, egress, ingress, sent, answered)
		}
		t.Logf("%s net1: %d datagrams sent and %d echoes, exactly, in Prometheus (%s)", a, sent, answered, packets)
		return
	}
}

// promAgrees returns query's values by direction once they are those of the
// agent's own counters of p's net1 (query selects that port's packets).
func (e *env) promAgrees(t *testing.T, p pod, query string) map[string]float64 {
	t.Helper()
	var got map[string]float64
	kubee2e.Eventually(t, 30*time.Second, "Prometheus agrees with the agent on "+p.String()+" net1", func() error {
		c := e.net1Counters(t, p)
		samples, err := e.promQuery(query)
		if err != nil {
			return err
		}
		if got, err = byLabel(samples, "direction"); err != nil {
			return err
		}
		want := map[string]float64{"ingress": float64(c.Ingress.Packets), "egress": float64(c.Egress.Packets)}
		if len(got) != 2 || got["ingress"] != want["ingress"] || got["egress"] != want["egress"] {
			return fmt.Errorf("Prometheus %v, the agent %v", got, want)
		}
		return nil
	})
	return got
}

// net1Stats returns the packets p's net1 received and sent, as its own
// kernel counters say (read from the host through the pod's namespace file).
func net1Stats(t *testing.T, e *env, p pod) (rx, tx uint64) {
	t.Helper()
	for _, port := range podPorts(e.topology(t), p) {
		if port.Name != "net1" {
			continue
		}
		name := port.Netns.Name
		if name == "" {
			name = filepath.Base(port.Netns.Path)
		}
		ns, err := netns.GetFromPath(filepath.Join(netnsDir, name))
		if err != nil {
			t.Fatalf("namespace of %s net1: %v", p, err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			t.Fatalf("netlink in the namespace of %s: %v", p, err)
		}
		defer h.Close()
		l, err := h.LinkByName("net1")
		if err != nil {
			t.Fatalf("net1 of %s: %v", p, err)
		}
		st := l.Attrs().Statistics
		if st == nil {
			t.Fatalf("net1 of %s: no statistics", p)
		}
		return st.RxPackets, st.TxPackets
	}
	t.Fatalf("%s has no net1 in the agent's topology", p)
	return 0, 0
}

// Drops of b's net1 ingress: the kernel's counter, and per reason.
func testPromDrops(t *testing.T, e *env, a, b pod) {
	sel := fmt.Sprintf(`pod_namespace=%q, pod=%q, interface="net1", direction="ingress"`, b.namespace, b.name)
	drops := fmt.Sprintf(`nsint_port_drops_total{%s}`, sel)
	byReason := fmt.Sprintf(`nsint_port_reported_drops_total{%s}`, sel)
	supported, err := e.promQuery(`nsint_drop_reason_supported{job="nsint-agent"}`)
	if err != nil || len(supported) != 1 {
		t.Fatalf("nsint_drop_reason_supported: %v %v", supported, err)
	}
	reason := "unknown"
	if supported[0].Value == 1 {
		reason = "NO_SOCKET"
	}

	// state returns the port's drops and its drops by reason, once the
	// agent, Prometheus and the per-reason figures all agree.
	state := func() (float64, map[string]float64, error) {
		topo := e.net1Counters(t, b).Ingress.Drops
		total, err := e.promQuery(drops)
		if err != nil {
			return 0, nil, err
		}
		if len(total) != 1 {
			return 0, nil, fmt.Errorf("%s: %v, want one series", drops, total)
		}
		rs, err := e.promQuery(byReason)
		if err != nil {
			return 0, nil, err
		}
		reasons, err := byLabel(rs, "reason")
		if err != nil {
			return 0, nil, err
		}
		sum := 0.0
		for _, v := range reasons {
			sum += v
		}
		if total[0].Value != float64(topo) || sum != total[0].Value {
			return 0, nil, fmt.Errorf("drops: agent %d, Prometheus %v, by reason %v", topo, total[0].Value, reasons)
		}
		return total[0].Value, reasons, nil
	}
	var before float64
	var beforeReasons map[string]float64
	kubee2e.Eventually(t, 30*time.Second, "Prometheus agrees with the agent on the drops of "+b.String()+" net1", func() (err error) {
		before, beforeReasons, err = state()
		return err
	})

	out, _ := e.exec(t, a, "testbox", "send", "udp", b.net1v4, closedPort, "5")
	sent, _ := sentAnswered(t, out)
	ended := time.Now()
	if sent == 0 {
		t.Fatalf("closed-port probe sent nothing: %s", out)
	}
	kubee2e.Eventually(t, 30*time.Second, "Prometheus counts the probe's drops at "+b.String()+" net1", func() error {
		if err := e.scrapedAfter(drops, ended); err != nil {
			return err
		}
		total, reasons, err := state()
		if err != nil {
			return err
		}
		if total != before+float64(sent) {
			return fmt.Errorf("%s = %v, want %v + %d datagrams", drops, total, before, sent)
		}
		for r, v := range reasons {
			want := beforeReasons[r]
			if r == reason {
				want += float64(sent)
			}
			if v != want {
				return fmt.Errorf("drops with reason %s: %v, want %v (before: %v)", r, v, want, beforeReasons)
			}
		}
		return nil
	})
	t.Logf("%s net1: %d closed-port datagrams, exactly %d drops with reason %s in Prometheus", b, sent, sent, reason)
}

// The PromQL of docs/operations.md, evaluated on what the suite produced.
func testPromDocQueries(t *testing.T, e *env, b pod) {
	run := func(q string) []promSample {
		t.Helper()
		s, err := e.promQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	isB := func(s promSample) bool { return s.Metric["pod_namespace"] == b.namespace && s.Metric["pod"] == b.name }

	rate := run(`sum by (node, pod_namespace, pod, direction) (rate(nsint_port_drops_total{interface="net1"}[5m]))`)
	found := false
	for _, s := range rate {
		found = found || (isB(s) && s.Metric["direction"] == "ingress" && s.Value > 0)
	}
	if !found {
		t.Errorf("drop rate of net1 per pod: no rate for %s ingress in %v", b, rate)
	}
	reasons := run(`sum by (node, pod_namespace, pod, reason) (rate(nsint_port_reported_drops_total{interface="net1"}[5m]))`)
	found = false
	for _, s := range reasons {
		found = found || (isB(s) && s.Value > 0 && s.Metric["reason"] != "")
	}
	if !found {
		t.Errorf("drop rate of net1 by reason: nothing for %s in %v", b, reasons)
	}
	top := run(`topk(10, sum by (node, netns, pod_namespace, pod, interface) (rate(nsint_port_bytes_total{interface!=":stack"}[5m])))`)
	if len(top) == 0 || len(top) > 10 {
		t.Errorf("top interfaces by bytes: %d results: %v", len(top), top)
	}
	// The alert's expression: it must evaluate (an empty vector: nothing is a VF here).
	run(`sum by (node, pod_namespace, pod, interface, network, direction) (rate(nsint_port_drops_total{network=~"default/nsint-example-sriov-net"}[5m])) > 1
and
sum by (node, pod_namespace, pod, interface, network, direction) (rate(nsint_port_drops_total{network=~"default/nsint-example-sriov-net"}[5m]))
  > 3 * sum by (node, pod_namespace, pod, interface, network, direction) (rate(nsint_port_drops_total{network=~"default/nsint-example-sriov-net"}[1h] offset 5m))`)

	// Series per port: five per direction, plus one per direction and drop
	// reason seen.
	perPort := run(`count by (node, port, pod_namespace, pod, interface) ({__name__=~"nsint_port_.+"})`)
	withReason := run(fmt.Sprintf(`count(nsint_port_reported_drops_total{pod_namespace=%q, pod=%q, interface="net1"})`, b.namespace, b.name))
	if len(withReason) != 1 {
		t.Fatalf("per-reason series of %s net1: %v", b, withReason)
	}
	found = false
	for _, s := range perPort {
		if isB(s) && s.Metric["interface"] == "net1" {
			found = true
			if want := 10 + withReason[0].Value; s.Value != want {
				t.Errorf("series of %s net1: %v, want 2 × 5 + %v by reason", b, s.Value, withReason[0].Value)
			}
		}
	}
	if !found {
		t.Errorf("series count per port: nothing for %s net1 in %v", b, perPort)
	}
	most := run(`max(count by (node, port) ({__name__=~"nsint_port_.+"}))`)
	if len(most) != 1 || most[0].Value < 10 || math.IsNaN(most[0].Value) {
		t.Errorf("largest series count of a port: %v", most)
	}
}
