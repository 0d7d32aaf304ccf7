package ports

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// StateFile is the name of the allocator's state file inside the state
// directory.
const StateFile = "ports.json"

const (
	stateVersion = 1
	tempPattern  = ".ports-*.tmp"
)

type stateEntry struct {
	Netns   uint64 `json:"netns"`
	Ifindex uint32 `json:"ifindex"`
	ID      uint16 `json:"id"`
}

type stateDoc struct {
	Version int          `json:"version"`
	Next    uint16       `json:"next"`
	Ports   []stateEntry `json:"ports"`
}

func statePath(dir string) string { return filepath.Join(dir, StateFile) }

// loadState returns nil, nil when there is no state file yet.
func loadState(dir string) (*stateDoc, error) {
	b, err := os.ReadFile(statePath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load port state: %w", err)
	}
	var st stateDoc
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("load %s: %w", statePath(dir), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("load %s: unsupported version %d", statePath(dir), st.Version)
	}
	return &st, nil
}

// sync returns once a state at least as new as gen is on disk. Callers that
// arrive while a write is under way wait for it and then, if their change is
// not in it, one of them writes for all (group commit).
func (a *Allocator) sync(gen uint64) error {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	if a.savedGen >= gen {
		return nil
	}
	return a.saveLocked()
}

func (a *Allocator) syncNow() error {
	a.saveMu.Lock()
	defer a.saveMu.Unlock()
	return a.saveLocked()
}

// saveLocked writes the current state. Called with saveMu held.
func (a *Allocator) saveLocked() error {
	a.mu.Lock()
	gen := a.gen
	st := stateDoc{Version: stateVersion, Next: a.next, Ports: make([]stateEntry, 0, len(a.ids))}
	for k, id := range a.ids {
		st.Ports = append(st.Ports, stateEntry{Netns: k.Netns, Ifindex: k.Ifindex, ID: id})
	}
	a.mu.Unlock()
	sort.Slice(st.Ports, func(i, j int) bool { return st.Ports[i].ID < st.Ports[j].ID })
	b, err := json.Marshal(&st)
	if err != nil {
		a.saveErrors.Add(1)
		return fmt.Errorf("encode port state: %w", err)
	}
	if err := writeAtomic(a.dir, StateFile, b); err != nil {
		a.saveErrors.Add(1)
		return err
	}
	a.saves.Add(1)
	if gen > a.savedGen {
		a.savedGen = gen
	}
	return nil
}

// writeAtomic replaces dir/name with data so that a crash leaves either the
// old or the new content: temporary file in the same directory, fsync,
// rename, fsync of the directory.
func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	ok = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open state dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync state dir %s: %w", dir, err)
	}
	return nil
}

// RemoveState deletes the allocator's state file and any temporary file a
// crashed write left in stateDir, and nothing else. It returns how many files
// it removed. For uninstall and manual recovery only: a running agent would
// lose its IDs.
func RemoveState(stateDir string) (int, error) {
	var errs []error
	removed := 0
	names := []string{statePath(stateDir)}
	temps, err := filepath.Glob(filepath.Join(stateDir, tempPattern))
	if err != nil {
		errs = append(errs, fmt.Errorf("list temporary state files in %s: %w", stateDir, err))
	}
	names = append(names, temps...)
	for _, n := range names {
		err := os.Remove(n)
		switch {
		case err == nil:
			removed++
		case errors.Is(err, os.ErrNotExist):
		default:
			errs = append(errs, fmt.Errorf("remove %s: %w", n, err))
		}
	}
	return removed, errors.Join(errs...)
}
