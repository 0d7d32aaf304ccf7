package collector

import (
	"errors"
	"net/netip"
	"sync/atomic"

	"github.com/nsint/nsint/pkg/collector/flowkey"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/topology"
	"github.com/nsint/nsint/pkg/intreport"
	"github.com/nsint/nsint/pkg/netif"
)

// ErrorReason classifies input the collector could not use.
type ErrorReason uint8

// Reasons counted by the collector (label "reason" of the error metrics).
const (
	ReasonTruncated          ErrorReason = iota // payload ends early
	ReasonMalformed                             // a field contradicts the format
	ReasonUnknownMetadata                       // v2.0 metadata of unknown size
	ReasonUnsupportedVersion                    // not v0.5 or v2.0
	ReasonOther                                 // any other decoder error
	ReasonNoReports                             // decoded, but no INT report inside
	ReasonReceive                               // socket read error
	numReasons
)

var reasonNames = [numReasons]string{
	"truncated", "malformed", "unknown_metadata", "unsupported_version", "other", "no_reports", "receive",
}

// String names the reason as the metrics label does.
func (r ErrorReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "invalid"
}

func classify(err error) ErrorReason {
	switch {
	case errors.Is(err, intreport.ErrTruncated):
		return ReasonTruncated
	case errors.Is(err, intreport.ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, intreport.ErrUnknownMetadata):
		return ReasonUnknownMetadata
	case errors.Is(err, intreport.ErrUnsupportedVersion):
		return ReasonUnsupportedVersion
	}
	return ReasonOther
}

// counters of the ingest path, updated atomically.
type ingestCounters struct {
	datagrams   atomic.Uint64
	bytes       atomic.Uint64
	reports     atomic.Uint64
	flowReports atomic.Uint64
	dropReports atomic.Uint64
	errors      [numReasons]atomic.Uint64
	unresolved  atomic.Uint64 // reports that went to the pending queue
	empty       atomic.Uint64 // reports whose counters say nothing crossed
	noPorts     atomic.Uint64 // reports naming no port at all
	rejected    atomic.Uint64 // reports from a source that is no known agent
}

// Ingester decodes datagrams and feeds the flow table. One Ingester belongs
// to one goroutine (it reuses its decode buffer); several may share a
// Collector.
type Ingester struct {
	c       *Collector
	decoded intreport.Decoded
	obs     flowtable.Observation
}

// NewIngester returns an Ingester for one goroutine.
func (c *Collector) NewIngester() *Ingester {
	return &Ingester{c: c, decoded: intreport.Decoded{Reports: make([]intreport.DecodedReport, 0, 8)}}
}

// Ingest processes one UDP payload received at nowNs (Unix nanoseconds) from
// source. It never fails: bad input is counted by reason.
func (in *Ingester) Ingest(source netip.Addr, payload []byte, nowNs int64) {
	c := in.c
	c.ing.datagrams.Add(1)
	c.ing.bytes.Add(uint64(len(payload)))
	source = source.Unmap()
	if err := intreport.Decode(payload, &in.decoded); err != nil {
		c.ing.errors[classify(err)].Add(1)
		return
	}
	d := &in.decoded
	if len(d.Reports) == 0 {
		c.ing.errors[ReasonNoReports].Add(1)
		return
	}
	state := c.resolver.Source(source)
	if state == topology.SourceRejected {
		// Not from an agent: shown nowhere, not even as a sequence. The
		// resolver asks the address again every refresh period.
		c.ing.rejected.Add(uint64(len(d.Reports)))
		return
	}
	first := &d.Reports[0]
	c.seq.observe(seqKey{source: source, switchID: first.SwitchID, hwID: first.HwID, v20: d.Format == intreport.V20}, first.Seq, first.SwitchID)
	for i := range d.Reports {
		in.one(source, state, d.Format, &d.Reports[i], nowNs)
	}
}

// one handles one report from source. A report from a source not known yet
// as an agent waits in the pending queue for the first topology fetch from
// it, whatever its ports: reports are applied only when their source is an
// agent.
func (in *Ingester) one(source netip.Addr, state topology.SourceState, f intreport.Format, r *intreport.DecodedReport, nowNs int64) {
	c := in.c
	c.ing.reports.Add(1)
	if r.Kind == intreport.Drop {
		c.ing.dropReports.Add(1)
	} else {
		c.ing.flowReports.Add(1)
	}
	o := &in.obs
	observe(f, r, nowNs, o)
	if o.Empty() {
		// Its counters say no packet crossed: no row to create or touch.
		c.ing.empty.Add(1)
		return
	}
	if r.IngressPort == 0 && r.EgressPort == 0 {
		c.ing.noPorts.Add(1)
		return
	}
	u := unresolved{
		source:  source,
		ingress: topology.Key{SwitchID: r.SwitchID, Port: r.IngressPort},
		egress:  topology.Key{SwitchID: r.SwitchID, Port: r.EgressPort},
		obs:     *o,
	}
	dropOnlyWhereObserved(r, &u)
	if state != topology.SourceAgent || !c.apply(&u) {
		c.ing.unresolved.Add(1)
		c.pending.push(&u)
		c.resolver.Request(source, r.SwitchID)
	}
}

