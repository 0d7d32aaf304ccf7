package bench

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// The goals table parses: each key once, each op <= or >=.
func TestGoalsTable(t *testing.T) {
	goals, err := Goals()
	if err != nil {
		t.Fatal(err)
	}
	if len(goals) == 0 {
		t.Fatal("no goals")
	}
}

// A run takes each key once and only figures of its own commit, kernel
// and CPU; finishing it writes the results file whole.
func TestRunFileIsOneRun(t *testing.T) {
	if _, err := Stamp(); err != nil {
		t.Skipf("a run is stamped with its commit, and this is no git work tree: %v", err)
	}
	dir := t.TempDir()
	run, out := filepath.Join(dir, "run.json"), filepath.Join(dir, "results.json")
	if _, err := StartRun(run); err != nil {
		t.Fatal(err)
	}
	if err := AddFigures(run, map[string]Figure{"a": Summarize([]float64{3, 1, 2})}); err != nil {
		t.Fatal(err)
	}
	if err := AddFigures(run, map[string]Figure{"a": Single(1)}); !errors.Is(err, ErrOtherRun) {
		t.Errorf("a key twice: %v, want ErrOtherRun", err)
	}
	r, err := LoadResults(run)
	if err != nil {
		t.Fatal(err)
	}
	r.Commit = "0000000-other"
	if err := r.Write(run); err != nil {
		t.Fatal(err)
	}
	if err := AddFigures(run, map[string]Figure{"b": Single(1)}); !errors.Is(err, ErrOtherRun) {
		t.Errorf("a run of another commit: %v, want ErrOtherRun", err)
	}
	res, err := FinishRun(run, out)
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Figures["a"]; f.Median != 2 || *f.Q1 != 1 || *f.Q3 != 3 || f.Rounds != 3 {
		t.Errorf("figure a = %+v, want median 2, q1 1, q3 3 of 3 rounds", f)
	}
	if err := AddFigures(out, map[string]Figure{"b": Single(1)}); !errors.Is(err, ErrOtherRun) {
		t.Errorf("figures added to a finished run: %v, want ErrOtherRun", err)
	}
}

// A goal fails when its figure misses it or is missing; the verdict says
// which and counts them.
func TestVerdict(t *testing.T) {
	goals := []Goal{{Key: "fast", Op: ">=", Goal: 10}, {Key: "small", Op: "<=", Goal: 5, Unit: "ms"}, {Key: "absent", Op: "<=", Goal: 1}}
	r := &Results{Schema: SchemaVersion, Figures: map[string]Figure{"fast": Single(12), "small": Summarize([]float64{4, 6, 7})}}
	checks := Verdict(r, goals)
	if got := []bool{checks[0].Pass, checks[1].Pass, checks[2].Pass}; got[0] != true || got[1] || got[2] {
		t.Errorf("pass = %v, want [true false false]", got)
	}
	var b strings.Builder
	if err := WriteVerdict(&b, r, checks); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fast", "PASS", "small", "6 ms (q1 4 … q3 7, 3 rounds)", "≤ 5 ms", "absent", "missing", "1 of 3 goals met, 2 failed"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("verdict lacks %q:\n%s", want, b.String())
		}
	}
}

// The flat format of before reads as legacy figures, spreads as ranges.
func TestLegacyResults(t *testing.T) {
	r, err := legacyResults([]byte(`{"x": 2, "x_spread": 1, "y_q1": 3, "machine": "m", "date": "d"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Legacy || len(r.Figures) != 2 || *r.Figures["x"].Range != 1 || r.Figures["y_q1"].Median != 3 {
		t.Errorf("legacy = %+v", r)
	}
}

func TestFormatNumber(t *testing.T) {
	for v, want := range map[float64]string{2e6: "2 000 000", 1000: "1000", 0.8372: "0.8372", -1.407: "−1.407", 12345.6: "12 350"} {
		if got := formatNumber(v); got != want {
			t.Errorf("formatNumber(%v) = %q, want %q", v, got, want)
		}
	}
}
