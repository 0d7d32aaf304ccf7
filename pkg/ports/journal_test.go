package ports

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

// TestJournalAndCompactionMatchMemory drives many random changes through
// several compactions and checks after each batch that a new process (Open,
// no Close) sees exactly the state in memory, cursor included.
func TestJournalAndCompactionMatchMemory(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 3000)
	rng := rand.New(rand.NewPCG(1, 2))
	compactions := 0
	for batch := range 12 {
		for range 1500 {
			k := netif.ID{Netns: netif.Netns(rng.IntN(40)), Ifindex: netif.Ifindex(rng.IntN(60))}
			var err error
			switch rng.IntN(5) {
			case 0:
				err = a.Release(k)
			case 1:
				_, err = a.ReleaseNetns(k.Netns)
			default:
				_, err = a.Acquire(k)
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.journaled == 0 {
				compactions++
			}
		}
		b := open(t, dir, 3000)
		if got, want := b.Assignments(), a.Assignments(); !equalAssignments(got, want) {
			t.Fatalf("batch %d: reopened state has %d assignments, memory %d", batch, len(got), len(want))
		}
		if b.next != a.next {
			t.Fatalf("batch %d: reopened cursor %d, memory %d", batch, b.next, a.next)
		}
	}
	if compactions == 0 {
		t.Fatal("the journal was never folded into a snapshot: the test does not cover compaction")
	}
}

func equalAssignments(a, b []Assignment) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestJournalTornTailIgnored: a last line without its newline is a write the
// process did not finish; it is dropped, and later appends start on a line
// of their own.
func TestJournalTornTailIgnored(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 10)
	id := acquire(t, a, netif.ID{Netns: 1, Ifindex: 1})
	f, err := os.OpenFile(filepath.Join(dir, JournalFile), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("9 2 2 7") // torn: "9 2 2 7 8\n" was being written
	f.Close()

	b := open(t, dir, 10)
	if got, ok := b.Lookup(netif.ID{Netns: 1, Ifindex: 1}); !ok || got != id {
		t.Fatalf("complete record lost: %d %v", got, ok)
	}
	if _, ok := b.Lookup(netif.ID{Netns: 2, Ifindex: 2}); ok {
		t.Fatal("the torn record was applied")
	}
	id2 := acquire(t, b, netif.ID{Netns: 3, Ifindex: 3})
	c := open(t, dir, 10)
	if got, _ := c.Lookup(netif.ID{Netns: 3, Ifindex: 3}); got != id2 {
		t.Fatalf("append after a torn tail: %d on disk, want %d", got, id2)
	}
}

// TestStaleJournalAfterSnapshot: a crash between writing a snapshot and
// emptying the journal leaves records the snapshot already holds; replaying
// them would undo later changes (here: a release and a new assignment).
func TestStaleJournalAfterSnapshot(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 10)
	acquire(t, a, netif.ID{Netns: 1, Ifindex: 1})
	journal, err := os.ReadFile(filepath.Join(dir, JournalFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Release(netif.ID{Netns: 1, Ifindex: 1}); err != nil {
		t.Fatal(err)
	}
	id := acquire(t, a, netif.ID{Netns: 2, Ifindex: 2})
	a.mu.Lock()
	st := a.snapshotLocked()
	a.mu.Unlock()
	if err := a.writeSnapshot(&st); err != nil {
		t.Fatal(err)
	}
	// The crash: the journal's first record is back (the later ones
	// were never appended: say the snapshot was written right after).
	if err := os.WriteFile(filepath.Join(dir, JournalFile), journal, 0o600); err != nil {
		t.Fatal(err)
	}
	b := open(t, dir, 10)
	if got, want := b.Assignments(), a.Assignments(); !equalAssignments(got, want) {
		t.Fatalf("after replaying a stale journal: %+v, want %+v (id %d)", got, want, id)
	}
}

func TestCorruptJournalIsAnError(t *testing.T) {
	for name, content := range map[string]string{
		"bad field":      "1 1 1 x 2\n2 1 2 3 4\n",
		"short line":     "1 1 1\n",
		"id of another":  "1 1 1 5 6\n2 2 2 5 6\n",
		"id over 16 bit": "1 1 1 70000 2\n",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, JournalFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, 10); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}
