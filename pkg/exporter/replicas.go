package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nsint/nsint/pkg/exporter/replica"
)

// DefaultReplicaRefresh is how often a replicated collector's name is
// resolved again (Config.ReplicaRefresh).
const DefaultReplicaRefresh = 30 * time.Second

// replicaLookupTimeout bounds one resolution of a replicated collector's name.
const replicaLookupTimeout = 5 * time.Second

// ErrNoReplica is the error of the reports dropped while a replicated
// collector's name resolves to no address.
var ErrNoReplica = errors.New("no collector replica")

// Resolver looks up every address of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// replicas follows the addresses of a replicated collector: a name with one
// A/AAAA record per replica (a headless Service). It resolves the name every
// refresh and publishes the replica chosen for key; the sender switches to it
// at its next batch.
type replicas struct {
	host    string
	port    uint16
	key     string
	refresh time.Duration
	res     Resolver

	chosen  atomic.Pointer[netip.AddrPort] // nil: no address known
	lastErr atomic.Pointer[error]          // of the latest resolution, nil after a good one
	members atomic.Int64                   // addresses in the latest good resolution
}

// newReplicas parses "host:port" (or a host alone for DefaultPort) of a
// replicated collector.
func newReplicas(name, key string, refresh time.Duration, res Resolver) (*replicas, error) {
	hostport := name
	if !hasPort(name) {
		hostport = net.JoinHostPort(strings.Trim(name, "[]"), strconv.Itoa(DefaultPort))
	}
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("collector replicas %q: %w", name, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 || host == "" {
		return nil, fmt.Errorf("collector replicas %q: need a host and a non-zero port", name)
	}
	if key == "" {
		return nil, fmt.Errorf("collector replicas %q: no key (node name) to choose a replica by", name)
	}
	if res == nil {
		res = net.DefaultResolver
	}
	return &replicas{host: host, port: uint16(port), key: key, refresh: refresh, res: res}, nil
}

// resolve looks the name up once and publishes the replica chosen. A failed
// or empty lookup keeps the previous choice: a resolver hiccup must not move
// agents, and a name that never resolved leaves the reports dropped.
func (r *replicas) resolve(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, replicaLookupTimeout)
	defer cancel()
	addrs, err := r.res.LookupNetIP(ctx, "ip", r.host)
	if err == nil && len(addrs) == 0 {
		err = ErrNoReplica
	}
	if err != nil {
		err = fmt.Errorf("resolve collector replicas %s: %w", r.host, err)
		r.lastErr.Store(&err)
		return err
	}
	members := make([]netip.AddrPort, 0, len(addrs))
	for _, a := range addrs {
		members = append(members, netip.AddrPortFrom(a.Unmap(), r.port))
	}
	chosen, _ := replica.Pick(r.key, members)
	r.chosen.Store(&chosen)
	r.members.Store(int64(len(members)))
	r.lastErr.Store(nil)
	return nil
}

// run resolves the name every refresh until ctx ends.
func (r *replicas) run(ctx context.Context) {
	tick := time.NewTicker(r.refresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_ = r.resolve(ctx) // kept in lastErr; reported when reports are dropped for it
		}
	}
}

// err is why there is no replica to send to.
func (r *replicas) err() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return ErrNoReplica
}
