package flagconf

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testConfig struct {
	fs         *flag.FlagSet
	collectors *StringList
	format     *string
	interval   *int
	hostNetns  *bool
	config     *string
}

func newTestConfig() *testConfig {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c := &testConfig{fs: fs, collectors: NewStringList("127.0.0.1:32766")}
	fs.Var(c.collectors, "collector", "")
	c.format = fs.String("report-format", "v2.0", "")
	c.interval = fs.Int("report-interval-ms", 1000, "")
	c.hostNetns = fs.Bool("host-netns", true, "")
	c.config = fs.String("config", "", "")
	return c
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	file := writeFile(t, "collector: [a:1, b:2]\nreport-format: v0.5\nreport-interval-ms: 250\nhost-netns: false\n")
	c := newTestConfig()
	env := []string{"NSINT_REPORT_FORMAT=v2.0", "NSINT_COLLECTOR=c:3,d:4", "OTHER=x"}
	args := []string{"--config", file, "--report-interval-ms", "500"}
	if err := Parse(c.fs, args, "NSINT_", "config", env); err != nil {
		t.Fatal(err)
	}
	if got := c.collectors.String(); got != "c:3,d:4" {
		t.Errorf("collectors = %q, want env's list replacing the file's", got)
	}
	if *c.format != "v2.0" {
		t.Errorf("format = %q, want env over file", *c.format)
	}
	if *c.interval != 500 {
		t.Errorf("interval = %d, want flag over file", *c.interval)
	}
	if *c.hostNetns {
		t.Error("host-netns: file value false not applied")
	}
}

func TestRepeatableFlagReplacesDefault(t *testing.T) {
	c := newTestConfig()
	if err := Parse(c.fs, []string{"--collector", "x:1", "--collector", "y:2"}, "NSINT_", "config", nil); err != nil {
		t.Fatal(err)
	}
	if got := c.collectors.String(); got != "x:1,y:2" {
		t.Fatalf("collectors = %q", got)
	}
}

func TestErrorsNameFieldAndValue(t *testing.T) {
	c := newTestConfig()
	err := Parse(c.fs, nil, "NSINT_", "config", []string{"NSINT_REPORT_INTERVAL_MS=soon"})
	e, ok := FlagErrorValue(err)
	if !ok || e.Field != "report-interval-ms" || e.Value != "soon" {
		t.Fatalf("err = %v, want an *Error naming report-interval-ms and soon", err)
	}
	file := writeFile(t, "colector: a:1\n")
	c = newTestConfig()
	err = Parse(c.fs, []string{"--config", file}, "NSINT_", "config", nil)
	if err == nil || !strings.Contains(err.Error(), `unknown key "colector"`) {
		t.Fatalf("err = %v, want unknown key named", err)
	}
	c = newTestConfig()
	err = Parse(c.fs, []string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}, "NSINT_", "config", nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want not-exist", err)
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("NSINT_", "host-netns"); got != "NSINT_HOST_NETNS" {
		t.Fatal(got)
	}
	if got := EnvName("NSINT_COLLECTOR_", "max-flows"); got != "NSINT_COLLECTOR_MAX_FLOWS" {
		t.Fatal(got)
	}
}
