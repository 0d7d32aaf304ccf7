package collector

import (
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsint/nsint/internal/otelcoltest"
	"github.com/nsint/nsint/pkg/collector/flowtable"
	"github.com/nsint/nsint/pkg/collector/otlpexport"
	"github.com/nsint/nsint/pkg/intreport"
)

// rowOf names the row a record or a /api/v1/flows row is about.
type rowOf struct {
	node, iface, dir, pod, src, dst string
	sport, dport                    int64
}

func recordRow(r otelcoltest.Record) rowOf {
	s := func(k string) string { v, _ := r.Attrs[k].(string); return v }
	i := func(k string) int64 { v, _ := r.Attrs[k].(int64); return v }
	pod := ""
	if s(otlpexport.AttrPodName) != "" {
		pod = s(otlpexport.AttrPodNamespace) + "/" + s(otlpexport.AttrPodName)
	}
	return rowOf{s(otlpexport.AttrNode), s(otlpexport.AttrInterface), s(otlpexport.AttrDirection), pod,
		s(otlpexport.AttrSourceAddress), s(otlpexport.AttrDestAddress), i(otlpexport.AttrSourcePort), i(otlpexport.AttrDestPort)}
}

func tableRow(r flowtable.Row) rowOf {
	pod := ""
	if r.Pod != nil {
		pod = r.Pod.Namespace + "/" + r.Pod.Name
	}
	return rowOf{r.Node, r.Interface, r.Direction, pod, r.Src, r.Dst, int64(r.SrcPort), int64(r.DstPort)}
}

// sums adds up what records say of each row.
type sums struct {
	records                  int
	packets, bytes, drops    int64
	reasons                  map[string]int64 // by attribute name
	firstSeen, lastSeenLater int64
}

func sumRecords(t *testing.T, recs []otelcoltest.Record) map[rowOf]*sums {
	t.Helper()
	out := map[rowOf]*sums{}
	for _, r := range recs {
		if r.EventName != otlpexport.EventName || r.Scope != otlpexport.ScopeName || r.Resource["service.name"] != "nsint-collector" {
			t.Errorf("record event %q scope %q resource %v, want %s from %s of nsint-collector",
				r.EventName, r.Scope, r.Resource, otlpexport.EventName, otlpexport.ScopeName)
		}
		if last, _ := r.Attrs[otlpexport.AttrLastSeen].(int64); r.TimeUnixNano != last {
			t.Errorf("record time %d, want its %s %d", r.TimeUnixNano, otlpexport.AttrLastSeen, last)
		}
		k := recordRow(r)
		s := out[k]
		if s == nil {
			s = &sums{reasons: map[string]int64{}}
			out[k] = s
		}
		s.records++
		s.packets += r.Attrs[otlpexport.AttrPackets].(int64)
		s.bytes += r.Attrs[otlpexport.AttrBytes].(int64)
		s.drops += r.Attrs[otlpexport.AttrDrops].(int64)
		for name, v := range r.Attrs {
			if strings.HasPrefix(name, otlpexport.AttrDropsReasonPrefx) {
				s.reasons[name] += v.(int64)
			}
		}
		s.firstSeen = r.Attrs[otlpexport.AttrFirstSeen].(int64)
		s.lastSeenLater = max(s.lastSeenLater, r.Attrs[otlpexport.AttrLastSeen].(int64))
	}
	return out
}

