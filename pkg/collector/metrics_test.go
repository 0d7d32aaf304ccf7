package collector

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/nsint/nsint/pkg/intreport"
)

func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMetricsDropRemovedPorts checks the per-interface series carry the
// interface, pod and node, and disappear when their port leaves the
// topology (label sets stay bounded by the live ports).
func TestMetricsDropRemovedPorts(t *testing.T) {
	doc := twoPodTopology(nodeA)
	agent := newFakeAgent(t, doc)
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	send(t, addrs[0],
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA, IngressPort: 5, EgressPort: 6, Inner: frame}),
		encode(intreport.V20, intreport.Report{Kind: intreport.Drop, Seq: 2, SwitchID: nodeA, IngressPort: 8, DropReason: 71, Inner: frame}),
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 9, SwitchID: nodeA, IngressPort: 5, Inner: frame}))
	eventually(t, "reports", func() bool { s := c.Stats(); return s.Reports == 3 && s.Pending == 0 })
	// Numbers 3 to 8 never come: lost once the late window's timeout passed.
	eventually(t, "the gap counted lost", func() bool {
		return strings.Contains(scrape(t, base), "\nnsint_collector_lost_reports_total 6\n")
	})
	m := scrape(t, base)
	for _, want := range []string{
		`nsint_collector_interface_reports_total{direction="ingress",interface="net1",netns="pod-a",network="default/macvlan-net",node="node-a",pod="pod-a",pod_namespace="default",port="5"} 2`,
		`nsint_collector_interface_drops_total{direction="ingress",interface="net1",netns="pod-b",network="team-b/sriov-net",node="node-a",pod="pod-b",pod_namespace="team-b",port="8",reason="queue full",reason_code="71"} 1`,
		`nsint_collector_flows 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	doc.Generation = 2
	doc.Ports = doc.Ports[:3] // pod-b's net1 is gone
	agent.set(doc)
	// An unknown port makes the collector ask again.
	send(t, addrs[0], encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 10, SwitchID: nodeA, IngressPort: 99, Inner: frame}))
	eventually(t, "pod-b's series to go", func() bool { return !strings.Contains(scrape(t, base), `pod="pod-b"`) })
	if !strings.Contains(scrape(t, base), `pod="pod-a"`) {
		t.Error("pod-a's series went too")
	}
}

// Without Kubernetes names, every pod's eth0 looks alike but for its port:
// the metrics page must still serve (no duplicate series).
func TestMetricsSameNameWithoutPods(t *testing.T) {
	doc := twoPodTopology(nodeA)
	for i := range doc.Ports {
		doc.Ports[i].Pod, doc.Ports[i].Network, doc.Ports[i].Netns.Name = nil, "", ""
	}
	agent := newFakeAgent(t, doc)
	c, addrs, base := startCollector(t, testConfig(agent.port()), false)
	send(t, addrs[0],
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 1, SwitchID: nodeA, IngressPort: 5, Inner: frame}),
		encode(intreport.V20, intreport.Report{Kind: intreport.Flow, Seq: 2, SwitchID: nodeA, IngressPort: 8, Inner: frame}))
	eventually(t, "reports", func() bool { s := c.Stats(); return s.Reports == 2 && s.Pending == 0 })
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d\n%s", resp.StatusCode, body)
	}
	for _, port := range []string{`port="5"`, `port="8"`} {
		if !strings.Contains(string(body), port) {
			t.Errorf("metrics lack a series with %s", port)
		}
	}
}
