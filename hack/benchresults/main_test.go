package main

import (
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nsint/nsint/bench"
)

// verdict exits 1 when a goal fails (here: every goal, none measured) and
// prints a line per goal.
func TestVerdictExitStatus(t *testing.T) {
	if _, err := bench.Stamp(); err != nil {
		t.Skipf("a run is stamped with its commit, and this is no git work tree: %v", err)
	}
	dir := t.TempDir()
	runFile, out := filepath.Join(dir, "run.json"), filepath.Join(dir, "results.json")
	for _, args := range [][]string{{"start", runFile}, {"finish", runFile, out}} {
		if st := run2(t, args...); st != 0 {
			t.Fatalf("%v: exit %d", args, st)
		}
	}
	var stdout strings.Builder
	if st := run([]string{"verdict", out}, &stdout, io.Discard); st != 1 {
		t.Errorf("verdict of a run that measured nothing: exit %d, want 1", st)
	}
	goals, err := bench.Goals()
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout.String(), "FAIL"); n != len(goals) {
		t.Errorf("%d FAIL lines, want %d:\n%s", n, len(goals), stdout.String())
	}

	// Every goal met: exit 0.
	r, err := bench.LoadResults(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goals {
		r.Figures[g.Key] = bench.Single(g.Goal)
	}
	if err := r.Write(out); err != nil {
		t.Fatal(err)
	}
	if st := run2(t, "verdict", out); st != 0 {
		t.Errorf("verdict with every goal met: exit %d, want 0", st)
	}
	if st := run2(t, "verdict"); st != 2 {
		t.Errorf("bad usage: exit %d, want 2", st)
	}
}

func run2(t *testing.T, args ...string) int {
	t.Helper()
	return run(args, io.Discard, io.Discard)
}