// checkSums compares the records' sums with the collector's rows.
func checkSums(t *testing.T, got map[rowOf]*sums, rows []flowtable.Row) {
	t.Helper()
	if len(got) != len(rows) {
		t.Errorf("records name %d rows, the collector has %d", len(got), len(rows))
	}
	for _, r := range rows {
		s := got[tableRow(r)]
		if s == nil {
			t.Errorf("no record of row %+v", tableRow(r))
			continue
		}
		if s.packets != int64(r.Packets) || s.bytes != int64(r.Bytes) || s.drops != int64(r.Drops) {
			t.Errorf("row %+v: records sum to %d packets, %d bytes, %d drops; the collector has %d, %d, %d",
				tableRow(r), s.packets, s.bytes, s.drops, r.Packets, r.Bytes, r.Drops)
		}
		want := map[string]int64{}
		for code, n := range r.DropReasons {
			var c uint8
			fmt.Sscan(code, &c)
			want[otlpexport.ReasonKey(c)] = int64(n)
		}
		if fmt.Sprint(s.reasons) != fmt.Sprint(want) {
			t.Errorf("row %+v: drops by reason %v, the collector has %v", tableRow(r), s.reasons, want)
		}
		if s.firstSeen != r.FirstSeen.UnixNano() || s.lastSeenLater != r.LastSeen.UnixNano() {
			t.Errorf("row %+v: first/last seen %d/%d, the collector has %d/%d", tableRow(r),
				s.firstSeen, s.lastSeenLater, r.FirstSeen.UnixNano(), r.LastSeen.UnixNano())
		}
	}
}

// exportSettled waits until every change was taken and every record either
// exported or dropped.
func exportSettled(t *testing.T, c *Collector) otlpexport.Stats {
	t.Helper()
	var o otlpexport.Stats
	eventually(t, "the export to settle", func() bool {
		s := c.Stats()
		if s.Pending != 0 {
			return false
		}
		o = *s.OTLP
		var dropped uint64
		for _, n := range o.Dropped {
			dropped += n
		}
		return o.PendingRows == 0 && o.Queued == 0 && o.Exported+dropped-o.Dropped[otlpexport.DropEvicted] == o.Records
	})
	return o
}

