package bench

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
)

// bpfCase maps a BenchmarkPacket sub-benchmark to its results key part.
var bpfCase = map[string]string{
	"udp": "udp4", "tcp": "tcp4", "ipv6": "udp6", "flows-1000": "flows1000", "flows-100000": "flows100000",
	"new-flow": "newflow", "udp-2cpu": "udp4_2cpu",
	// Over the direct tail call, not over the do-nothing program.
	"udp-indirect-vs-direct": "udp4_indirect_over_direct",
}

// TestBenchFoldBPF folds the figures of `make bench-bpf` (the go test
// -bench output saved in NSINT_BENCH_BPF_OUTPUT) into the results:
//
//	bpf_ns_per_packet_<case>_<ingress|egress>        shared flow table (the default, 5.12+)
//	bpf_percpu_ns_per_packet_<case>_<ingress|egress> per-CPU flow table (kernels before 5.12)
//	bpf_ns_per_packet                                headline: udp4_ingress
//	bpf_live_ns_per_packet_<case>_egress           real packets (BenchmarkLive: newflow,
//	                                               twopacketflow, established)
//	bpf_live_indirect_ns_per_packet_<case>_egress  same, --tail-call indirect
//	bpf_live_percpu_ns_per_packet_<case>_egress    same, per-CPU flow table
//	bpf_live_bigtable_ns_per_packet_<case>_egress  same, a flow table of 262 144
//	                                               entries (the others: the default)
//	bpf_live_noop_ns_per_packet_egress             the do-nothing program itself, as the
//	                                               run-time statistics measure it (the
//	                                               machine's floor the figures are above)
//	bpf_verify_<program>_ms                          load + verify of one program
//	<key>_before, <key>_after_minus_before[_q1|_q3]  the programs of the commit
//	                                                 before the sweep, same rounds (single-flow
//	                                                 cases and BenchmarkLive's defaults)
//	sweep_<figure>                                   Datapath.Sweep (BenchmarkSweep: its
//	                                                 metric units are these keys' tails)
//
// ns/packet is above the do-nothing baseline measured in the same run
// (median of its rounds); the benchmarks' spread (max - min over the
// rounds) becomes the figure's range, their quartiles its q1 and q3.
func TestBenchFoldBPF(t *testing.T) {
	requireBench(t)
	path := os.Getenv("NSINT_BENCH_BPF_OUTPUT")
	if path == "" {
		t.Skip("NSINT_BENCH_BPF_OUTPUT not set: make bench sets it to the output of make bench-bpf")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	figures, err := foldBPF(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	record(t, FiguresOfFlat(figures))
}

// foldBPF reads go test -bench output and returns the figures of
// TestBenchFoldBPF.
func foldBPF(r io.Reader) (map[string]float64, error) {
	figures := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i] // the GOMAXPROCS suffix
			}
		}
		metrics := map[string]float64{}
		for i := 2; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				metrics[fields[i+1]] = v
			}
		}
		parts := strings.Split(name, "/")
		switch {
		case parts[0] == "BenchmarkPacket" && len(parts) == 4:
			c, ok := bpfCase[parts[3]]
			over, okOver := metrics["over-baseline-ns/pkt"]
			if !ok || !okOver {
				continue
			}
			key := "bpf_ns_per_packet_" + c + "_" + parts[2]
			if parts[1] == "percpu" {
				key = "bpf_percpu_ns_per_packet_" + c + "_" + parts[2]
			}
			figures[key] = over
			if s, ok := metrics["spread-ns"]; ok {
				figures[key+"_spread"] = s
			}
			foldBefore(figures, key, metrics)
		case parts[0] == "BenchmarkLive" && len(parts) == 5:
			// BenchmarkLive/<shared|percpu>/<direct|indirect-tailcall>/egress/<case>
			over, ok := metrics["over-baseline-ns/pkt"]
			if !ok {
				continue
			}
			variant := ""
			switch {
			case parts[1] == "percpu":
				variant = "percpu_"
			case parts[1] == "bigtable":
				variant = "bigtable_"
			case parts[2] != "direct":
				variant = "indirect_"
			}
			key := "bpf_live_" + variant + "ns_per_packet_" + strings.ReplaceAll(parts[4], "-", "") + "_" + parts[3]
			figures[key] = over
			if s, ok := metrics["spread-ns"]; ok {
				figures[key+"_spread"] = s
			}
			foldBefore(figures, key, metrics)
			if b, ok := metrics["baseline-ns/pkt"]; ok && variant == "" && parts[4] == "established" {
				figures["bpf_live_noop_ns_per_packet_"+parts[3]] = b
			}
		case parts[0] == "BenchmarkSweep":
			for unit, v := range metrics {
				if unit != "ns/op" {
					figures["sweep_"+unit] = v
				}
			}
		case parts[0] == "BenchmarkVerify" && len(parts) == 2:
			if ns, ok := metrics["ns/op"]; ok {
				figures["bpf_verify_"+parts[1]+"_ms"] = ns / 1e6
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	head, ok := figures["bpf_ns_per_packet_udp4_ingress"]
	if !ok {
		return nil, errors.New("no BenchmarkPacket/shared/ingress/udp figure")
	}
	figures["bpf_ns_per_packet"] = head
	for _, tail := range []string{"_spread", "_before", "_before_spread", "_after_minus_before",
		"_after_minus_before_spread", "_after_minus_before_q1", "_after_minus_before_q3"} {
		if v, ok := figures["bpf_ns_per_packet_udp4_ingress"+tail]; ok {
			figures["bpf_ns_per_packet"+tail] = v
		}
	}
	return figures, nil
}

// foldBefore adds the figures of the programs before the sweep measured on
// key's benchmark line, if any.
func foldBefore(figures map[string]float64, key string, metrics map[string]float64) {
	for unit, tail := range map[string]string{
		"before-over-baseline-ns/pkt":  "_before",
		"before-spread-ns":             "_before_spread",
		"after-minus-before-ns/pkt":    "_after_minus_before",
		"after-minus-before-spread-ns": "_after_minus_before_spread",
		"after-minus-before-q1-ns":     "_after_minus_before_q1",
		"after-minus-before-q3-ns":     "_after_minus_before_q3",
	} {
		if v, ok := metrics[unit]; ok {
			figures[key+tail] = v
		}
	}
}