// dropOnlyWhereObserved keeps a drop to the one interface and direction
// where it happened, when the report says which (nsint's observation port):
// a packet dropped as it left net1 after entering on eth0 is a drop of net1,
// not of eth0, as the agent's per-port drop counters count it. A flow
// report counts at both interfaces it names.
func dropOnlyWhereObserved(r *intreport.DecodedReport, u *unresolved) {
	if r.Kind != intreport.Drop || r.ObservationPort == 0 {
		return
	}
	switch {
	case r.Direction == netif.Ingress && r.ObservationPort == r.IngressPort:
		u.egress.Port = 0
	case r.Direction == netif.Egress && r.ObservationPort == r.EgressPort:
		u.ingress.Port = 0
	}
}

// observe fills o with what r says: its flow, its counts and its latency.
func observe(f intreport.Format, r *intreport.DecodedReport, nowNs int64, o *flowtable.Observation) {
	*o = flowtable.Observation{TimeNs: nowNs}
	layer := flowkey.LayerEthernet
	switch r.InType {
	case intreport.InnerIPv4:
		layer = flowkey.LayerIPv4
	case intreport.InnerIPv6:
		layer = flowkey.LayerIPv6
	}
	if r.InType == intreport.InnerEthernet || r.InType == intreport.InnerIPv4 || r.InType == intreport.InnerIPv6 {
		flowkey.Parse(r.Inner, layer, &o.Tuple)
	}
	packets, bytes := reportCounts(r, &o.Tuple)
	if r.Kind == intreport.Drop {
		// A drop report's packet count is the drops it stands for (the
		// agent folds a flow's drops within its rate limit into one).
		o.Drops, o.DropReason = packets, r.DropReason
		return
	}
	if packets == 0 {
		return // bytes without a packet count stand for nothing we can show
	}
	o.Packets, o.Bytes = packets, bytes
	o.HasLatency, o.LatencyNs = hopLatency(f, r)
}

// reportCounts returns the packets and bytes r stands for: nsint's v2.0
// counters when it has them (zero when they say nothing crossed), else the
// one packet it carries (its IP length, or the captured length of a non-IP
// frame).
func reportCounts(r *intreport.DecodedReport, t *flowkey.Tuple) (packets, bytes uint64) {
	if hasCounters(r) {
		return r.Packets, r.Bytes
	}
	bytes = uint64(t.IPLength)
	if bytes == 0 {
		bytes = uint64(len(r.Inner))
	}
	return 1, bytes
}

// hasCounters reports whether r carries nsint's packet or byte counter (v2.0
// domain-specific metadata), whatever their value.
func hasCounters(r *intreport.DecodedReport) bool {
	return r.DomainID == intreport.NsintDomainID && r.DSMdBits&(intreport.DSPackets|intreport.DSBytes) != 0
}

// replay is the pending queue's verdict on u: applied when its source is an
// agent and its ports are known, rejected when its source is no agent.
func (c *Collector) replay(u *unresolved) verdict {
	switch c.resolver.Source(u.source) {
	case topology.SourceAgent:
		if c.apply(u) {
			return applied
		}
	case topology.SourceRejected:
		c.ing.rejected.Add(1)
		return rejected
	}
	return keep
}

// apply adds u to the table when every port it names is known (its source
// must be an agent: the caller checks).
func (c *Collector) apply(u *unresolved) bool {
	var ing, eg *topology.Port
	if u.ingress.Port != 0 {
		if ing = c.resolver.Lookup(u.ingress); ing == nil {
			return false
		}
	}
	if u.egress.Port != 0 {
		if eg = c.resolver.Lookup(u.egress); eg == nil {
			return false
		}
	}
	c.table.Add(&u.obs, ing, eg)
	if u.obs.HasLatency {
		c.metrics.observeLatency(u.obs.LatencyNs)
	}
	return true
}

// hopLatency returns the report's hop latency in ns when it has one: the v2.0
// hop latency field, else egress − ingress timestamp (mod 2^32 for v0.5).
func hopLatency(f intreport.Format, r *intreport.DecodedReport) (bool, uint32) {
	if f == intreport.V05 {
		if r.NProto != 2 || r.EgressTS == 0 {
			return false, 0
		}
		return true, uint32(r.EgressTS) - uint32(r.IngressTS)
	}
	if r.RepMdBits&intreport.MdHopLatency != 0 {
		return true, r.HopLatency
	}
	const both = intreport.MdIngressTS | intreport.MdEgressTS
	if r.RepMdBits&both == both && r.EgressTS >= r.IngressTS && r.EgressTS-r.IngressTS <= 1<<32-1 {
		return true, uint32(r.EgressTS - r.IngressTS)
	}
	return false, 0
}
