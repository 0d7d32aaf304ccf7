package collector

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/pkg/intreport"
)

// benchPayloads encodes n reports of distinct flows alternating between
// pod-a's net1 ⇄ stack (v2.0 with counters) and pod-b's net1 → pod-a eth0
// (v0.5).
func benchPayloads(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
		r := intreport.Report{Kind: intreport.Flow, Seq: uint32(i), SwitchID: nodeA, IngressPort: 5, EgressPort: 6,
			HopLatency: uint32(500 + i%1000), IngressTS: uint64(i), Packets: 3, Bytes: 4500, Tracked: true,
			Inner: tcpFrame(src, ipA, uint16(1024+i), 443, 1400)}
		f := intreport.V20
		if i%2 == 1 {
			r.IngressPort, r.EgressPort, f = 8, 7, intreport.V05
			r.EgressTS = r.IngressTS + 700
		}
		out[i] = intreport.Append(nil, f, &r)
	}
	return out
}

// BenchmarkIngest measures decode + 5-tuple + resolve + aggregation (two rows
// per report) on one goroutine, with every port resolved and a table big
// enough for all flows. One op is one report.
func BenchmarkIngest(b *testing.B) {
	agent := newFakeAgent(b, twoPodTopology(nodeA))
	c, addrs, _ := startCollector(b, testConfig(agent.port()), false)
	payloads := benchPayloads(8192)
	send(b, addrs[0], payloads[:2]...)
	eventually(b, "ports to resolve", func() bool { s := c.Stats(); return s.Reports == 2 && s.Pending == 0 })

	in := c.NewIngester()
	src := netip.MustParseAddr("127.0.0.1")
	now := time.Now().UnixNano()
	b.ReportAllocs()
	cpu0 := processCPU(b)
	i := 0
	for b.Loop() {
		in.Ingest(src, payloads[i&8191], now)
		i++
	}
	cpu := processCPU(b) - cpu0
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reports/s")
	// On a shared machine wall time includes waiting for a core; the
	// process's CPU time (the collector's goroutines are idle here) does not.
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "reports/cpu-s")
}

// processCPU is the user+system CPU time of the process so far.
func processCPU(tb testing.TB) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
