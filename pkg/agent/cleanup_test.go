package agent

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsint/nsint/pkg/config"
	"github.com/nsint/nsint/pkg/netif"
	"github.com/nsint/nsint/pkg/ports"
)

// TestCleanupRemovesPortState: Cleanup removes the port allocator's state
// files and leaves other files in the state directory alone. (Attachments
// are tc.Cleanup's, tested in pkg/tc.)
func TestCleanupRemovesPortState(t *testing.T) {
	stateDir := t.TempDir()
	alloc, err := ports.Open(stateDir, 100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alloc.Acquire(netif.ID{Netns: 1, Ifindex: 2}); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(stateDir, "other.json")
	if err := os.WriteFile(foreign, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]string{"--node-name", "n", "--state-dir", stateDir, "--bpffs", t.TempDir(),
		"--netns-dir", t.TempDir(), "--host-netns=false"}, nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}

	done, err := Cleanup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if done.StateFiles != 1 || done.Total() != 1 {
		t.Errorf("removed %+v, want 1 state file and nothing else", done)
	}
	for _, f := range []string{ports.StateFile, ports.JournalFile} {
		if _, err := os.Stat(filepath.Join(stateDir, f)); !os.IsNotExist(err) {
			t.Errorf("state file %s left: %v", f, err)
		}
	}
	if _, err := os.Stat(foreign); err != nil {
		t.Errorf("foreign state file removed: %v", err)
	}
	if done, err := Cleanup(context.Background(), cfg); err != nil || done.Total() != 0 {
		t.Errorf("second cleanup: removed %+v, %v", done, err)
	}
}
