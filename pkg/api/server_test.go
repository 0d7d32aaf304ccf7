package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fakeSource struct {
	ready bool
	topo  Topology
}

func (f *fakeSource) Topology() Topology      { return f.topo }
func (f *fakeSource) Namespaces() []Namespace { return nil }
func (f *fakeSource) Ready() (bool, string)   { return f.ready, "discovery running" }

func get(t *testing.T, h http.Handler, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec
}

func TestTopologyCarriesPortsAndLinks(t *testing.T) {
	src := &fakeSource{topo: Topology{SwitchID: 7, Node: "n1", Generation: 3, Ports: []Port{
		{ID: 5, Name: "net1", Ifindex: 3, Netns: Netns{Inode: 99, Name: "pod-a"}, MAC: "02:00:00:00:00:01", IPs: []string{"198.18.1.2"}},
		{ID: 6, Name: LocalStackName, Ifindex: 0, LocalStack: true, Netns: Netns{Inode: 99, Name: "pod-a"}, IPs: []string{}},
	}}}
	reg := prometheus.NewRegistry()
	h := Handler(src, reg)
	rec := get(t, h, "/api/v1/topology")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["switchId"].(float64) != 7 || doc["node"] != "n1" {
		t.Fatalf("doc %v", doc)
	}
	ports := doc["ports"].([]any)
	p0 := ports[0].(map[string]any)
	if p0["id"].(float64) != 5 || p0["name"] != "net1" || p0["ifindex"].(float64) != 3 ||
		p0["netns"].(map[string]any)["inode"].(float64) != 99 {
		t.Fatalf("port %v", p0)
	}
	if _, ok := p0["pod"]; ok {
		t.Fatal("unknown pod must be omitted")
	}
	p1 := ports[1].(map[string]any)
	if p1["localStack"] != true || p1["ifindex"].(float64) != 0 {
		t.Fatalf("local stack port %v", p1)
	}
	links := doc["links"].([]any)
	if len(links) != 2 || links[0].(map[string]any)["netns"] != "pod-a" {
		t.Fatalf("links %v", links)
	}
}

func TestReadiness(t *testing.T) {
	src := &fakeSource{}
	h := Handler(src, prometheus.NewRegistry())
	if rec := get(t, h, "/readyz"); rec.Code != 503 || !strings.Contains(rec.Body.String(), "discovery running") {
		t.Fatalf("not ready: %d %q", rec.Code, rec.Body.String())
	}
	src.ready = true
	if rec := get(t, h, "/readyz"); rec.Code != 200 {
		t.Fatalf("ready: %d", rec.Code)
	}
	if rec := get(t, h, "/healthz"); rec.Code != 200 {
		t.Fatalf("healthz: %d", rec.Code)
	}
	if rec := get(t, h, "/metrics"); rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
}
