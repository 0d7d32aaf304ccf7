package bench

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SchemaVersion is the version of the results file this code writes. Files
// without a schema are the flat format of before (LoadResults reads them
// as legacy).
const SchemaVersion = 2

// SpreadNote says what a figure's spread fields are; it is written into
// every results file.
const SpreadNote = "median of the rounds of this run; q1 and q3 are its nearest-rank quartiles; " +
	"range (max - min) where the producer gives only that (the eBPF benchmarks); rounds is how many " +
	"values the median is of (1: one value, e.g. a p99 over all probes)"

// Results is bench/out/results.json: one run of `make bench`, every figure
// measured in it, stamped with what was measured where.
type Results struct {
	Schema int `json:"schema"`
	// Commit is the commit measured (short hash), with "-dirty" when the
	// work tree differed from it (bench/out aside).
	Commit string `json:"commit"`
	Kernel string `json:"kernel"` // uname -r
	CPU    string `json:"cpu"`    // /proc/cpuinfo model name
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	// Started and Finished bound the run (Finished is unset until the run
	// is complete).
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished,omitempty"`
	Spread   string     `json:"spread"`
	// Figures by key; the keys are documented in docs/performance.md.
	Figures map[string]Figure `json:"figures"`

	// Legacy is set when the file was in the flat format of before: figures
	// merged from several runs, no commit, no quartiles.
	Legacy bool `json:"-"`
	// LegacyMachine and LegacyDate are that format's stamp.
	LegacyMachine string `json:"-"`
	LegacyDate    string `json:"-"`
}

// Figure is one measured figure: the median of its rounds and its spread.
type Figure struct {
	Median float64  `json:"median"`
	Q1     *float64 `json:"q1,omitempty"`
	Q3     *float64 `json:"q3,omitempty"`
	Range  *float64 `json:"range,omitempty"`
	Rounds int      `json:"rounds,omitempty"`
}

// Summarize is the figure of rounds: median and nearest-rank quartiles.
func Summarize(rounds []float64) Figure {
	q1, q3 := Percentile(rounds, 25), Percentile(rounds, 75)
	return Figure{Median: Median(rounds), Q1: &q1, Q3: &q3, Rounds: len(rounds)}
}

// Single is a figure that is one value (a percentile over all probes, a
// count): its quartiles are itself.
func Single(v float64) Figure { return Summarize([]float64{v}) }

// Median of v (NaN when empty).
func Median(v []float64) float64 {
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

// Percentile is the nearest-rank p-th percentile of v (0 < p <= 100; NaN
// when v is empty).
func Percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(rank, len(s)-1))]
}

// valid is an error when a figure holds a value JSON cannot carry.
func (f Figure) valid() error {
	for _, v := range []*float64{&f.Median, f.Q1, f.Q3, f.Range} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return fmt.Errorf("value %v", *v)
		}
	}
	return nil
}

// rounded is f with every value rounded to 4 significant digits.
func (f Figure) rounded() Figure {
	r := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		v := round4(*p)
		return &v
	}
	return Figure{Median: round4(f.Median), Q1: r(f.Q1), Q3: r(f.Q3), Range: r(f.Range), Rounds: f.Rounds}
}

func round4(v float64) float64 {
	if v == 0 {
		return 0
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 4, 64), 64)
	return f
}

// Stamp describes what this process measures: the commit of the work tree
// it runs in, the kernel and the CPU.
func Stamp() (*Results, error) {
	commit, err := commitOfWorkTree()
	if err != nil {
		return nil, err
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return nil, fmt.Errorf("uname: %w", err)
	}
	return &Results{Schema: SchemaVersion, Commit: commit, Kernel: unix.ByteSliceToString(u.Release[:]),
		CPU: cpuModel(), CPUs: runtime.NumCPU(), Go: runtime.Version(), Spread: SpreadNote,
		Figures: map[string]Figure{}}, nil
}

// commitOfWorkTree is HEAD's short hash, with "-dirty" when a tracked or
// untracked file differs from it outside bench/out (where the run writes).
func commitOfWorkTree() (string, error) {
	top, err := gitOut("rev-parse", "--show-toplevel")
	if err != nil {
		return "", err
	}
	head, err := gitOut("-C", top, "rev-parse", "--short=12", "HEAD")
	if err != nil {
		return "", err
	}
	status, err := gitOut("-C", top, "status", "--porcelain", "--", ".", ":(exclude)bench/out")
	if err != nil {
		return "", err
	}
	if status != "" {
		head += "-dirty"
	}
	return head, nil
}

