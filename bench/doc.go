// Package bench holds nsint's performance and reliability suite: the
// benchmarks behind `make bench` and the soak behind `make soak`, and the
// results they produce. They run the real nsint-agent binary against
// namespaces the suite builds, with a private BPF filesystem and loopback
// receivers.
//
// Results (results.go, goals.go, doctable.go; the only non-test code here,
// used by hack/benchresults and hack/docscheck): a benchmark adds its
// figures to one run file (AddFigures), each the median of its rounds in
// that run with its quartiles (or range), stamped with the commit ("-dirty"
// when the work tree is), kernel and CPU; a run of another commit or a key
// the run already has is refused, so no figure is merged across runs.
// `make bench` starts the run, finishes it into bench/out/results.json,
// regenerates the summary table of docs/performance.md and prints the
// verdict of every goal in goals.json, the one table of goals, exiting 1
// when one fails.
//
// The benchmarks live in test files and run only when asked: NSINT_BENCH=1
// for the benchmarks, NSINT_SOAK=short|full for the soak, as root; `go test
// ./...` runs none of them, and nothing gates on their figures. Knobs (the
// defaults are the full form; smaller values give a short form to try a
// change):
//
//	NSINT_RESULTS                    run file figures are added to (default out/run.json; the soak's out/soak.json)
//	NSINT_BENCH_BIN_DIR              directory with a prebuilt nsint-agent (else built)
//	NSINT_BENCH_BPF_OUTPUT           the make bench-bpf output TestBenchFoldBPF folds
//	NSINT_BENCH_ROUNDS               pipeline rounds (5)
//	NSINT_BENCH_PIPELINE_REPORTS     reports per pipeline round (100000)
//	NSINT_BENCH_ALLOC_PROFILE        file for an allocation profile of the pipeline loops (diagnostic)
//	NSINT_BENCH_VETH_ROUNDS          veth rounds, each with the agent between two without (12)
//	NSINT_BENCH_IPERF_SECONDS        seconds per iperf3 run after its 1 s warm-up (2)
//	NSINT_BENCH_IPERF_CPUS           iperf3 -A client,server CPUs ("0,1"; "none" unpins)
//	NSINT_BENCH_BEFORE_AGENT         agent of the commit compared with (make bench-before builds it)
//	NSINT_BENCH_DROP_PROBES          first-drop probes (200)
//	NSINT_BENCH_DROP_REPEAT_SECONDS  seconds of repeated drops of one flow (3)
//	NSINT_BENCH_SCALE_NS             namespaces of the attach benchmark (1000)
//	NSINT_BENCH_SCALE_RATE           its paced rate, namespaces per second (100)
//	NSINT_BENCH_COLLECTOR_NODES      simulated nodes of the collector load test (100)
//	NSINT_BENCH_COLLECTOR_FLOWS      active flows per interface of a simulated node (2)
//	NSINT_BENCH_COLLECTOR_SECONDS    seconds of load per round (10)
//
// The collector load test (TestBenchCollectors, also `make
// bench-collectors` into a run file of its own, bench/out/collectors.json)
// runs the real nsint-collector against simulated nodes: 200 pods with two
// interfaces each, every flow reported once per report interval, encoded
// and sent by pkg/exporter as the agent does, each node choosing its replica
// by the agent's rendezvous hashing; one replica, then two. It needs no
// root privilege but runs only with NSINT_BENCH=1.
//
// The suite must not touch anything it did not create: namespaces and
// interfaces carry a unique prefix and live in the suite's own directories,
// addresses come from 198.18.0.0/15, receivers listen on loopback, and only
// processes the suite started are signalled, by PID. Every path of a run
// removes what it created.
package bench
