package ports

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

func open(t testing.TB, dir string, max uint16) *Allocator {
	t.Helper()
	a, err := Open(dir, max)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func acquire(t testing.TB, a *Allocator, k netif.ID) uint16 {
	t.Helper()
	id, err := a.Acquire(k)
	if err != nil {
		t.Fatalf("acquire %+v: %v", k, err)
	}
	return id
}

func TestSameKeySameIDAndNamespacesDiffer(t *testing.T) {
	a := open(t, t.TempDir(), 100)
	eth0A := acquire(t, a, netif.ID{Netns: 4026532001, Ifindex: 2})
	eth0B := acquire(t, a, netif.ID{Netns: 4026532002, Ifindex: 2})
	localA := acquire(t, a, netif.ID{Netns: 4026532001})
	if eth0A == eth0B || eth0A == localA || eth0B == localA {
		t.Fatalf("ids not unique: %d %d %d", eth0A, eth0B, localA)
	}
	for _, id := range []uint16{eth0A, eth0B, localA} {
		if id == 0 || id > 100 {
			t.Fatalf("id %d out of 1..100", id)
		}
	}
	if again := acquire(t, a, netif.ID{Netns: 4026532001, Ifindex: 2}); again != eth0A {
		t.Fatalf("same key got %d then %d", eth0A, again)
	}
	if got, ok := a.Lookup(netif.ID{Netns: 4026532002, Ifindex: 2}); !ok || got != eth0B {
		t.Fatalf("lookup: %d %v, want %d", got, ok, eth0B)
	}
	if _, ok := a.Lookup(netif.ID{Netns: 9, Ifindex: 9}); ok {
		t.Fatal("lookup of unknown key succeeded")
	}
	if a.InUse() != 3 {
		t.Fatalf("in use %d, want 3", a.InUse())
	}
}

func TestStableAcrossReopenAndCursorPersisted(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 10)
	keys := []netif.ID{{Netns: 1, Ifindex: 2}, {Netns: 1, Ifindex: 3}, {Netns: 2, Ifindex: 2}, {Netns: 2, Ifindex: 0}}
	want := map[netif.ID]uint16{}
	for _, k := range keys {
		want[k] = acquire(t, a, k)
	}
	if err := a.Release(netif.ID{Netns: 1, Ifindex: 3}); err != nil {
		t.Fatal(err)
	}
	delete(want, netif.ID{Netns: 1, Ifindex: 3})

	// A new process: no Close, only what is on disk.
	b := open(t, dir, 10)
	for k, id := range want {
		if got, ok := b.Lookup(k); !ok || got != id {
			t.Fatalf("after reopen %+v = %d,%v, want %d", k, got, ok, id)
		}
	}
	// The cursor survived: the next ID follows the last one handed out
	// instead of reusing the released one.
	if id := acquire(t, b, netif.ID{Netns: 3, Ifindex: 2}); id != 5 {
		t.Fatalf("next id after reopen %d, want 5", id)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, ".ports-*")); len(tmps) != 0 {
		t.Fatalf("temporary files left: %v", tmps)
	}
}

func TestReleasedIDComesBackLast(t *testing.T) {
	const max = 6
	a := open(t, t.TempDir(), max)
	first := acquire(t, a, netif.ID{Netns: 1, Ifindex: 1})
	if err := a.Release(netif.ID{Netns: 1, Ifindex: 1}); err != nil {
		t.Fatal(err)
	}
	seen := map[uint16]bool{}
	for i := range max - 1 {
		id := acquire(t, a, netif.ID{Netns: 2, Ifindex: netif.Ifindex(i + 1)})
		if id == first {
			t.Fatalf("released id %d handed out again after only %d others", first, i)
		}
		seen[id] = true
	}
	if len(seen) != max-1 {
		t.Fatalf("got %d distinct ids, want %d", len(seen), max-1)
	}
	if id := acquire(t, a, netif.ID{Netns: 3, Ifindex: 1}); id != first {
		t.Fatalf("last free id %d, want the released %d", id, first)
	}
}

