package api

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source answers the API from the agent's state. Implementations must be safe
// for concurrent use and return quickly.
type Source interface {
	Topology() Topology
	Namespaces() []Namespace
	// Ready reports whether the initial discovery and attachment are done
	// and the agent is not stopping, and if not, why: what it still waits
	// for, or that it is stopping (after a failure: which component failed
	// and its error). /readyz answers 503 with that reason.
	Ready() (bool, string)
}

// Options change what Handler serves.
type Options struct {
	// QuietHealth makes /readyz answer only "not ready", without the
	// reason: when the API is open only to authorized callers, the kubelet
	// probes /healthz and /readyz unauthenticated and they reveal nothing.
	QuietHealth bool
	// NotReady, when set, is told the reason of each "not ready" answer
	// (for the log).
	NotReady func(reason string)
}

// Handler returns the agent's HTTP handler. gatherer serves /metrics.
func Handler(src Source, gatherer prometheus.Gatherer) http.Handler {
	return HandlerWith(src, gatherer, Options{})
}

// HandlerWith is Handler with opts.
func HandlerWith(src Source, gatherer prometheus.Gatherer, opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/topology", func(w http.ResponseWriter, r *http.Request) {
		t := src.Topology()
		if t.Ports == nil {
			t.Ports = []Port{}
		}
		t.Links = make([]Link, 0, len(t.Ports))
		for _, p := range t.Ports {
			name := p.Netns.Name
			if name == "" && p.Netns.Host {
				name = "host"
			}
			t.Links = append(t.Links, Link{Port: p.ID, Name: p.Name, Netns: name, MAC: p.MAC, IPs: p.IPs})
		}
		writeJSON(w, t)
	})
	mux.HandleFunc("GET /api/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		ns := src.Namespaces()
		if ns == nil {
			ns = []Namespace{}
		}
		writeJSON(w, map[string]any{"namespaces": ns})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if ok, why := src.Ready(); !ok {
			if opts.NotReady != nil {
				opts.NotReady(why)
			}
			if opts.QuietHealth {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		// The header is gone already; the client sees a truncated body.
		return
	}
}
