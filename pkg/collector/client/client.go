package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/web"
)

// Flows fetches GET <server>/api/v1/flows with params.
func Flows(ctx context.Context, c *http.Client, server string, params url.Values) (*web.FlowsResponse, error) {
	var out web.FlowsResponse
	if err := get(ctx, c, server, "flows", params, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Summary fetches GET <server>/api/v1/summary with params (the flows
// parameters are accepted; those that select flows rather than interfaces
// are ignored by the server).
func Summary(ctx context.Context, c *http.Client, server string, params url.Values) (*web.SummaryResponse, error) {
	var out web.SummaryResponse
	if err := get(ctx, c, server, "summary", params, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// get fetches <server>/api/v1/<view> into out.
func get(ctx context.Context, c *http.Client, server, view string, params url.Values, out any) error {
	u := strings.TrimRight(server, "/") + "/api/v1/" + view
	if len(params) > 0 {
		u += "?" + params.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%s from %s: %w", view, server, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s from %s: %w", view, server, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s from %s: %w", view, server, err)
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s from %s: not authenticated (401): give a valid token with --token or --kubeconfig", view, server)
	case http.StatusForbidden:
		return fmt.Errorf("%s from %s: forbidden (403): the token's user may not read this view", view, server)
	}
	if resp.StatusCode != http.StatusOK {
		var e web.ErrorResponse
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s from %s: %s", view, server, e.Error)
		}
		return fmt.Errorf("%s from %s: http status %d", view, server, resp.StatusCode)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s from %s: decode: %w", view, server, err)
	}
	return nil
}

// WriteTable prints rows as an aligned table, one line per row.
func WriteTable(w io.Writer, resp *web.FlowsResponse, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPOD\tINTERFACE\tDIR\tNETWORK\tPROTO\tSOURCE\tDESTINATION\tPACKETS\tBYTES\tREPORTS\tDROPS\tLATENCY(min/avg/max)\tLAST SEEN")
	for i := range resp.Flows {
		r := &resp.Flows[i]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\t%s\n",
			dash(r.Node), pod(r), r.Interface, r.Direction, dash(r.Network), dash(r.Proto),
			endpoint(r.Src, r.SrcPort, r.Proto), endpoint(r.Dst, r.DstPort, r.Proto),
			r.Packets, humanBytes(r.Bytes), r.Reports, drops(r, resp.DropReasonNames), latency(r),
			ago(now, r.LastSeen))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.Matched > len(resp.Flows) {
		_, err := fmt.Fprintf(w, "(%d of %d rows; raise --limit for more)\n", len(resp.Flows), resp.Matched)
		return err
	}
	return nil
}

// WriteLosses prints one line per agent that lost reports, for under the
// table: the figures above miss what those reports carried.
func WriteLosses(w io.Writer, agents []web.AgentReports) error {
	for i := range agents {
		a := &agents[i]
		if a.LostReports == 0 {
			continue
		}
		noun := "reports"
		if a.LostReports == 1 {
			noun = "report"
		}
		if _, err := fmt.Fprintf(w, "%s: %d %s lost — totals may be short\n", a.Name(), a.LostReports, noun); err != nil {
			return err
		}
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func pod(r *flowtable.Row) string {
	if r.Pod == nil {
		if r.Netns.Name != "" {
			return "netns:" + r.Netns.Name
		}
		return "-"
	}
	return r.Pod.Namespace + "/" + r.Pod.Name
}

func endpoint(addr string, port uint16, proto string) string {
	if addr == "" {
		return "-"
	}
	if proto != "tcp" && proto != "udp" && proto != "sctp" {
		return addr
	}
	if strings.Contains(addr, ":") {
		return "[" + addr + "]:" + strconv.Itoa(int(port))
	}
	return addr + ":" + strconv.Itoa(int(port))
}

func humanBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + "B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func drops(r *flowtable.Row, names map[string]string) string {
	if r.Drops == 0 {
		return "0"
	}
	codes := make([]string, 0, len(r.DropReasons))
	for c := range r.DropReasons {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		name := names[c]
		if name == "" {
			name = "code " + c
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, r.DropReasons[c]))
	}
	return fmt.Sprintf("%d (%s)", r.Drops, strings.Join(parts, ", "))
}

func latency(r *flowtable.Row) string {
	if r.LatencyMinNs == nil {
		return "-"
	}
	d := func(ns uint32) string { return time.Duration(ns).String() }
	return d(*r.LatencyMinNs) + "/" + d(*r.LatencyAvgNs) + "/" + d(*r.LatencyMaxNs)
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return now.Sub(t).Truncate(time.Second).String() + " ago"
}
