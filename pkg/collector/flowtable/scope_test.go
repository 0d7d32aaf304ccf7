package flowtable

import (
	"slices"
	"testing"

	"github.com/nsint/nsint/pkg/api"
	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/topology"
)

// scopedTable holds rows of pods in namespaces a and b and of a node-level
// interface: every row's packets are distinct, and namespace b's and the
// node's rows are the largest, so that a limit applied before the scope
// would show a caller of namespace a fewer rows than it may see.
func scopedTable() *Table {
	podPort := func(id uint16, ns string) *topology.Port {
		return &topology.Port{Port: api.Port{ID: id, Name: "net1", Pod: &topology.Pod{Namespace: ns, Name: "p" + ns}},
			SwitchID: 1, Node: "n"}
	}
	tb := New(100)
	add := func(p *topology.Port, srcPort uint16, packets uint64) {
		o := obs(int64(srcPort), srcPort)
		o.Packets, o.Bytes = packets, packets*100
		tb.Add(o, p, nil)
	}
	a, b, node := podPort(1, "a"), podPort(2, "b"), port(3, "eth0")
	add(a, 1001, 1)
	add(a, 1002, 2)
	add(a, 1003, 3)
	add(b, 2001, 10)
	add(b, 2002, 20)
	add(node, 3001, 100)
	return tb
}

func TestScope(t *testing.T) {
	tb := scopedTable()
	for _, tc := range []struct {
		name    string
		scope   access.Scope
		want    []uint16 // source ports, most packets first
		packets uint64   // summary total
	}{
		{"a", access.Namespaces(false, "a"), []uint16{1003, 1002, 1001}, 6},
		{"a,b", access.Namespaces(false, "a", "b"), []uint16{2002, 2001, 1003, 1002, 1001}, 36},
		{"nodes", access.Namespaces(true), []uint16{3001}, 100},
		{"none", access.None, nil, 0},
		{"all", access.All, []uint16{3001, 2002, 2001, 1003, 1002, 1001}, 136},
		{"nil", nil, []uint16{3001, 2002, 2001, 1003, 1002, 1001}, 136},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := MatchAll()
			f.Scope, f.Sort = tc.scope, SortPackets
			rows, matched := tb.Query(f)
			var got []uint16
			for _, r := range rows {
				got = append(got, r.SrcPort)
			}
			if !slices.Equal(got, tc.want) || matched != len(tc.want) {
				t.Errorf("rows %v (matched %d), want %v", got, matched, tc.want)
			}
			// The top 2 are the caller's top 2, the limit applies after the scope.
			f.Limit = 2
			rows, matched = tb.Query(f)
			got = nil
			for _, r := range rows {
				got = append(got, r.SrcPort)
			}
			wantTop := tc.want[:min(2, len(tc.want))]
			if !slices.Equal(got, wantTop) || matched != len(tc.want) {
				t.Errorf("limit 2: rows %v (matched %d), want %v (matched %d)", got, matched, wantTop, len(tc.want))
			}
			var packets uint64
			var flows int
			for _, s := range tb.Summary(f) {
				packets += s.Ingress.Packets + s.Egress.Packets
				flows += s.Flows
				if !Visible(tc.scope, &topology.Port{Port: api.Port{Pod: s.Pod}}) {
					t.Errorf("summary has an interface out of scope: %+v", s.PortRef)
				}
			}
			if packets != tc.packets || flows != len(tc.want) {
				t.Errorf("summary: %d packets in %d flows, want %d in %d", packets, flows, tc.packets, len(tc.want))
			}
		})
	}
}
