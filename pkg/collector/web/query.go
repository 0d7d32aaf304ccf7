package web

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/flowtable"
)

// DefaultLimit is the number of rows /api/v1/flows returns without limit=.
const DefaultLimit = 1000

// MaxLimit is the largest accepted limit.
const MaxLimit = 1000000

// ParamError is a bad query parameter value.
type ParamError struct {
	Param string
	Value string
	Why   string
}

func (e *ParamError) Error() string {
	return fmt.Sprintf("invalid value %q for parameter %q: %s", e.Value, e.Param, e.Why)
}

var knownParams = map[string]bool{
	"iface": true, "pod": true, "namespace": true, "network": true, "node": true, "proto": true,
	"addr": true, "port": true, "drops": true, "sort": true, "limit": true,
}

// ParseFilter turns the query parameters of /api/v1/flows (and, ignoring the
// flow-only ones, /api/v1/summary) into a filter.
func ParseFilter(q url.Values) (flowtable.Filter, error) {
	f := flowtable.MatchAll()
	f.Limit = DefaultLimit
	for k, vs := range q {
		if !knownParams[k] {
			return f, &ParamError{k, strings.Join(vs, ","), "unknown parameter"}
		}
		if len(vs) > 1 {
			return f, &ParamError{k, strings.Join(vs, ","), "given more than once"}
		}
	}
	if v := q.Get("iface"); q.Has("iface") {
		if err := parseIface(v, &f); err != nil {
			return f, err
		}
	}
	if v := q.Get("pod"); q.Has("pod") {
		ns, name, qualified := strings.Cut(v, "/")
		if !qualified {
			ns, name = "", v
		}
		if name == "" || (qualified && ns == "") {
			return f, &ParamError{"pod", v, "want <name> or <namespace>/<name>"}
		}
		if err := setOnce("pod", v, &f.PodName, name); err != nil {
			return f, err
		}
		if ns != "" {
			if err := setOnce("pod", v, &f.PodNamespace, ns); err != nil {
				return f, err
			}
		}
	}
	if v := q.Get("namespace"); q.Has("namespace") {
		if v == "" {
			return f, &ParamError{"namespace", v, "empty"}
		}
		if err := setOnce("namespace", v, &f.PodNamespace, v); err != nil {
			return f, err
		}
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"network", &f.Network}, {"node", &f.Node}} {
		if v := q.Get(p.name); q.Has(p.name) {
			if v == "" {
				return f, &ParamError{p.name, v, "empty"}
			}
			*p.dst = v
		}
	}
	if v := q.Get("proto"); q.Has("proto") {
		n, ok := flowkey.ParseProto(v)
		if !ok {
			return f, &ParamError{"proto", v, "want tcp, udp, sctp, icmp, icmpv6 or a number 0-255"}
		}
		f.Proto = int(n)
	}
	if v := q.Get("addr"); q.Has("addr") {
		p, err := parseAddr(v)
		if err != nil {
			return f, &ParamError{"addr", v, "want an IP address or prefix"}
		}
		f.Addr = p
	}
	if v := q.Get("port"); q.Has("port") {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return f, &ParamError{"port", v, "want a number 0-65535"}
		}
		f.Port = int(n)
	}
	if v := q.Get("drops"); q.Has("drops") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, &ParamError{"drops", v, "want true or false"}
		}
		f.DropsOnly = b
	}
	if v := q.Get("sort"); q.Has("sort") {
		k, asc, ok := flowtable.ParseSort(v)
		if !ok {
			return f, &ParamError{"sort", v, "want [-|+]lastSeen, firstSeen, packets, bytes, reports, drops or latency"}
		}
		f.Sort, f.Ascending = k, asc
	}
	if v := q.Get("limit"); q.Has("limit") {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxLimit {
			return f, &ParamError{"limit", v, fmt.Sprintf("want a number 1-%d", MaxLimit)}
		}
		f.Limit = n
	}
	return f, nil
}

// parseIface accepts "net1" (exact interface name, ":stack" included) or
// "<pod-namespace>/<pod>:<name>".
func parseIface(v string, f *flowtable.Filter) error {
	bad := &ParamError{"iface", v, "want <name> or <pod-namespace>/<pod>:<name>"}
	if v == "" {
		return bad
	}
	ns, rest, qualified := strings.Cut(v, "/")
	if !qualified {
		f.Interface = v
		return nil
	}
	pod, name, ok := strings.Cut(rest, ":")
	if !ok || ns == "" || pod == "" || name == "" {
		return bad
	}
	f.Interface, f.PodNamespace, f.PodName = name, ns, pod
	return nil
}

func setOnce(param, raw string, dst *string, v string) error {
	if *dst != "" && *dst != v {
		return &ParamError{param, raw, fmt.Sprintf("conflicts with %q given elsewhere", *dst)}
	}
	*dst = v
	return nil
}

func parseAddr(v string) (netip.Prefix, error) {
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return p, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