func gitOut(args ...string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.Command("git", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}

// StartRun writes a new, empty run file at path, stamped now: what was
// there is replaced.
func StartRun(path string) (*Results, error) {
	r, err := Stamp()
	if err != nil {
		return nil, err
	}
	r.Started = time.Now().UTC().Truncate(time.Second)
	return r, r.Write(path)
}

// ErrOtherRun is returned when figures would join a run file of another
// commit, or a key the run already has: a run's figures are all its own.
var ErrOtherRun = errors.New("figures from another run")

// AddFigures adds figures to the run file at path, which is started when
// absent. It refuses (ErrOtherRun) a run file stamped with another commit,
// kernel or CPU than this process sees, and a key the run already holds.
// Values are rounded to 4 significant digits.
func AddFigures(path string, figures map[string]Figure) error {
	now, err := Stamp()
	if err != nil {
		return err
	}
	run, err := LoadResults(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		now.Started = time.Now().UTC().Truncate(time.Second)
		run = now
	case err != nil:
		return err
	case run.Legacy || run.Finished != nil:
		return fmt.Errorf("%s: %w: a finished or legacy results file, not a run in progress", path, ErrOtherRun)
	case run.Commit != now.Commit || run.Kernel != now.Kernel || run.CPU != now.CPU:
		return fmt.Errorf("%s: %w: the run is of %s on %s (%s), this is %s on %s (%s); start a new run (make bench does)",
			path, ErrOtherRun, run.Commit, run.Kernel, run.CPU, now.Commit, now.Kernel, now.CPU)
	}
	for k, f := range figures {
		if _, ok := run.Figures[k]; ok {
			return fmt.Errorf("%s: %w: %s is already in this run", path, ErrOtherRun, k)
		}
		if err := f.valid(); err != nil {
			return fmt.Errorf("figure %s: %w", k, err)
		}
		run.Figures[k] = f.rounded()
	}
	return run.Write(path)
}

// FinishRun stamps the run file at runPath finished and moves it to
// outPath: the only way a results file is written whole.
func FinishRun(runPath, outPath string) (*Results, error) {
	run, err := LoadResults(runPath)
	if err != nil {
		return nil, err
	}
	if run.Legacy || run.Finished != nil {
		return nil, fmt.Errorf("%s: not a run in progress", runPath)
	}
	end := time.Now().UTC().Truncate(time.Second)
	run.Finished = &end
	if err := run.Write(outPath); err != nil {
		return nil, err
	}
	if err := os.Remove(runPath); err != nil {
		return nil, fmt.Errorf("remove the finished run file: %w", err)
	}
	return run, nil
}

// Write writes r to path atomically (a temporary file renamed).
func (r *Results) Write(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	return nil
}

// LoadResults reads a results or run file. A file in the flat format of
// before (no schema: every key a number, "machine" and "date" strings) is
// read as Legacy: <key>_spread becomes the range of <key>, <key>_q1 and
// <key>_q3 its quartiles.
func LoadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var probe struct {
		Schema int `json:"schema"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	if probe.Schema == 0 {
		r, err := legacyResults(b)
		if err != nil {
			return nil, fmt.Errorf("results %s (legacy format): %w", path, err)
		}
		return r, nil
	}
	if probe.Schema != SchemaVersion {
		return nil, fmt.Errorf("results %s: schema %d, this code reads %d", path, probe.Schema, SchemaVersion)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("results %s: %w", path, err)
	}
	if r.Figures == nil {
		r.Figures = map[string]Figure{}
	}
	return &r, nil
}

func legacyResults(b []byte) (*Results, error) {
	var flat map[string]any
	if err := json.Unmarshal(b, &flat); err != nil {
		return nil, err
	}
	r := &Results{Legacy: true, Figures: map[string]Figure{}}
	r.LegacyMachine, _ = flat["machine"].(string)
	r.LegacyDate, _ = flat["date"].(string)
	nums := map[string]float64{}
	for k, v := range flat {
		if f, ok := v.(float64); ok {
			nums[k] = f
		}
	}
	r.Figures = FiguresOfFlat(nums)
	return r, nil
}

// FiguresOfFlat turns flat keys into figures: <key>_spread becomes the
// range of <key>, <key>_q1 and <key>_q3 its quartiles (the flat format of
// before, and the eBPF benchmarks' output).
func FiguresOfFlat(nums map[string]float64) map[string]Figure {
	out := map[string]Figure{}
	for k, v := range nums {
		if hasSpreadSuffix(k, nums) {
			continue
		}
		f := Figure{Median: v}
		if s, ok := nums[k+"_spread"]; ok {
			f.Range = &s
		}
		if q, ok := nums[k+"_q1"]; ok {
			f.Q1 = &q
		}
		if q, ok := nums[k+"_q3"]; ok {
			f.Q3 = &q
		}
		out[k] = f
	}
	return out
}

// hasSpreadSuffix reports whether k is the spread or a quartile of another
// key of nums.
func hasSpreadSuffix(k string, nums map[string]float64) bool {
	for _, suffix := range []string{"_spread", "_q1", "_q3"} {
		if base, ok := strings.CutSuffix(k, suffix); ok {
			if _, ok := nums[base]; ok {
				return true
			}
		}
	}
	return false
}
