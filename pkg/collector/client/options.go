package client

import (
	"flag"
	"net/url"
	"strconv"
)

// FlowsOptions are the flags of `nsint-collector flows`.
type FlowsOptions struct {
	Server                                            string
	Token, Kubeconfig, CAFile                         string
	Iface, Pod, Namespace, Network, Node, Proto, Addr string
	Port                                              int
	Drops                                             bool
	Sort                                              string
	Limit                                             int
}

// RegisterFlags defines the flows flags on fs.
func (o *FlowsOptions) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Server, "server", "http://localhost:8080", "collector base URL")
	fs.StringVar(&o.Token, "token", "", "bearer token for the collector, or @FILE to read it from FILE")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig whose current context gives the token (and the CA for an https collector)")
	fs.StringVar(&o.CAFile, "ca-file", "", "PEM CA bundle that the collector's https certificate chains to")
	fs.StringVar(&o.Iface, "iface", "", "interface name (exact), or <pod-namespace>/<pod>:<name>")
	fs.StringVar(&o.Pod, "pod", "", "pod name or <namespace>/<name>")
	fs.StringVar(&o.Namespace, "namespace", "", "pod namespace")
	fs.StringVar(&o.Network, "network", "", "network attachment <namespace>/<name>")
	fs.StringVar(&o.Node, "node", "", "node name")
	fs.StringVar(&o.Proto, "proto", "", "tcp, udp, sctp, icmp, icmpv6 or a number")
	fs.StringVar(&o.Addr, "addr", "", "source or destination address or prefix")
	fs.IntVar(&o.Port, "port", -1, "source or destination port")
	fs.BoolVar(&o.Drops, "drops", false, "only flows with drops")
	fs.StringVar(&o.Sort, "sort", "", "[-|+]lastSeen, firstSeen, packets, bytes, reports, drops or latency")
	fs.IntVar(&o.Limit, "limit", 0, "at most this many rows (server default when 0)")
}

// Params turns the options into the query of /api/v1/flows.
func (o *FlowsOptions) Params() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"iface": o.Iface, "pod": o.Pod, "namespace": o.Namespace,
		"network": o.Network, "node": o.Node, "proto": o.Proto, "addr": o.Addr, "sort": o.Sort} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Port >= 0 {
		q.Set("port", strconv.Itoa(o.Port))
	}
	if o.Drops {
		q.Set("drops", "true")
	}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}
