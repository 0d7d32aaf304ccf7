package web

import (
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/netif"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// outDir is e2e/out at the root of the checkout (git-ignored), created on
// demand.
func outDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return t.TempDir()
		}
		dir = parent
	}
	out := filepath.Join(dir, "e2e", "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	return out
}

func pagePorts() (netA, stackA, eth0A, netB *topology.Port) {
	podA := &topology.Pod{Namespace: "default", Name: "pod-a"}
	podB := &topology.Pod{Namespace: "team-b", Name: "pod-b"}
	mk := func(id uint16, name string, pod *topology.Pod, network string, inode netif.Netns) *topology.Port {
		return &topology.Port{Port: api.Port{ID: id, Name: name, Pod: pod, Network: network,
			Netns: topology.Netns{Inode: inode}, LocalStack: name == ":stack"}, Node: "node-a", SwitchID: 7}
	}
	return mk(5, "net1", podA, "default/macvlan-net", 1), mk(6, ":stack", podA, "", 1),
		mk(7, "eth0", podA, "default/pod-net", 1), mk(8, "net1", podB, "team-b/sriov-net", 2)
}

// fillTable adds: pod-a net1 ⇄ stack (one flow each way), pod-a eth0 → stack,
// and a drop on pod-b net1.
func fillTable(tb *flowtable.Table) {
	netA, stackA, eth0A, netB := pagePorts()
	now := time.Now().UnixNano()
	obs := func(src, dst string, sp, dp uint16, pkts, bytes uint64, lat uint32) *flowtable.Observation {
		return &flowtable.Observation{TimeNs: now, Packets: pkts, Bytes: bytes, HasLatency: lat > 0, LatencyNs: lat,
			Tuple: flowkey.Tuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), SrcPort: sp, DstPort: dp,
				Proto: flowkey.ProtoTCP, EtherType: flowkey.EtherTypeIPv4}}
	}
	tb.Add(obs("198.18.2.3", "198.18.1.2", 40000, 443, 12, 9000, 800), netA, stackA)
	tb.Add(obs("198.18.1.2", "198.18.2.3", 443, 40000, 10, 150000, 1500), stackA, netA)
	tb.Add(obs("198.18.9.1", "198.18.1.2", 5353, 53, 3, 300, 0), eth0A, stackA)
	d := obs("198.18.2.3", "198.18.2.9", 5555, 22, 0, 0, 0)
	d.Drops, d.DropReason = 1, 80
	tb.Add(d, netB, nil)
}

// TestPageInChromium loads the page in headless Chromium, filters it by
// net1 through the form, checks the rows and saves a screenshot.
func TestPageInChromium(t *testing.T) {
	wd := startChromium(t)
	table := flowtable.New(100)
	fillTable(table)
	res, err := topology.New(topology.Config{AgentPort: 4048})
	if err != nil {
		t.Fatal(err)
	}
	agents := func() []AgentReports {
		return []AgentReports{
			{Source: "198.18.0.1", Node: "node-a", SwitchID: 7, Reports: 40, LostReports: 3},
			{Source: "198.18.0.2", SwitchID: 8, Reports: 9, LostReports: 1}, // topology not known yet
			{Source: "198.18.0.3", Node: "node-b", SwitchID: 9, Reports: 12, SequenceResets: 1},
		}
	}
	srv := httptest.NewServer(New(Sources{Table: table, Resolver: res, Stats: func() any { return nil }, Agents: agents}))
	t.Cleanup(srv.Close)

	wd.navigate(srv.URL + "/")
	waitLoaded := func(want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			var got string
			wd.script(`return document.body.dataset.loaded || ""`, &got)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("page never loaded %q (last %q)", want, got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLoaded("all")
	var all int
	wd.script(`return document.querySelectorAll("#flows tbody tr").length`, &all)
	if all != 7 {
		t.Errorf("unfiltered page shows %d flow rows, want 7", all)
	}

	type lossLine struct {
		Agent string `json:"agent"`
		Text  string `json:"text"`
	}
	losses := func() (lines []lossLine, shown bool) {
		t.Helper()
		wd.script(`return Array.from(document.querySelectorAll("#losses p")).map(p => ({
			agent: p.dataset.agent, text: p.textContent}))`, &lines)
		wd.script(`const d = document.getElementById("losses"); return !d.hidden && d.offsetHeight > 0`, &shown)
		return lines, shown
	}
	lines, shown := losses()
	want := []lossLine{
		{"198.18.0.1", "node-a (198.18.0.1): 3 reports lost — totals may be short"},
		{"198.18.0.2", "198.18.0.2: 1 report lost — totals may be short"},
	}
	if !shown || len(lines) != len(want) || lines[0] != want[0] || lines[1] != want[1] {
		t.Errorf("loss lines %+v (visible %v), want %+v visible", lines, shown, want)
	}

	wd.typeInto("#iface", "net1")
	wd.click("#apply")
	waitLoaded("iface=net1")
	var rows []struct {
		Interface string `json:"interface"`
		Direction string `json:"direction"`
		Pod       string `json:"pod"`
		Drop      bool   `json:"drop"`
	}
	wd.script(`return Array.from(document.querySelectorAll("#flows tbody tr")).map(tr => ({
		interface: tr.dataset.interface, direction: tr.dataset.direction, pod: tr.dataset.pod,
		drop: tr.classList.contains("drop")}))`, &rows)
	if len(rows) != 3 {
		t.Fatalf("net1 filter shows %d rows, want 3: %+v", len(rows), rows)
	}
	drops := 0
	for _, r := range rows {
		if r.Interface != "net1" {
			t.Errorf("net1 filter shows a row of %q", r.Interface)
		}
		if r.Drop {
			drops++
			if r.Pod != "team-b/pod-b" {
				t.Errorf("drop row of pod %q, want team-b/pod-b", r.Pod)
			}
		}
	}
	if drops != 1 {
		t.Errorf("%d drop rows, want 1", drops)
	}
	var summary []string
	wd.script(`return Array.from(document.querySelectorAll("#summary tbody tr")).map(tr => tr.dataset.interface)`, &summary)
	if len(summary) != 2 || summary[0] != "net1" || summary[1] != "net1" {
		t.Errorf("summary rows %v, want two net1 interfaces", summary)
	}
	var url string
	wd.script(`return location.search`, &url)
	if url != "?iface=net1" {
		t.Errorf("location %q, want ?iface=net1 (the filter is shareable)", url)
	}
	if lines, shown := losses(); !shown || len(lines) != 2 {
		t.Errorf("loss lines with iface=net1: %+v (visible %v), want both agents' (any node's totals may be short)", lines, shown)
	}
	shot := filepath.Join(outDir(t), "collector-page-net1.png")
	wd.screenshot(shot)
	t.Logf("screenshot: %s", shot)

	// node-b's agent lost nothing: no line, nothing shown.
	wd.typeInto("#node", "node-b")
	wd.click("#apply")
	waitLoaded("iface=net1&node=node-b")
	if lines, shown := losses(); shown || len(lines) != 0 {
		t.Errorf("loss lines for node-b: %+v (visible %v), want none", lines, shown)
	}
}
