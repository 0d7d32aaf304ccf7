package web

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"time"

	"github.com/nsint/nsint/pkg/collector/access"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/dropreason"
)

//go:embed static
var static embed.FS

// Sources are what the views read.
type Sources struct {
	Table    *flowtable.Table
	Resolver *topology.Resolver
	Stats    func() any            // served at /api/v1/stats
	Agents   func() []AgentReports // reports received and lost per agent; nil: none
	Served   func() []ServedAgent  // agents (source, switch ID) reports came from; nil: none
	Metrics  http.Handler          // served at /metrics; nil: 404
	// Rejected counts the reports dropped because their source is no known
	// agent; nil: none.
	Rejected func() uint64
}

// FlowsResponse is the body of GET /api/v1/flows.
type FlowsResponse struct {
	Flows []flowtable.Row `json:"flows"`
	// Matched counts the rows the filter selected before the limit.
	Matched int `json:"matched"`
	// DropReasonNames names the INT drop reason codes used in Flows.
	DropReasonNames map[string]string `json:"dropReasonNames"`
	// Agents are the agents whose reports this collector received (those
	// of the node the filter names, when it names one): with sharded
	// collector replicas, the share of this replica, whose flows are all
	// that Flows can hold. Never null.
	Agents []ServedAgent `json:"agents"`
}

// ServedAgent is one agent a collector received reports from: its source
// address and switch ID, and when its first and latest reports came. An
// agent that moved to another replica stays listed with its last report
// time.
type ServedAgent struct {
	Source      string    `json:"source"`
	SwitchID    uint32    `json:"switchId"`
	Node        string    `json:"node"`    // from its topology; "" while unknown
	Reports     uint64    `json:"reports"` // datagrams received from it
	FirstReport time.Time `json:"firstReport"`
	LastReport  time.Time `json:"lastReport"`
}

// SummaryResponse is the body of GET /api/v1/summary.
type SummaryResponse struct {
	Interfaces      []flowtable.InterfaceSummary `json:"interfaces"`
	DropReasonNames map[string]string            `json:"dropReasonNames"`
	// Agents are the agents reporting to the collector (those of the node
	// the filter names, when it names one), with their report loss.
	Agents []AgentReports `json:"agents"`
	// RejectedReports counts the reports the collector dropped because
	// their source address is no known agent (never in any figure).
	RejectedReports uint64 `json:"rejectedReports"`
}

// AgentReports is one agent — one source address of reports — with the
// reports received from it and those its sequence numbers show lost. A lost
// report's packets, bytes and drops are missing from every figure: when
// LostReports is not 0, the totals of the agent's node may be short.
type AgentReports struct {
	Source   string `json:"source"`   // the reports' source address
	Node     string `json:"node"`     // the agent's node from its topology; "" while unknown
	SwitchID uint32 `json:"switchId"` // from its latest report
	// Reports counts the sequence numbers received (one per datagram: a v0.5
	// report, or a v2.0 report group; nsint sends one report per group).
	Reports     uint64 `json:"reports"`
	LostReports uint64 `json:"lostReports"` // sequence numbers skipped
	// SequenceResets counts the times the agent started numbering again
	// (a restart) or jumped back: resynchronised, not counted as loss.
	SequenceResets uint64 `json:"sequenceResets"`
}

// Name is how views name the agent: "node (source)", or the source address
// while its node is unknown.
func (a *AgentReports) Name() string {
	if a.Node == "" {
		return a.Source
	}
	return a.Node + " (" + a.Source + ")"
}

// PortsResponse is the body of GET /api/v1/ports.
type PortsResponse struct {
	Ports []*topology.Port `json:"ports"`
}

// ErrorResponse is the body of every 4xx answer.
type ErrorResponse struct {
	Error string `json:"error"`
	Param string `json:"param,omitempty"`
	Value string `json:"value,omitempty"`
}

