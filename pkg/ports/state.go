package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/nsint/nsint/pkg/netif"
)

// StateFile is the name of the allocator's snapshot inside the state
// directory; JournalFile holds the changes made since that snapshot.
const (
	StateFile   = "ports.json"
	JournalFile = "ports.journal"
)

const (
	stateVersion = 1
	tempPattern  = ".ports-*.tmp"
	// compactMin is the journal length below which the journal is never
	// folded into a new snapshot; above it, once it outgrows twice the
	// number of assignments.
	compactMin = 4096
)

type stateEntry struct {
	Netns   netif.Netns   `json:"netns"`
	Ifindex netif.Ifindex `json:"ifindex"`
	ID      uint16        `json:"id"`
}

type stateDoc struct {
	Version int    `json:"version"`
	Next    uint16 `json:"next"`
	// Seq is the sequence number of the last journal record folded into
	// this snapshot; replay skips records up to it.
	Seq   uint64       `json:"seq,omitempty"`
	Ports []stateEntry `json:"ports"`
}

// record is one change: key gets id (id 0: key is released), and the
// cursor becomes Next.
type record struct {
	seq  uint64
	key  netif.ID
	id   uint16
	next uint16
}

// appendRecord appends r as a journal line: "seq netns ifindex id next".
func appendRecord(b []byte, r record) []byte {
	b = strconv.AppendUint(b, r.seq, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.key.Netns), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.key.Ifindex), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.id), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(r.next), 10)
	return append(b, '\n')
}

func parseRecord(line []byte) (record, error) {
	f := bytes.Fields(line)
	if len(f) != 5 {
		return record{}, fmt.Errorf("want 5 fields, have %d", len(f))
	}
	var v [5]uint64
	bits := [5]int{64, 64, 32, 16, 16}
	for i := range f {
		n, err := strconv.ParseUint(string(f[i]), 10, bits[i])
		if err != nil {
			return record{}, err
		}
		v[i] = n
	}
	return record{seq: v[0], key: netif.ID{Netns: netif.Netns(v[1]), Ifindex: netif.Ifindex(v[2])}, id: uint16(v[3]), next: uint16(v[4])}, nil
}

func statePath(dir string) string   { return filepath.Join(dir, StateFile) }
func journalPath(dir string) string { return filepath.Join(dir, JournalFile) }

// loadState returns nil, nil when there is no snapshot yet.
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

// loadJournal returns the journal's complete records in order and the
// length of its complete lines. A last line without its newline is a write
// the agent did not finish (its caller never got the ID): it is left out.
// Any other bad line is an error.
func loadJournal(dir string) ([]record, int, error) {
	b, err := os.ReadFile(journalPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load port journal: %w", err)
	}
	complete := bytes.LastIndexByte(b, '\n') + 1
	var out []record
	for n, line := range bytes.Split(b[:complete], []byte{'\n'}) {
		if len(line) == 0 && n == bytes.Count(b[:complete], []byte{'\n'}) {
			break // after the last newline
		}
		r, err := parseRecord(line)
		if err != nil {
			return nil, 0, fmt.Errorf("load %s line %d: %w", journalPath(dir), n+1, err)
		}
		out = append(out, r)
	}
	if complete < len(b) {
		// Later appends must start on a line of their own.
		if err := os.Truncate(journalPath(dir), int64(complete)); err != nil {
			return nil, 0, fmt.Errorf("drop the unfinished last line of %s: %w", journalPath(dir), err)
		}
	}
	return out, complete, nil
}

// sync returns once every change up to gen has been written. Callers that
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

// saveLocked appends the pending records to the journal, or folds
// everything into a new snapshot when the journal has grown large. Called
// with saveMu held.
func (a *Allocator) saveLocked() error {
	a.mu.Lock()
	gen := a.gen
	pending := a.pending
	a.pending = nil
	compact := a.journaled+len(pending) > max(compactMin, 2*len(a.ids))
	var st stateDoc
	if compact {
		st = a.snapshotLocked()
	}
	a.mu.Unlock()

	var err error
	if compact {
		err = a.writeSnapshot(&st)
	} else {
		err = a.appendJournal(pending)
	}
	if err != nil {
		a.saveErrors.Add(1)
		a.mu.Lock()
		a.pending = append(pending, a.pending...) // the next write retries them
		a.mu.Unlock()
		return err
	}
	a.saves.Add(1)
	if gen > a.savedGen {
		a.savedGen = gen
	}
	return nil
}

// snapshotLocked is the whole state as a snapshot. Called with mu held.
func (a *Allocator) snapshotLocked() stateDoc {
	st := stateDoc{Version: stateVersion, Next: a.next, Seq: a.seq, Ports: make([]stateEntry, 0, len(a.ids))}
	for k, id := range a.ids {
		st.Ports = append(st.Ports, stateEntry{Netns: k.Netns, Ifindex: k.Ifindex, ID: id})
	}
	return st
}

func (a *Allocator) appendJournal(recs []record) error {
	if len(recs) == 0 {
		return nil
	}
	if err := os.MkdirAll(a.dir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", a.dir, err)
	}
	buf := make([]byte, 0, 48*len(recs))
	for _, r := range recs {
		buf = appendRecord(buf, r)
	}
	f, err := os.OpenFile(journalPath(a.dir), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", journalPath(a.dir), err)
	}
	_, err = f.Write(buf) // one write: the records land together or a torn tail is left
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", journalPath(a.dir), err)
	}
	a.journaled += len(recs)
	return nil
}

// writeSnapshot replaces the snapshot with st, then empties the journal. A
// crash between the two leaves records that st already holds: replay skips
// them by sequence number.
func (a *Allocator) writeSnapshot(st *stateDoc) error {
	sort.Slice(st.Ports, func(i, j int) bool { return st.Ports[i].ID < st.Ports[j].ID })
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode port state: %w", err)
	}
	if err := writeAtomic(a.dir, StateFile, b); err != nil {
		return err
	}
	if err := os.Truncate(journalPath(a.dir), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("empty %s: %w", journalPath(a.dir), err)
	}
	a.journaled = 0
	return nil
}

// writeAtomic replaces dir/name with data so that a crash of the process
// leaves either the old or the new content: temporary file in the same
// directory, then rename. There is no fsync: see the package doc.
func writeAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, tempPattern)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// RemoveState deletes the allocator's snapshot, journal and any temporary
// file a crashed write left in stateDir, and nothing else. It returns how
// many files it removed. For uninstall and manual recovery only: a running
// agent would lose its IDs.
func RemoveState(stateDir string) (int, error) {
	var errs []error
	removed := 0
	names := []string{statePath(stateDir), journalPath(stateDir)}
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
