package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// TestViewsFollowScope serves the views behind a gate that puts the scope a
// test header names into the request, as the authenticating gate does, and
// checks that every view lists only what that scope may see.
func TestViewsFollowScope(t *testing.T) {
	table := flowtable.New(100)
	fillTable(table) // node-a: pods default/pod-a and team-b/pod-b
	host := &topology.Port{Port: api.Port{ID: 9, Name: "eth0"}, Node: "node-b", SwitchID: 8}
	table.Add(&flowtable.Observation{TimeNs: time.Now().UnixNano(), Packets: 5, Bytes: 500}, host, nil)
	res, err := topology.New(topology.Config{AgentPort: 4048})
	if err != nil {
		t.Fatal(err)
	}
	netA, stackA, eth0A, netB := pagePorts()
	doc := topology.Document{SwitchID: 7, Node: "node-a", Generation: 1}
	for _, p := range []*topology.Port{netA, stackA, eth0A, netB} {
		doc.Ports = append(doc.Ports, p.Port)
	}
	if err := res.Install("http://198.18.0.1:4048", doc); err != nil {
		t.Fatal(err)
	}
	if err := res.Install("http://198.18.0.3:4048", topology.Document{SwitchID: 8, Node: "node-b", Generation: 1,
		Ports: []api.Port{host.Port}}); err != nil {
		t.Fatal(err)
	}
	agents := func() []AgentReports {
		return []AgentReports{{Source: "198.18.0.1", Node: "node-a"}, {Source: "198.18.0.3", Node: "node-b"}}
	}
	served := func() []ServedAgent {
		return []ServedAgent{{Source: "198.18.0.1", Node: "node-a"}, {Source: "198.18.0.3", Node: "node-b"}}
	}
	scopes := map[string]access.Scope{
		"default": access.Namespaces(false, "default"),
		"team-b":  access.Namespaces(false, "team-b"),
		"nodes":   access.Namespaces(true),
		"none":    access.None,
	}
	h := New(Sources{Table: table, Resolver: res, Stats: func() any { return nil }, Agents: agents, Served: served,
		Rejected: func() uint64 { return 4 }})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name := r.Header.Get("X-Test-Scope"); name != "" {
			r = r.WithContext(access.WithScope(r.Context(), scopes[name]))
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	get := func(scope, path string, v any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if scope != "" {
			req.Header.Set("X-Test-Scope", scope)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s as %q: status %d", path, scope, resp.StatusCode)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	who := func(p *topology.Pod, node string) string {
		if p == nil {
			return "node:" + node
		}
		return p.Namespace
	}
	for _, tc := range []struct {
		scope   string
		rows    []string // owners of the flow rows, sorted
		packets uint64   // summary total
		ports   []string
		agents  []string
	}{
		{"", []string{"default", "default", "default", "default", "default", "default", "node:node-b", "team-b"}, 12*2 + 10*2 + 3*2 + 5,
			[]string{"default", "default", "default", "node:node-b", "team-b"}, []string{"node-a", "node-b"}},
		{"default", []string{"default", "default", "default", "default", "default", "default"}, 12*2 + 10*2 + 3*2,
			[]string{"default", "default", "default"}, []string{"node-a"}},
		{"team-b", []string{"team-b"}, 0, []string{"team-b"}, []string{"node-a"}},
		{"nodes", []string{"node:node-b"}, 5, []string{"node:node-b"}, []string{"node-a", "node-b"}},
		{"none", nil, 0, nil, nil},
	} {
		t.Run("scope="+tc.scope, func(t *testing.T) {
			var flows FlowsResponse
			get(tc.scope, "/api/v1/flows", &flows)
			var rows []string
			for _, r := range flows.Flows {
				rows = append(rows, who(r.Pod, r.Node))
			}
			slices.Sort(rows)
			if !slices.Equal(rows, tc.rows) || flows.Matched != len(tc.rows) {
				t.Errorf("flows of %v (matched %d), want %v", rows, flows.Matched, tc.rows)
			}
			var fa []string
			for _, a := range flows.Agents {
				fa = append(fa, a.Node)
			}
			if !slices.Equal(fa, tc.agents) {
				t.Errorf("flows' agents %v, want %v", fa, tc.agents)
			}

			var sum SummaryResponse
			get(tc.scope, "/api/v1/summary", &sum)
			var packets uint64
			for _, s := range sum.Interfaces {
				packets += s.Ingress.Packets + s.Egress.Packets
			}
			var sa []string
			for _, a := range sum.Agents {
				sa = append(sa, a.Node)
			}
			if packets != tc.packets || !slices.Equal(sa, tc.agents) || sum.RejectedReports != 4 {
				t.Errorf("summary: %d packets, agents %v, rejected %d; want %d, %v, 4", packets, sa, sum.RejectedReports,
					tc.packets, tc.agents)
			}

			var ports PortsResponse
			get(tc.scope, "/api/v1/ports", &ports)
			var ps []string
			for _, p := range ports.Ports {
				ps = append(ps, who(p.Pod, p.Node))
			}
			slices.Sort(ps)
			if !slices.Equal(ps, tc.ports) {
				t.Errorf("ports of %v, want %v", ps, tc.ports)
			}

			var st struct{ Agents []topology.AgentStatus }
			get(tc.scope, "/api/v1/agents", &st)
			var as []string
			for _, a := range st.Agents {
				as = append(as, a.Node)
			}
			slices.Sort(as)
			if !slices.Equal(as, tc.agents) {
				t.Errorf("agents %v, want %v", as, tc.agents)
			}
			if _, named := flows.DropReasonNames["80"]; named != slices.Contains(tc.rows, "team-b") {
				t.Errorf("drop reason names %v: the drop is on a team-b row", flows.DropReasonNames)
			}
		})
	}
}
