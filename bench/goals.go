package bench

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// goalsJSON is bench/goals.json, the one table of the project's goals.
//
//go:embed goals.json
var goalsJSON []byte

// Goal is one row of bench/goals.json: the figure under Key must be <= or
// >= Goal.
type Goal struct {
	Key  string  `json:"key"`
	Op   string  `json:"op"` // "<=" or ">="
	Goal float64 `json:"goal"`
	Unit string  `json:"unit"`
	What string  `json:"what"`
}

// Goals returns the goals table, in its order.
func Goals() ([]Goal, error) {
	var goals []Goal
	if err := json.Unmarshal(goalsJSON, &goals); err != nil {
		return nil, fmt.Errorf("bench/goals.json: %w", err)
	}
	seen := map[string]bool{}
	for _, g := range goals {
		if g.Op != "<=" && g.Op != ">=" {
			return nil, fmt.Errorf("bench/goals.json: %s: op %q, want <= or >=", g.Key, g.Op)
		}
		if g.Key == "" || seen[g.Key] {
			return nil, fmt.Errorf("bench/goals.json: key %q empty or repeated", g.Key)
		}
		seen[g.Key] = true
	}
	return goals, nil
}

// Met reports whether v meets the goal.
func (g Goal) Met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if g.Op == "<=" {
		return v <= g.Goal
	}
	return v >= g.Goal
}

// String is the goal as a reader writes it: "≤ 30 ns".
func (g Goal) String() string {
	op := "≥"
	if g.Op == "<=" {
		op = "≤"
	}
	return strings.TrimSpace(op + " " + formatNumber(g.Goal) + " " + g.Unit)
}

// Check is one goal against the figure a run measured.
type Check struct {
	Goal
	Figure  Figure
	Present bool // the run has the figure
	Pass    bool
}

// Verdict checks every goal against r's figures; a goal whose figure is
// missing fails.
func Verdict(r *Results, goals []Goal) []Check {
	out := make([]Check, 0, len(goals))
	for _, g := range goals {
		f, ok := r.Figures[g.Key]
		out = append(out, Check{Goal: g, Figure: f, Present: ok, Pass: ok && g.Met(f.Median)})
	}
	return out
}

// cells are the check's figure (or missing when absent) and its verdict
// (pass or fail), in the words of the caller.
func (c Check) cells(missing, pass, fail string) (figure, verdict string) {
	figure, verdict = missing, fail
	if c.Present {
		figure = c.Figure.String(c.Unit)
	}
	if c.Pass {
		verdict = pass
	}
	return figure, verdict
}

// Failed counts the checks that did not pass.
func Failed(checks []Check) int {
	n := 0
	for _, c := range checks {
		if !c.Pass {
			n++
		}
	}
	return n
}

// WriteVerdict prints one line per goal, figure, goal and PASS or FAIL,
// then a summary line.
func WriteVerdict(w io.Writer, r *Results, checks []Check) error {
	fmt.Fprintf(w, "verdict of %s\n", r.describe())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmedian (spread)\tgoal\tverdict")
	for _, c := range checks {
		fig, verdict := c.cells("missing", "PASS", "FAIL")
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Key, fig, c.Goal.String(), verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d of %d goals met, %d failed\n", len(checks)-Failed(checks), len(checks), Failed(checks))
	return err
}

// describe names the run: commit, kernel, CPU and time.
func (r *Results) describe() string {
	if r.Legacy {
		return fmt.Sprintf("a results file in the format of before (figures merged from several runs, no commit recorded; last written %s on %s)",
			r.LegacyDate, r.LegacyMachine)
	}
	when := r.Started.Format("2006-01-02 15:04Z")
	if r.Finished != nil {
		when += "–" + r.Finished.Format("15:04Z")
	} else {
		when += ", not finished"
	}
	return fmt.Sprintf("commit %s, %s, %d CPUs %s, kernel %s, %s", r.Commit, when, r.CPUs, r.CPU, r.Kernel, r.Go)
}

// String is the figure as the verdict and the table show it: "12.3 ns
// (q1 11 … q3 14, 5 rounds)".
func (f Figure) String(unit string) string {
	s := strings.TrimSpace(formatNumber(f.Median) + " " + unit)
	switch {
	case f.Q1 != nil && f.Q3 != nil && f.Rounds > 1:
		s += fmt.Sprintf(" (q1 %s … q3 %s, %d rounds)", formatNumber(*f.Q1), formatNumber(*f.Q3), f.Rounds)
	case f.Q1 != nil && f.Q3 != nil && f.Rounds != 1:
		s += fmt.Sprintf(" (q1 %s … q3 %s)", formatNumber(*f.Q1), formatNumber(*f.Q3))
	case f.Range != nil:
		s += fmt.Sprintf(" (range %s)", formatNumber(*f.Range))
	}
	return s
}

// formatNumber writes v with at most 4 significant digits and thin
// grouping of thousands as the docs do ("2 000 000").
func formatNumber(v float64) string {
	s := strconv.FormatFloat(round4(v), 'f', -1, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if len(intPart) > 4 {
		var b strings.Builder
		for i, c := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(c)
		}
		intPart = b.String()
	}
	if hasFrac {
		intPart += "." + frac
	}
	if neg {
		return "−" + intPart
	}
	return intPart
}