func TestExhaustedIsAnErrorNotAWrap(t *testing.T) {
	a := open(t, t.TempDir(), 3)
	for i := range 3 {
		acquire(t, a, netif.ID{Netns: 1, Ifindex: netif.Ifindex(i)})
	}
	id, err := a.Acquire(netif.ID{Netns: 1, Ifindex: 99})
	if !errors.Is(err, ErrExhausted) || id != 0 {
		t.Fatalf("4th of 3: id %d err %v, want ErrExhausted", id, err)
	}
	if a.Exhausted() != 1 {
		t.Fatalf("exhausted counter %d, want 1", a.Exhausted())
	}
	// Existing keys keep working while exhausted.
	if _, err := a.Acquire(netif.ID{Netns: 1, Ifindex: 0}); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(netif.ID{Netns: 1, Ifindex: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Acquire(netif.ID{Netns: 1, Ifindex: 99}); err != nil {
		t.Fatalf("after a release: %v", err)
	}
}

func TestReleaseNetnsAndPrune(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 100)
	a1 := acquire(t, a, netif.ID{Netns: 1, Ifindex: 0})
	a2 := acquire(t, a, netif.ID{Netns: 1, Ifindex: 2})
	b1 := acquire(t, a, netif.ID{Netns: 2, Ifindex: 2})
	c1 := acquire(t, a, netif.ID{Netns: 3, Ifindex: 2})
	got, err := a.ReleaseNetns(1)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint([]uint16{a1, a2}) {
		t.Fatalf("released %v, want %v", got, []uint16{a1, a2})
	}
	pruned, err := a.Prune(func(ns netif.Netns) bool { return ns == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(pruned) != fmt.Sprint([]uint16{b1}) {
		t.Fatalf("pruned %v, want [%d]", pruned, b1)
	}
	b := open(t, dir, 100)
	if as := b.Assignments(); len(as) != 1 || as[0].ID != c1 || as[0].Iface != (netif.ID{Netns: 3, Ifindex: 2}) {
		t.Fatalf("on disk after prune: %+v", as)
	}
}

func TestCorruptStateIsAnError(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"not json":     "{",
		"bad version":  `{"version":9,"ports":[]}`,
		"duplicate id": `{"version":1,"ports":[{"netns":1,"ifindex":1,"id":5},{"netns":2,"ifindex":1,"id":5}]}`,
		"id zero":      `{"version":1,"ports":[{"netns":1,"ifindex":1,"id":0}]}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir, 10); err == nil {
			t.Errorf("%s: Open succeeded", name)
		}
	}
}

func TestConcurrentAcquireUniqueAndDurable(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 1000)
	const n = 200
	ids := make([]uint16, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := a.Acquire(netif.ID{Netns: netif.Netns(i % 7), Ifindex: netif.Ifindex(i)})
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	wg.Wait()
	seen := map[uint16]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("id %d handed out twice", id)
		}
		seen[id] = true
	}
	written, failed := a.Saves()
	if failed != 0 || written == 0 || written > n {
		t.Fatalf("saves written %d failed %d", written, failed)
	}
	b := open(t, dir, 1000)
	for i, id := range ids {
		if got, _ := b.Lookup(netif.ID{Netns: netif.Netns(i % 7), Ifindex: netif.Ifindex(i)}); got != id {
			t.Fatalf("key %d: %d on disk, %d in memory", i, got, id)
		}
	}
}

func TestRemoveState(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, 10)
	acquire(t, a, netif.ID{Netns: 1, Ifindex: 1})
	os.WriteFile(filepath.Join(dir, ".ports-123.tmp"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "other.json"), nil, 0o600)
	n, err := RemoveState(dir)
	if err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "other.json")); err != nil {
		t.Fatalf("foreign file removed: %v", err)
	}
	if b := open(t, dir, 10); b.InUse() != 0 {
		t.Fatal("state survived RemoveState")
	}
}

func TestOpenRejectsZeroMax(t *testing.T) {
	if _, err := Open(t.TempDir(), 0); err == nil {
		t.Fatal("max 0 accepted")
	}
}
