package bench

import (
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// resultsPath is the run file figures are added to: NSINT_RESULTS, else
// out/soak.json for the soak and out/run.json for a benchmark run outside
// make bench. Only `make bench` (benchresults finish) writes
// out/results.json, from one whole run.
func resultsPath() string {
	if p := os.Getenv("NSINT_RESULTS"); p != "" {
		return p
	}
	if os.Getenv("NSINT_SOAK") != "" {
		return filepath.Join("out", "soak.json")
	}
	return filepath.Join("out", "run.json")
}

// record adds figures to the run file (AddFigures: a run of another commit,
// or a key the run already has, fails the test).
func record(t *testing.T, figures map[string]Figure) {
	t.Helper()
	for k, f := range figures {
		t.Logf("figure %s = %s", k, f.String(""))
	}
	if err := AddFigures(resultsPath(), figures); err != nil {
		t.Fatal(err)
	}
}

// singles are values that are one measurement each (a count, a percentile
// over all probes), as figures.
func singles(values map[string]float64) map[string]Figure {
	out := make(map[string]Figure, len(values))
	for k, v := range values {
		out[k] = Single(v)
	}
	return out
}

// loadAvg1 is the 1-minute load average.
func loadAvg1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return math.NaN()
	}
	v, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	return v
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100).
func percentile(v []float64, p float64) float64 { return Percentile(v, p) }

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
