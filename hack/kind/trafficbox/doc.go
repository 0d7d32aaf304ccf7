// Command trafficbox is the workload of the kind e2e suite (e2e/kind): a
// static binary in an image of its own (hack/kind/up.sh builds it), so the
// suite pulls no test image from a registry.
//
//	trafficbox [-port 7000] [-every 250ms] [peer ...]
//
// It always serves a TCP and a UDP echo on -port. For each peer address it
// also keeps one TCP connection and one connected UDP socket to that peer's
// port and sends a short message on each every -every, so that every flow
// keeps one 5-tuple for the whole run (one row per interface and direction in
// the collector). Send errors are printed and retried; it runs until killed.
package main
