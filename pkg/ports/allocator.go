package ports

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/nsint/nsint/pkg/netif"
)

// ErrExhausted is returned by Acquire when every ID from 1 to the maximum is
// in use.
var ErrExhausted = errors.New("port ids exhausted")

// Assignment is one port ID and the interface identity it belongs to
// (ifindex 0: its namespace's local stack).
type Assignment struct {
	Iface netif.ID
	ID    uint16
}

// Allocator assigns port IDs. It is safe for concurrent use.
type Allocator struct {
	dir string
	max uint16

	mu    sync.Mutex
	ids   map[netif.ID]uint16
	owner map[uint16]netif.ID
	next  uint16 // next candidate ID, 1..max
	gen   uint64 // bumped on every change

	// Changes not yet written, and how many records the journal file holds.
	seq       uint64 // sequence number of the last record
	pending   []record
	journaled int

	saveMu   sync.Mutex
	savedGen uint64

	exhausted  atomic.Uint64
	saves      atomic.Uint64
	saveErrors atomic.Uint64
}

// Open loads the allocator state from <stateDir> (the snapshot ports.json
// and the journal ports.journal) if present, or starts empty. IDs range from 1 to max; IDs already stored above a lowered
// max are kept (they stay stable) but no new ones are handed out there.
func Open(stateDir string, max uint16) (*Allocator, error) {
	if max == 0 {
		return nil, fmt.Errorf("open port allocator in %s: max must be at least 1", stateDir)
	}
	a := &Allocator{
		dir:   stateDir,
		max:   max,
		ids:   make(map[netif.ID]uint16),
		owner: make(map[uint16]netif.ID),
		next:  1,
	}
	st, err := loadState(stateDir)
	if err != nil {
		return nil, err
	}
	if st != nil {
		if err := a.loadSnapshot(st); err != nil {
			return nil, err
		}
	}
	recs, _, err := loadJournal(stateDir)
	if err != nil {
		return nil, err
	}
	a.journaled = len(recs)
	for _, r := range recs {
		if st != nil && r.seq <= st.Seq {
			continue // folded into the snapshot already
		}
		if err := a.replay(r); err != nil {
			return nil, fmt.Errorf("load %s: %w", journalPath(stateDir), err)
		}
	}
	return a, nil
}

func (a *Allocator) loadSnapshot(st *stateDoc) error {
	for _, e := range st.Ports {
		k := netif.ID{Netns: e.Netns, Ifindex: e.Ifindex}
		if e.ID == 0 {
			return fmt.Errorf("load %s: port id 0 for netns %d ifindex %d", statePath(a.dir), e.Netns, e.Ifindex)
		}
		if _, dup := a.ids[k]; dup {
			return fmt.Errorf("load %s: netns %d ifindex %d listed twice", statePath(a.dir), e.Netns, e.Ifindex)
		}
		if _, dup := a.owner[e.ID]; dup {
			return fmt.Errorf("load %s: port id %d listed twice", statePath(a.dir), e.ID)
		}
		a.ids[k] = e.ID
		a.owner[e.ID] = k
	}
	a.setNext(st.Next)
	a.seq = st.Seq
	return nil
}

// replay applies one journal record.
func (a *Allocator) replay(r record) error {
	if old, ok := a.ids[r.key]; ok {
		delete(a.owner, old)
		delete(a.ids, r.key)
	}
	if r.id != 0 {
		if other, used := a.owner[r.id]; used {
			return fmt.Errorf("record %d gives port id %d to netns %d ifindex %d, held by netns %d ifindex %d",
				r.seq, r.id, r.key.Netns, r.key.Ifindex, other.Netns, other.Ifindex)
		}
		a.ids[r.key] = r.id
		a.owner[r.id] = r.key
	}
	a.setNext(r.next)
	a.seq = max(a.seq, r.seq)
	return nil
}

// setNext restores a stored cursor, ignoring one outside 1..max.
func (a *Allocator) setNext(next uint16) {
	if next >= 1 && next <= a.max {
		a.next = next
	}
}

// changedLocked records that k now has id (0: released) for the next write
// and returns the generation that write must reach. Called with mu held.
func (a *Allocator) changedLocked(k netif.ID, id uint16) uint64 {
	a.seq++
	a.pending = append(a.pending, record{seq: a.seq, key: k, id: id, next: a.next})
	a.gen++
	return a.gen
}

