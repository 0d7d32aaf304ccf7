// Command summarize reads what a kernel-matrix VM wrote to its results
// serial port (hack/vm/init: "NSINT-VM" frame lines around the
// -test.v=test2json output of each test binary), turns each binary's output
// into test events with `go tool test2json`, and prints the boot's summary
// line, exactly
//
//	kernel <release>: attach=<tcx|tc> <N> passed, <M> failed, <K> skipped
//
// followed by the failed tests, every skipped test with its reason, and each
// package's time. It exits non-zero when a test failed, a test binary failed
// outside any test (build-time panic, timeout, TestMain), the VM stopped before
// it finished, the e2e suite did not say what attach mode auto resolved to, or
// a test skipped without naming the kernel feature it missed ("kernel
// without ..."). With -list-vfs it lists, after the summary line, each SR-IOV
// VF the tests logged ("SR-IOV VF <where> driver=… pci=… pf=…"). It owns no
// VM handling; hack/vm/*.sh boot and collect.
package main
