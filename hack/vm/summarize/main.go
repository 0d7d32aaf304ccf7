package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// frame is the prefix of every line hack/vm/init writes itself.
const frame = "NSINT-VM "

// attachLine is what the e2e suite logs once it knows the attach mode auto
// resolved to on this kernel.
var attachLine = regexp.MustCompile(`attach mode auto resolves to (tcx|tc)\b`)

// vfLine is how the SR-IOV test (e2e/sriov_test.go) names each VF it found.
var vfLine = regexp.MustCompile(`SR-IOV VF (\S+ driver=\S+ pci=\S+ pf=\S+)`)

// featureSkip is how a test says which kernel feature it missed.
var featureSkip = regexp.MustCompile(`kernel without \S`)

// pkgRun is one test binary's run inside the VM.
type pkgRun struct {
	name    string
	output  bytes.Buffer
	ended   bool
	rc      string
	seconds string
}

// event is the subset of test2json's TestEvent we read.
type event struct {
	Action, Test, Output string
}

// result is the summary of one boot.
type result struct {
	release, attach         string
	passed, failed, skipped int
	failures, skips, notes  []string
	vfs                     []string // "<where> driver=… pci=… pf=…", in the order first seen
}

func main() {
	expectAttach := flag.String("expect-attach", "", "fail unless auto resolved to this mode (tcx or tc)")
	listVFs := flag.Bool("list-vfs", false, "list each SR-IOV VF the tests found, after the summary line")
	requireVFs := flag.Bool("require-vfs", false, "fail unless the tests found at least one SR-IOV VF")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: summarize [-expect-attach tcx|tc] [-list-vfs] [-require-vfs] RESULTS_LOG")
		os.Exit(2)
	}
	res, err := summarize(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "summarize: %v\n", err)
		os.Exit(2)
	}
	res.require(*expectAttach, *requireVFs)
	fmt.Printf("kernel %s: attach=%s %d passed, %d failed, %d skipped\n", res.release, res.attach, res.passed,
		res.failed, res.skipped)
	if *listVFs {
		for _, v := range res.vfs {
			fmt.Println("  VF", v)
		}
	}
	for _, l := range res.failures {
		fmt.Println("  FAIL", l)
	}
	for _, l := range res.skips {
		fmt.Println("  SKIP", l)
	}
	for _, l := range res.notes {
		fmt.Println("  NOTE", l)
	}
	if !res.ok() {
		os.Exit(1)
	}
}

// require adds a note, which fails the boot, when auto did not resolve to
// expectAttach (if set) or when requireVFs and no VF was found.
func (res *result) require(expectAttach string, requireVFs bool) {
	if expectAttach != "" && res.attach != expectAttach {
		res.notes = append(res.notes, fmt.Sprintf("attach mode auto resolved to %q, want %q", res.attach, expectAttach))
	}
	if requireVFs && len(res.vfs) == 0 {
		res.notes = append(res.notes, "no SR-IOV VF found")
	}
}

// ok reports whether the boot passed: no failed test and no note other than
// a package's time.
func (res *result) ok() bool {
	if res.failed > 0 {
		return false
	}
	for _, n := range res.notes {
		if !strings.HasPrefix(n, "time ") {
			return false
		}
	}
	return true
}

func summarize(path string) (*result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	res := &result{release: "unknown", attach: "unknown"}
	runs, done, err := split(f, res)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if err := r.account(res); err != nil {
			return nil, err
		}
	}
	if !done {
		res.notes = append(res.notes, "the VM stopped before the last test binary finished (see console.log)")
	}
	if res.attach == "unknown" {
		res.notes = append(res.notes, "the e2e suite did not report the attach mode auto resolves to")
	}
	return res, nil
}

// split cuts the log into test binary runs along the frame lines.
func split(r io.Reader, res *result) ([]*pkgRun, bool, error) {
	var runs []*pkgRun
	var cur *pkgRun
	done := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		// The frame may follow output that did not end in a newline.
		if i := strings.Index(line, frame); i >= 0 {
			if cur != nil && i > 0 {
				cur.output.WriteString(line[:i] + "\n")
			}
			f := strings.Fields(line[i+len(frame):])
			if len(f) == 0 {
				continue
			}
			switch f[0] {
			case "uname":
				if len(f) > 1 {
					res.release = f[1]
				}
			case "insmod-failed":
				res.notes = append(res.notes, "module failed to load: "+strings.Join(f[1:], " "))
			case "begin":
				cur = &pkgRun{name: strings.Join(f[1:], " ")}
				runs = append(runs, cur)
			case "end":
				if cur != nil {
					cur.ended = true
					for _, kv := range f[2:] {
						k, v, _ := strings.Cut(kv, "=")
						switch k {
						case "rc":
							cur.rc = v
						case "seconds":
							cur.seconds = v
						}
					}
				}
				cur = nil
			case "done":
				done = true
			}
			continue
		}
		if cur != nil {
			cur.output.WriteString(line + "\n")
		}
	}
	return runs, done, sc.Err()
}

// account converts one run with test2json and adds its tests to res.
func (r *pkgRun) account(res *result) error {
	cmd := exec.Command("go", "tool", "test2json", "-p", r.name)
	cmd.Stdin = bytes.NewReader(r.output.Bytes())
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("test2json for %s: %w", r.name, err)
	}
	outputs := map[string]*strings.Builder{}
	failedTests := 0
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var ev event
		if err := dec.Decode(&ev); err != nil {
			return fmt.Errorf("test2json output for %s: %w", r.name, err)
		}
		if m := attachLine.FindStringSubmatch(ev.Output); m != nil {
			res.attach = m[1]
		}
		if m := vfLine.FindStringSubmatch(ev.Output); m != nil && !slices.Contains(res.vfs, m[1]) {
			res.vfs = append(res.vfs, m[1])
		}
		if ev.Test == "" {
			continue
		}
		b := outputs[ev.Test]
		if b == nil {
			b = &strings.Builder{}
			outputs[ev.Test] = b
		}
		switch ev.Action {
		case "output":
			b.WriteString(ev.Output)
		case "pass":
			res.passed++
		case "fail":
			res.failed++
			failedTests++
			res.failures = append(res.failures, fmt.Sprintf("%s %s\n%s", r.name, ev.Test, indent(b.String())))
		case "skip":
			res.skipped++
			reason := skipReason(b.String())
			line := fmt.Sprintf("%s %s: %s", r.name, ev.Test, reason)
			if !featureSkip.MatchString(reason) {
				res.failed++
				line += " (skipped without naming a missing kernel feature: counted as failed)"
			}
			res.skips = append(res.skips, line)
		}
	}
	switch {
	case !r.ended:
		res.failed++
		res.failures = append(res.failures, fmt.Sprintf("%s did not finish; its last output:\n%s", r.name,
			indent(tail(r.output.String(), 40))))
	case r.rc != "0" && failedTests == 0:
		res.failed++
		res.failures = append(res.failures, fmt.Sprintf("%s exited %s outside any test; its last output:\n%s",
			r.name, r.rc, indent(tail(r.output.String(), 40))))
	}
	if r.ended {
		res.notes = append(res.notes, fmt.Sprintf("time %s %ss", r.name, r.seconds))
	}
	sort.Strings(res.skips)
	return nil
}

// skipReason is a skipped test's own output without the framing lines.
func skipReason(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return "no reason given"
	}
	return strings.Join(keep, " | ")
}

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func tail(s string, n int) string {
	s = strings.ReplaceAll(s, "\x16", "") // test2json framing
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
