// Command testbox is the one small static program of the test workloads of
// both Kubernetes suites, so that neither pulls a test image from a registry:
//
//   - the local cluster (hack/local-cluster, e2e/cluster): as "pause" it is the
//     pod sandbox's process (waits for SIGTERM, reaps children); in the testbox
//     workload image it serves ("serve") and sends ("send") the UDP and TCP
//     traffic the tests need (busybox's nc has no UDP);
//   - the kind suite (hack/kind, e2e/kind): "talk" serves the same echo and
//     keeps one TCP connection and one connected UDP socket to each peer,
//     sending a short message on each every -every, so that every flow keeps
//     one 5-tuple for the whole run (one row per interface and direction in
//     the collector). Send errors are logged and retried; it runs until
//     SIGTERM or SIGINT.
//
// For the local cluster's security tests it also plays what is not an agent:
// "report" sends forged INT reports to a collector (the collector must drop
// them), and "get" asks an API once, optionally over verified TLS with the
// pod's ServiceAccount token, and prints the HTTP status (the APIs must
// answer 401 or 403 unless the token may read them).
//
// It talks only to the addresses it is given; it never resolves names.
package main
