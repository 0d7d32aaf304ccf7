package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// resultsPath is where figures go: NSINT_RESULTS or bench/out/results.json.
func resultsPath() string {
	if p := os.Getenv("NSINT_RESULTS"); p != "" {
		return p
	}
	return filepath.Join("out", "results.json")
}

// record merges figures into the results file: keys already there from
// other runs stay, these replace theirs, and machine and date are updated.
// Values are rounded to 4 significant digits.
func record(t *testing.T, figures map[string]float64) {
	t.Helper()
	path := resultsPath()
	doc := map[string]any{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("results file %s: %v", path, err)
		}
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for k, v := range figures {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Errorf("figure %s is %v: not recorded", k, v)
			continue
		}
		doc[k] = round4(v)
		t.Logf("figure %s = %v", k, round4(v))
	}
	doc["machine"] = machine()
	doc["date"] = time.Now().UTC().Format(time.RFC3339)
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func round4(v float64) float64 {
	if v == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return f
}

// machine describes the host: CPUs, model, kernel.
func machine() string {
	var u unix.Utsname
	unix.Uname(&u)
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d vCPU %s, kernel %s, %s", runtime.NumCPU(), model, unix.ByteSliceToString(u.Release[:]),
		runtime.Version())
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

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// spread is max - min.
func spread(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	return slices.Max(v) - slices.Min(v)
}

// percentile is the nearest-rank p-th percentile (0 < p <= 100).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// envInt reads a positive integer from the environment, or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
