package main

import (
	"strings"
	"testing"
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