// New returns the handler of every view.
func New(src Sources) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/flows", func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			writeError(w, err)
			return
		}
		f.Scope = access.FromContext(r.Context())
		rows, matched := src.Table.Query(f)
		nodes := visibleNodes(f.Scope, src.Resolver)
		resp := FlowsResponse{Flows: rows, Matched: matched, DropReasonNames: map[string]string{},
			Agents: ofNode(src.Served, f.Node, nodes, func(a *ServedAgent) string { return a.Node })}
		for i := range rows {
			nameReasons(resp.DropReasonNames, rows[i].DropReasons)
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("GET /api/v1/summary", func(w http.ResponseWriter, r *http.Request) {
		f, err := ParseFilter(r.URL.Query())
		if err != nil {
			writeError(w, err)
			return
		}
		f.Scope = access.FromContext(r.Context())
		s := src.Table.Summary(f)
		nodes := visibleNodes(f.Scope, src.Resolver)
		resp := SummaryResponse{Interfaces: s, DropReasonNames: map[string]string{},
			Agents: ofNode(src.Agents, f.Node, nodes, func(a *AgentReports) string { return a.Node })}
		if src.Rejected != nil {
			resp.RejectedReports = src.Rejected()
		}
		for i := range s {
			nameReasons(resp.DropReasonNames, s[i].Ingress.DropReasons)
			nameReasons(resp.DropReasonNames, s[i].Egress.DropReasons)
		}
		writeJSON(w, resp)
	})
	mux.HandleFunc("GET /api/v1/ports", func(w http.ResponseWriter, r *http.Request) {
		scope := access.FromContext(r.Context())
		ports := []*topology.Port{}
		for _, p := range src.Resolver.Ports() {
			if flowtable.Visible(scope, p) {
				ports = append(ports, p)
			}
		}
		writeJSON(w, PortsResponse{Ports: ports})
	})
	mux.HandleFunc("GET /api/v1/agents", func(w http.ResponseWriter, r *http.Request) {
		nodes := visibleNodes(access.FromContext(r.Context()), src.Resolver)
		agents := []topology.AgentStatus{}
		for _, a := range src.Resolver.Agents() {
			if nodes(a.Node) {
				agents = append(agents, a)
			}
		}
		writeJSON(w, map[string]any{"agents": agents})
	})
	mux.HandleFunc("GET /api/v1/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, src.Stats())
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	if src.Metrics != nil {
		mux.Handle("GET /metrics", src.Metrics)
	}
	assets, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(assets))
	return mux
}

// ofNode returns the entries of list whose node (nodeOf) is node ("": all)
// and visible, never nil.
func ofNode[T any](list func() []T, node string, visible func(string) bool, nodeOf func(*T) string) []T {
	out := []T{}
	if list == nil {
		return out
	}
	for _, a := range list() {
		if n := nodeOf(&a); (node == "" || n == node) && visible(n) {
			out = append(out, a)
		}
	}
	return out
}

// visibleNodes returns which agents (by node) a caller with scope s may see:
// every one when s has the nodes, else those of the nodes where a pod of a
// namespace of s has a port (an agent whose node is not known yet is no
// one's but the nodes').
func visibleNodes(s access.Scope, r *topology.Resolver) func(node string) bool {
	if s.Nodes() {
		return func(string) bool { return true }
	}
	set := map[string]bool{}
	if r != nil {
		for _, p := range r.Ports() {
			if p.Pod != nil && p.Node != "" && s.Namespace(p.Pod.Namespace) {
				set[p.Node] = true
			}
		}
	}
	return func(node string) bool { return set[node] }
}

func nameReasons(dst map[string]string, reasons map[string]uint64) {
	for code := range reasons {
		if _, ok := dst[code]; ok {
			continue
		}
		n, _ := strconv.Atoi(code)
		name := dropreason.CodeName(uint8(n))
		if name == "" {
			name = "code " + code
		}
		dst[code] = name
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	resp := ErrorResponse{Error: err.Error()}
	var pe *ParamError
	if errors.As(err, &pe) {
		resp.Param, resp.Value = pe.Param, pe.Value
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(resp)
}