// TestOTLPExportToOpenTelemetryCollector runs a real OpenTelemetry Collector
// (OTLP receiver, file exporter) and the collector exporting to it: every
// field arrives under its attribute name, a row's records add up to the
// row, and across an outage of the OpenTelemetry Collector what did not
// arrive is exactly what the dropped counters say.
func TestOTLPExportToOpenTelemetryCollector(t *testing.T) {
	bin := otelcoltest.Binary(t)
	dir := t.TempDir()
	port := otelcoltest.FreePort(t)
	outputs := []string{filepath.Join(dir, "logs-1.jsonl"), filepath.Join(dir, "logs-2.jsonl")}
	oc := otelcoltest.Start(t, bin, port, outputs[0])

	agent := newFakeAgent(t, twoPodTopology(nodeA))
	cfg := testConfig(agent.port())
	fs := flag.NewFlagSet("nsint-collector", flag.ContinueOnError)
	cfg.RegisterFlags(fs)
	// A small queue and short retries, so that the outage below costs records.
	if err := fs.Parse([]string{"--otlp-endpoint", oc.Endpoint, "--otlp-insecure", "--otlp-interval", "200ms",
		"--otlp-timeout", "1s", "--otlp-max-retry-time", "1s", "--otlp-queue-size", "4", "--otlp-batch-size", "2"}); err != nil {
		t.Fatal(err)
	}
	c, addrs, base := startCollector(t, cfg, false)

	fromA := tcpFrame(ipA, ipB, 443, 40000, 100)
	toB := tcpFrame(ipB, netip.MustParseAddr("198.18.2.9"), 5555, 22, 0)
	v6 := tcpFrame(netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2"), 1000, 80, 50)
	seq := uint32(0)
	v20 := func(r intreport.Report) []byte {
		seq++
		r.Seq, r.SwitchID = seq, nodeA
		return encode(intreport.V20, r)
	}
	// Round 1: a flow from pod-a's stack out of its net1 (two rows), drops
	// at pod-b's net1, an IPv6 flow into pod-a's eth0, a v0.5 report.
	send(t, addrs[0],
		v20(intreport.Report{IngressPort: 6, EgressPort: 5, Packets: 10, Bytes: 15000, Inner: fromA}),
		v20(intreport.Report{Kind: intreport.Drop, IngressPort: 8, DropReason: 80, Packets: 7, Inner: toB}),
		v20(intreport.Report{IngressPort: 7, Packets: 3, Bytes: 300, Inner: v6}),
		encode(intreport.V05, intreport.Report{Seq: 1, SwitchID: nodeA, EgressPort: 8, Inner: toB}))
	eventually(t, "round 1 applied", func() bool { return c.Stats().Reports == 4 })
	exportSettled(t, c)
	// Round 2: more of the first flow and drops of another reason: their
	// rows' second records hold the increments only.
	send(t, addrs[0],
		v20(intreport.Report{IngressPort: 6, EgressPort: 5, Packets: 5, Bytes: 7000, Inner: fromA}),
		v20(intreport.Report{Kind: intreport.Drop, IngressPort: 8, DropReason: 71, Packets: 2, Inner: toB}))
	eventually(t, "round 2 applied", func() bool { return c.Stats().Reports == 6 })
	o := exportSettled(t, c)
	if o.Records != 8 || o.Exported != 8 {
		t.Fatalf("after two rounds: %d records, %d exported, want 8 (5 rows, 3 of them twice)", o.Records, o.Exported)
	}
	var recs []otelcoltest.Record
	eventually(t, "8 records in the file", func() bool { recs = otelcoltest.ReadLogs(t, outputs[0]); return len(recs) == 8 })
	checkSums(t, sumRecords(t, recs), flows(t, base, "").Flows)

	// Every attribute of the records of pod-a's net1 (egress) and pod-b's
	// net1 (ingress drops).
	var net1A, dropsB []otelcoltest.Record
	for _, r := range recs {
		switch recordRow(r) {
		case rowOf{"node-a", "net1", "egress", "default/pod-a", "198.18.1.2", "198.18.2.3", 443, 40000}:
			net1A = append(net1A, r)
		case rowOf{"node-a", "net1", "ingress", "team-b/pod-b", "198.18.2.3", "198.18.2.9", 5555, 22}:
			dropsB = append(dropsB, r)
		}
	}
	if len(net1A) != 2 || len(dropsB) != 2 {
		t.Fatalf("%d records of pod-a's net1 egress and %d of pod-b's net1 ingress, want 2 each", len(net1A), len(dropsB))
	}
	want := map[string]any{
		"k8s.node.name": "node-a", "k8s.namespace.name": "default", "k8s.pod.name": "pod-a", "k8s.pod.uid": "uid-a",
		"network.interface.name": "net1", "network.io.direction": "transmit", "network.type": "ipv4",
		"network.transport": "tcp", "source.address": "198.18.1.2", "source.port": int64(443),
		"destination.address": "198.18.2.3", "destination.port": int64(40000),
		"nsint.direction": "egress", "nsint.network": "default/macvlan-net", "nsint.netns.name": "pod-a",
		"nsint.netns.inode": int64(4026532481), "nsint.switch_id": int64(nodeA), "nsint.port_id": int64(5),
		"nsint.ether_type": int64(0x0800), "nsint.reports": int64(1), "nsint.packets": int64(10),
		"nsint.bytes": int64(15000), "nsint.drops": int64(0),
	}
	for i, inc := range []struct{ packets, bytes int64 }{{10, 15000}, {5, 7000}} {
		r := net1A[i]
		want["nsint.packets"], want["nsint.bytes"] = inc.packets, inc.bytes
		for k, v := range want {
			if r.Attrs[k] != v {
				t.Errorf("pod-a net1 record %d: %s = %v (%T), want %v", i, k, r.Attrs[k], r.Attrs[k], v)
			}
		}
		if len(r.Attrs) != len(want)+2 { // + first and last seen
			t.Errorf("pod-a net1 record %d: attributes %v, want those of %v and the first and last seen", i, r.Attrs, want)
		}
	}
	if first, second := dropsB[0].Attrs, dropsB[1].Attrs; first["nsint.drops"] != int64(7) || first["nsint.drops.acl_deny"] != int64(7) ||
		first["nsint.packets"] != int64(0) || second["nsint.drops"] != int64(2) || second["nsint.drops.queue_full"] != int64(2) ||
		second["nsint.drops.acl_deny"] != nil || first["network.io.direction"] != "receive" || first["k8s.pod.name"] != "pod-b" ||
		first["nsint.network"] != "team-b/sriov-net" {
		t.Errorf("pod-b net1 drop records: %v then %v", first, second)
	}
	for _, r := range recs {
		switch r.Attrs["network.interface.name"] {
		case ":stack":
			if r.Attrs["nsint.local_stack"] != true || r.Attrs["network.io.direction"] != "receive" {
				t.Errorf("local stack record: %v", r.Attrs)
			}
		case "eth0":
			if r.Attrs["network.type"] != "ipv6" || r.Attrs["source.address"] != "fd00::1" || r.Attrs["destination.port"] != int64(80) {
				t.Errorf("IPv6 record: %v", r.Attrs)
			}
		}
	}

	// Outage: the OpenTelemetry Collector stops; 12 new flows cannot be
	// exported, and batches are given up after --otlp-max-retry-time.
	if err := oc.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		send(t, addrs[0], v20(intreport.Report{IngressPort: 5, Packets: uint64(i + 1), Bytes: uint64(100 * (i + 1)),
			Inner: tcpFrame(ipB, ipA, uint16(2000+i), 8080, 10)}))
	}
	eventually(t, "records dropped during the outage", func() bool {
		return c.Stats().OTLP.Dropped[otlpexport.DropExportFailed] >= 4
	})
	otelcoltest.Start(t, bin, port, outputs[1])
	send(t, addrs[0],
		v20(intreport.Report{IngressPort: 5, Packets: 4, Bytes: 400, Inner: tcpFrame(ipB, ipA, 2000, 8080, 10)}),
		v20(intreport.Report{IngressPort: 6, EgressPort: 5, Packets: 1, Bytes: 1400, Inner: fromA}))
	eventually(t, "outage reports applied", func() bool { return c.Stats().Reports == 20 })
	o = exportSettled(t, c)
	rows := flows(t, base, "").Flows
	var total struct{ packets, bytes, drops int64 }
	for _, r := range rows {
		total.packets += int64(r.Packets)
		total.bytes += int64(r.Bytes)
		total.drops += int64(r.Drops)
	}
	var dropped uint64
	for _, n := range o.Dropped {
		dropped += n
	}
	if o.Dropped[otlpexport.DropExportFailed] == 0 || o.Dropped[otlpexport.DropEvicted] != 0 || dropped != o.Dropped[otlpexport.DropExportFailed] {
		t.Errorf("dropped by reason %v: want some export_failed and nothing else", o.Dropped)
	}
	m := scrape(t, base)
	for _, line := range []string{
		fmt.Sprintf(`nsint_collector_otlp_records_dropped_total{reason="export_failed"} %d`, o.Dropped[otlpexport.DropExportFailed]),
		fmt.Sprintf(`nsint_collector_otlp_records_exported_total %d`, o.Exported),
		fmt.Sprintf(`nsint_collector_otlp_records_total %d`, o.Records),
		fmt.Sprintf(`nsint_collector_otlp_dropped_packets_total %d`, o.DroppedPackets),
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	recs = nil
	eventually(t, "every exported record in the files", func() bool {
		recs = otelcoltest.ReadLogs(t, outputs...)
		return uint64(len(recs)) == o.Exported
	})
	var got struct{ packets, bytes, drops int64 }
	for _, r := range recs {
		got.packets += r.Attrs[otlpexport.AttrPackets].(int64)
		got.bytes += r.Attrs[otlpexport.AttrBytes].(int64)
		got.drops += r.Attrs[otlpexport.AttrDrops].(int64)
	}
	if uint64(len(recs))+dropped != o.Records {
		t.Errorf("%d records received + %d dropped != %d made", len(recs), dropped, o.Records)
	}
	if got.packets+int64(o.DroppedPackets) != total.packets || got.bytes+int64(o.DroppedBytes) != total.bytes ||
		got.drops+int64(o.DroppedDrops) != total.drops {
		t.Errorf("received %+v + dropped (%d packets, %d bytes, %d drops) != the collector's totals %+v",
			got, o.DroppedPackets, o.DroppedBytes, o.DroppedDrops, total)
	}
	if o.DroppedPackets == 0 {
		t.Errorf("the outage dropped %d records holding no packets", dropped)
	}
	t.Logf("%d records made, %d exported, %d dropped (%d packets); %d export requests, %d failed",
		o.Records, o.Exported, dropped, o.DroppedPackets, o.Requests, o.FailedRequests)
}
