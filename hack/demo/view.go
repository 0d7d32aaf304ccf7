package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/nsint/nsint/internal/fakenode"
	"github.com/nsint/nsint/pkg/collector/client"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/web"
)

// rowsPerTable keeps the printed view short; the page and
// `nsint-collector flows` show every row.
const rowsPerTable = 5

// demoInterfaces are the pod interfaces the view shows, net1 first.
var demoInterfaces = []string{"net1", "eth0"}

// showView waits until the collector has rows for net1 and eth0 of every pod
// (at least a few seconds, so that counters have grown), then prints a
// summary per pod and interface and the collector's flow table of each.
func showView(ctx context.Context, w io.Writer, server string, pods []*fakenode.Pod) error {
	hc := &http.Client{Timeout: 5 * time.Second}
	earliest, latest := time.Now().Add(5*time.Second), time.Now().Add(30*time.Second)
	var rows map[string][]flowtable.Row // by interface
	var names map[string]string
	for {
		var err error
		rows, names, err = fetchRows(ctx, hc, server)
		if err == nil && time.Now().After(earliest) && complete(rows, pods) {
			break
		}
		if time.Now().After(latest) {
			if err == nil {
				err = fmt.Errorf("the collector has no net1 and eth0 rows for every pod after 30s")
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil // stopped before the view was ready
		case <-time.After(500 * time.Millisecond):
		}
	}
	fmt.Fprintf(w, "\nThe collector's view, net1 next to eth0 for each pod (reports/packets in and out):\n\n")
	if err := writeSummary(ctx, w, hc, server, pods); err != nil {
		return err
	}
	now := time.Now()
	for _, p := range pods {
		for _, iface := range demoInterfaces {
			mine := podRows(rows[iface], p)
			// Drops first (they carry no packets), then the busiest flows.
			slices.SortStableFunc(mine, func(a, b flowtable.Row) int {
				return cmp.Or(cmp.Compare(b.Drops, a.Drops), cmp.Compare(b.Packets, a.Packets))
			})
			shown := mine[:min(len(mine), rowsPerTable)]
			fmt.Fprintf(w, "\n%s %s (%d of %d rows):\n", p.NS.Name, iface, len(shown), len(mine))
			resp := &web.FlowsResponse{Flows: shown, Matched: len(shown), DropReasonNames: names}
			if err := client.WriteTable(w, resp, now); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(w, "\nEvery row: %s/?iface=net1  (the page; eth0: ?iface=eth0)\n", server)
	fmt.Fprintf(w, "      or: bin/nsint-collector flows --server %s --iface net1\n", server)
	return nil
}

// fetchRows reads the collector's rows of each demo interface.
func fetchRows(ctx context.Context, hc *http.Client, server string) (map[string][]flowtable.Row, map[string]string, error) {
	rows := map[string][]flowtable.Row{}
	names := map[string]string{}
	for _, iface := range demoInterfaces {
		resp, err := client.Flows(ctx, hc, server, url.Values{"iface": {iface}, "limit": {"100000"}})
		if err != nil {
			return nil, nil, err
		}
		rows[iface] = resp.Flows
		for k, v := range resp.DropReasonNames {
			names[k] = v
		}
	}
	return rows, names, nil
}

// complete reports whether every pod has rows of every demo interface.
func complete(rows map[string][]flowtable.Row, pods []*fakenode.Pod) bool {
	for _, p := range pods {
		for _, iface := range demoInterfaces {
			if len(podRows(rows[iface], p)) == 0 {
				return false
			}
		}
	}
	return true
}

// podRows are the rows of p's namespace. Without Kubernetes a row has no pod,
// only its namespace file's name.
func podRows(rows []flowtable.Row, p *fakenode.Pod) []flowtable.Row {
	var out []flowtable.Row
	for _, r := range rows {
		if r.Netns.Name == p.NS.Name {
			out = append(out, r)
		}
	}
	return out
}

// writeSummary prints /api/v1/summary for the demo interfaces, one line per
// pod and interface.
func writeSummary(ctx context.Context, w io.Writer, hc *http.Client, server string, pods []*fakenode.Pod) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tINTERFACE\tPORT\tFLOWS\tIN (reports/packets)\tOUT (reports/packets)\tDROPS")
	for _, p := range pods {
		for _, iface := range demoInterfaces {
			s, err := summary(ctx, hc, server, iface, p)
			if err != nil {
				return err
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d/%d\t%d/%d\t%d\n", "netns:"+p.NS.Name, iface, s.PortID, s.Flows,
				s.Ingress.Reports, s.Ingress.Packets, s.Egress.Reports, s.Egress.Packets, s.Ingress.Drops+s.Egress.Drops)
		}
	}
	return tw.Flush()
}

func summary(ctx context.Context, hc *http.Client, server, iface string, p *fakenode.Pod) (flowtable.InterfaceSummary, error) {
	var out web.SummaryResponse
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+"/api/v1/summary?iface="+url.QueryEscape(iface), nil)
	if err != nil {
		return flowtable.InterfaceSummary{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return flowtable.InterfaceSummary{}, fmt.Errorf("summary from %s: %w", server, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return flowtable.InterfaceSummary{}, fmt.Errorf("summary from %s: %w", server, err)
	}
	for _, s := range out.Interfaces {
		if s.Netns.Name == p.NS.Name {
			return s, nil
		}
	}
	return flowtable.InterfaceSummary{PortRef: flowtable.PortRef{Interface: iface}}, nil
}
