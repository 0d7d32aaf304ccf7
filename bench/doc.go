// Package bench holds nsint's performance and reliability suite: the
// benchmarks behind `make bench` and the soak behind `make soak`. They run
// the real nsint-agent binary against namespaces the suite builds, with a
// private BPF filesystem and loopback receivers, and write their figures into
// bench/out/results.json (one flat JSON object, see docs/performance.md).
//
// Everything here lives in test files and runs only when asked: NSINT_BENCH=1
// for the benchmarks, NSINT_SOAK=short|full for the soak, as root. The suite
// must not touch anything it did not create: namespaces and interfaces carry a
// unique prefix and live in the suite's own directories, addresses come from
// 198.18.0.0/15, receivers listen on loopback, and only processes the suite
// started are signalled, by PID. Every path of a run removes what it created.
package bench
