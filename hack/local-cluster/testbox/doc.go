// Command testbox is the one small static program of the local cluster's
// images (hack/local-cluster): as "pause" it is the pod sandbox's process (waits
// for SIGTERM, reaps children); in the testbox workload image it serves and sends
// the UDP and TCP traffic the e2e tests need (busybox's nc has no UDP).
//
// It talks only to the addresses it is given; it never resolves names.
package main
