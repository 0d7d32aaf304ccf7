package docscheck

import (
	"os"
	"testing"

	"github.com/nsint/nsint/bench"
)

// TestPerformanceTableMatchesResults fails when the summary table of
// docs/performance.md is not what bench/out/results.json and
// bench/goals.json generate (make bench-doc writes it).
func TestPerformanceTableMatchesResults(t *testing.T) {
	const doc = "../../docs/performance.md"
	want, err := bench.GeneratedDoc("../../bench/out/results.json", doc)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if string(have) != want {
		t.Errorf("%s: the bench table differs from what bench/out/results.json and bench/goals.json give; run make bench-doc and commit", doc)
	}
}