// Acquire returns the ID of k, assigning the next free one if k has none.
// It fails with ErrExhausted when no ID is free. If the state could not be
// written, the assignment still stands in memory (the same k gets the same
// ID again and the next successful write saves it) and the error says so.
func (a *Allocator) Acquire(k netif.ID) (uint16, error) {
	a.mu.Lock()
	if id, ok := a.ids[k]; ok {
		a.mu.Unlock()
		return id, nil
	}
	id, ok := a.take()
	if !ok {
		a.mu.Unlock()
		a.exhausted.Add(1)
		return 0, fmt.Errorf("acquire port for netns %d ifindex %d: %w (%d in use, max %d)",
			k.Netns, k.Ifindex, ErrExhausted, a.inUseLocked(), a.max)
	}
	a.ids[k] = id
	a.owner[id] = k
	gen := a.changedLocked(k, id)
	a.mu.Unlock()
	if err := a.sync(gen); err != nil {
		return id, fmt.Errorf("acquire port for netns %d ifindex %d: %w", k.Netns, k.Ifindex, err)
	}
	return id, nil
}

// take advances the cursor to the next ID not in use, so that a released ID
// comes back only after every other ID has been handed out. Called with mu
// held.
func (a *Allocator) take() (uint16, bool) {
	for range int(a.max) {
		id := a.next
		if a.next >= a.max {
			a.next = 1
		} else {
			a.next++
		}
		if _, used := a.owner[id]; !used {
			return id, true
		}
	}
	return 0, false
}

// Release forgets the ID of k. Releasing an unknown key does nothing.
func (a *Allocator) Release(k netif.ID) error {
	a.mu.Lock()
	id, ok := a.ids[k]
	if !ok {
		a.mu.Unlock()
		return nil
	}
	delete(a.ids, k)
	delete(a.owner, id)
	gen := a.changedLocked(k, 0)
	a.mu.Unlock()
	if err := a.sync(gen); err != nil {
		return fmt.Errorf("release port %d of netns %d ifindex %d: %w", id, k.Netns, k.Ifindex, err)
	}
	return nil
}

// ReleaseNetns forgets every port of a namespace (its interfaces and its
// local stack) and returns their IDs in ascending order.
func (a *Allocator) ReleaseNetns(netns netif.Netns) ([]uint16, error) {
	released, gen := a.forget(func(k netif.ID) bool { return k.Netns == netns })
	if len(released) == 0 {
		return nil, nil
	}
	if err := a.sync(gen); err != nil {
		return released, fmt.Errorf("release ports of netns %d: %w", netns, err)
	}
	return released, nil
}

// Prune forgets the ports of every namespace for which alive returns false,
// typically once at start against the namespaces that exist now. It returns
// the released IDs in ascending order.
func (a *Allocator) Prune(alive func(netns netif.Netns) bool) ([]uint16, error) {
	seen := make(map[netif.Netns]bool)
	a.mu.Lock()
	for k := range a.ids {
		seen[k.Netns] = false
	}
	a.mu.Unlock()
	// alive may be slow (it stats files): call it without holding mu.
	for ns := range seen {
		seen[ns] = alive(ns)
	}
	released, gen := a.forget(func(k netif.ID) bool { live, known := seen[k.Netns]; return known && !live })
	if len(released) == 0 {
		return nil, nil
	}
	if err := a.sync(gen); err != nil {
		return released, fmt.Errorf("prune ports: %w", err)
	}
	return released, nil
}

func (a *Allocator) forget(match func(netif.ID) bool) ([]uint16, uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var released []uint16
	var gen uint64
	for k, id := range a.ids {
		if match(k) {
			delete(a.ids, k)
			delete(a.owner, id)
			released = append(released, id)
			gen = a.changedLocked(k, 0)
		}
	}
	sort.Slice(released, func(i, j int) bool { return released[i] < released[j] })
	return released, gen
}

// Lookup returns the ID of k without assigning one.
func (a *Allocator) Lookup(k netif.ID) (uint16, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	id, ok := a.ids[k]
	return id, ok
}

// Assignments returns every assigned port, by ascending ID.
func (a *Allocator) Assignments() []Assignment {
	a.mu.Lock()
	out := make([]Assignment, 0, len(a.ids))
	for k, id := range a.ids {
		out = append(out, Assignment{Iface: k, ID: id})
	}
	a.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// InUse returns how many IDs are assigned.
func (a *Allocator) InUse() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *Allocator) inUseLocked() int { return len(a.ids) }

// Max returns the highest ID the allocator hands out.
func (a *Allocator) Max() uint16 { return a.max }

// Exhausted returns how many Acquire calls failed with ErrExhausted.
func (a *Allocator) Exhausted() uint64 { return a.exhausted.Load() }

// Saves returns how many times the state was written, and how many writes
// failed.
func (a *Allocator) Saves() (written, failed uint64) {
	return a.saves.Load(), a.saveErrors.Load()
}
