package bench

import (
	"strings"
	"testing"
)

// TestFoldBPF: lines of a real make bench-bpf output give the results keys
// their consumers (docs/performance.md, the figures) name.
func TestFoldBPF(t *testing.T) {
	const out = `goos: linux
BenchmarkPacket/shared/ingress/udp-2   	       1	        18.00 ns/op	         1.000 after-minus-before-ns/pkt	         0.5000 after-minus-before-q1-ns	         1.500 after-minus-before-q3-ns	         6.000 after-minus-before-spread-ns	         7.000 baseline-ns/pkt	        10.00 before-over-baseline-ns/pkt	         2.000 before-spread-ns	        11.00 over-baseline-ns/pkt	         0 reports	         7.000 spread-ns
BenchmarkPacket/percpu/egress/flows-1000-2 	       1	       420.0 ns/op	        60.00 baseline-ns/pkt	       360.0 over-baseline-ns/pkt	         0 reports	        40.00 spread-ns
BenchmarkLive/shared/direct/egress/established-2      	       1	        57.61 ns/op	         2.988 after-minus-before-ns/pkt	         1.122 after-minus-before-q1-ns	         7.895 after-minus-before-q3-ns	        33.18 after-minus-before-spread-ns	        32.78 baseline-ns/pkt	        22.93 before-over-baseline-ns/pkt	         4.655 before-spread-ns	        24.76 over-baseline-ns/pkt	        34.96 spread-ns
BenchmarkLive/shared/indirect-tailcall/egress/established-2      	       1	        62.47 ns/op	        31.78 baseline-ns/pkt	        30.69 over-baseline-ns/pkt	         6.123 spread-ns
BenchmarkLive/bigtable/direct/egress/new-flow-2                  	       1	       361.4 ns/op	        28.10 baseline-ns/pkt	       333.3 over-baseline-ns/pkt	        21.50 spread-ns
BenchmarkSweep/flows-65536-2 	       1	8859852758 ns/op	        11.76 cpu_ms_flows65536_idle	         5.561 cpu_ms_flows65536_idle_spread	        47.05 cpu_ms_per_s_flows65536	        22.24 cpu_ms_per_s_flows65536_spread
BenchmarkSweep/active-2 	       1	16852551479 ns/op	         0 extra_reports_per_s_active	        14.99 extra_reports_per_s_active_spread
PASS
`
	got, err := foldBPF(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"bpf_ns_per_packet":                                                   11,
		"bpf_ns_per_packet_spread":                                            7,
		"bpf_ns_per_packet_before":                                            10,
		"bpf_ns_per_packet_before_spread":                                     2,
		"bpf_ns_per_packet_after_minus_before":                                1,
		"bpf_ns_per_packet_after_minus_before_spread":                         6,
		"bpf_ns_per_packet_after_minus_before_q1":                             0.5,
		"bpf_ns_per_packet_after_minus_before_q3":                             1.5,
		"bpf_ns_per_packet_udp4_ingress":                                      11,
		"bpf_ns_per_packet_udp4_ingress_before":                               10,
		"bpf_ns_per_packet_udp4_ingress_after_minus_before":                   1,
		"bpf_percpu_ns_per_packet_flows1000_egress":                           360,
		"bpf_percpu_ns_per_packet_flows1000_egress_spread":                    40,
		"bpf_live_ns_per_packet_established_egress":                           24.76,
		"bpf_live_ns_per_packet_established_egress_before":                    22.93,
		"bpf_live_ns_per_packet_established_egress_after_minus_before":        2.988,
		"bpf_live_ns_per_packet_established_egress_after_minus_before_spread": 33.18,
		"bpf_live_indirect_ns_per_packet_established_egress":                  30.69,
		"bpf_live_noop_ns_per_packet_egress":                                  32.78,
		"bpf_live_bigtable_ns_per_packet_newflow_egress":                      333.3,
		"bpf_live_bigtable_ns_per_packet_newflow_egress_spread":               21.5,
		"sweep_cpu_ms_flows65536_idle":                                        11.76,
		"sweep_cpu_ms_per_s_flows65536":                                       47.05,
		"sweep_cpu_ms_per_s_flows65536_spread":                                22.24,
		"sweep_extra_reports_per_s_active":                                    0,
		"sweep_extra_reports_per_s_active_spread":                             14.99,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", k, g, ok, v)
		}
	}
	for _, k := range []string{"bpf_live_indirect_ns_per_packet_established_egress_before", "sweep_ns/op"} {
		if _, ok := got[k]; ok {
			t.Errorf("unexpected key %s", k)
		}
	}
}
