package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// run2json is what a test binary run with -test.v=test2json prints: each
// framing line starts with ^V.
func run2json(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") || l == "PASS" || l == "FAIL" {
			b.WriteString("\x16")
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

func summarizeText(t *testing.T, text string) *result {
	t.Helper()
	path := filepath.Join(t.TempDir(), "results.log")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := summarize(path)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

const header = "NSINT-VM uname 6.1.0-56-amd64\n"

var e2ePass = "NSINT-VM begin e2e\n" + run2json(
	"=== RUN   TestLocalNode",
	"=== RUN   TestLocalNode/v2.0/auto",
	"    harness_test.go:1: attach mode auto resolves to tc on this kernel",
	"--- PASS: TestLocalNode/v2.0/auto (1.00s)",
	"--- PASS: TestLocalNode (1.00s)",
	"PASS",
) + "NSINT-VM end e2e rc=0 seconds=3\n"

func TestSummary(t *testing.T) {
	featureSkip := "NSINT-VM begin pkg/tc\n" + run2json(
		"=== RUN   TestTCX",
		"    helpers_test.go:9: skipping: kernel without TCX (tcx: not supported)",
		"--- SKIP: TestTCX (0.00s)",
		"PASS",
	) + "NSINT-VM end pkg/tc rc=0 seconds=1\n"
	cases := []struct {
		name                    string
		text                    string
		ok                      bool
		attach                  string
		passed, failed, skipped int
	}{
		{"all pass", header + featureSkip + e2ePass + "NSINT-VM done\n", true, "tc", 2, 0, 1},
		{"vm stopped before done", header + featureSkip + e2ePass, false, "tc", 2, 0, 1},
		{"binary cut off", header + "NSINT-VM begin pkg/datapath\n" + run2json("=== RUN   TestLoad") + e2ePass +
			"NSINT-VM done\n", false, "tc", 2, 1, 0},
		{"skip without a feature", header + "NSINT-VM begin pkg/tc\n" + run2json(
			"=== RUN   TestX",
			"    x_test.go:1: skipping: needs root",
			"--- SKIP: TestX (0.00s)",
			"PASS",
		) + "NSINT-VM end pkg/tc rc=0 seconds=1\n" + e2ePass + "NSINT-VM done\n", false, "tc", 2, 1, 1},
		{"failed test", header + "NSINT-VM begin pkg/tc\n" + run2json(
			"=== RUN   TestX",
			"    x_test.go:1: boom",
			"--- FAIL: TestX (0.00s)",
			"FAIL",
		) + "NSINT-VM end pkg/tc rc=1 seconds=1\n" + e2ePass + "NSINT-VM done\n", false, "tc", 2, 1, 0},
		{"exit outside any test", header + "NSINT-VM begin pkg/tc\n" + "panic: in TestMain\n" +
			"NSINT-VM end pkg/tc rc=2 seconds=1\n" + e2ePass + "NSINT-VM done\n", false, "tc", 2, 1, 0},
		{"no attach mode", header + featureSkip + "NSINT-VM done\n", false, "unknown", 0, 0, 1},
		{"module missing", header + "NSINT-VM insmod-failed kernel/net/sched/cls_bpf.ko\n" + e2ePass +
			"NSINT-VM done\n", false, "tc", 2, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := summarizeText(t, c.text)
			if res.ok() != c.ok || res.attach != c.attach || res.passed != c.passed || res.failed != c.failed ||
				res.skipped != c.skipped {
				t.Errorf("ok=%v attach=%s %d passed, %d failed, %d skipped; want ok=%v attach=%s %d/%d/%d\nfailures %q\nnotes %q",
					res.ok(), res.attach, res.passed, res.failed, res.skipped, c.ok, c.attach, c.passed, c.failed,
					c.skipped, res.failures, res.notes)
			}
			if res.release != "6.1.0-56-amd64" {
				t.Errorf("release %q", res.release)
			}
		})
	}
}

func TestListVFs(t *testing.T) {
	text := header + "NSINT-VM begin e2e\n" + run2json(
		"=== RUN   TestSRIOV",
		"    sriov_test.go:1: attach mode auto resolves to tc on this kernel",
		"    sriov_test.go:2: SR-IOV VF pod-a/net1 driver=igbvf pci=0000:01:10.0 pf=0000:01:00.0",
		"    sriov_test.go:2: SR-IOV VF pod-b/net1 driver=igbvf pci=0000:01:10.2 pf=0000:01:00.0",
		"    sriov_test.go:2: SR-IOV VF pod-a/net1 driver=igbvf pci=0000:01:10.0 pf=0000:01:00.0",
		"--- PASS: TestSRIOV (1.00s)",
		"PASS",
	) + "NSINT-VM end e2e rc=0 seconds=3\nNSINT-VM done\n"
	res := summarizeText(t, text)
	want := []string{"pod-a/net1 driver=igbvf pci=0000:01:10.0 pf=0000:01:00.0",
		"pod-b/net1 driver=igbvf pci=0000:01:10.2 pf=0000:01:00.0"}
	if !res.ok() || strings.Join(res.vfs, "\n") != strings.Join(want, "\n") {
		t.Errorf("ok=%v vfs %q, want %q", res.ok(), res.vfs, want)
	}
	res.require("tc", true)
	if !res.ok() {
		t.Errorf("VFs found and attach tc, yet not ok: %q", res.notes)
	}

	// The same boot without a VF line fails -require-vfs.
	none := summarizeText(t, strings.ReplaceAll(text, "SR-IOV VF", "something else"))
	if none.require("", true); none.ok() {
		t.Error("no VF found, yet ok with -require-vfs")
	}
}
