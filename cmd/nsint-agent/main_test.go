package main

import (
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"

	"github.com/nsint/nsint/pkg/agent"
)

// Bad configuration exits with status 2 and a message naming the field and
// the value, before anything is opened.
func TestInvalidConfigurationExitsTwo(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--report-format", "v1.0"}, `report-format "v1.0"`},
		{[]string{"--switch-id", "fd00::1"}, `switch-id "fd00::1"`},
		{[]string{"--select", "include color=blue"}, `select "include color=blue"`},
		{[]string{"cleanup", "--attach-mode", "xdp"}, `attach-mode "xdp"`},
		{[]string{"--no-such-flag"}, "no-such-flag"},
		{[]string{"--api-auth", "kubernetes"}, `api-tls-cert "" (from configuration): --api-auth kubernetes needs --api-tls-cert and --api-tls-key`},
	} {
		var stderr strings.Builder
		if code := run(c.args, &stderr); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", c.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: stderr %q does not name %s", c.args, stderr.String(), c.want)
		}
	}
	var stderr strings.Builder
	if code := run([]string{"--help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "-collector") {
		t.Errorf("--help: exit %d, output %q", code, stderr.String())
	}
}

// A component that failed ends the agent with status 1 and one log line
// naming the component and the cause.
func TestComponentFailureExitsOneNamingIt(t *testing.T) {
	var out strings.Builder
	log := slog.New(slog.NewTextHandler(&out, nil))
	cause := fmt.Errorf("fsnotify: %w", syscall.EMFILE)
	err := fmt.Errorf("agent: %w", &agent.ComponentError{Component: "discovery", Err: cause})
	if code := exitStatus(log, err); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one log line, got %q", out.String())
	}
	for _, want := range []string{"level=ERROR", "component=discovery", `err="fsnotify: too many open files"`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %s", lines[0], want)
		}
	}

	out.Reset()
	if code := exitStatus(log, nil); code != 0 || out.Len() != 0 {
		t.Errorf("normal stop: exit %d, log %q", code, out.String())
	}
}
