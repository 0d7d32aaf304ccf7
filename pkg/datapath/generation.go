package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/bpf"
)

// A generation is the state of one load of the datapath, pinned under a
// directory of its own so that the next load can report what it counted
// (Recover), however the process that loaded it ended:
//
//	<root>/<id>/tc_progs       the dispatchers' tail-call table: while it is pinned the
//	                           kernel keeps it filled, so attachments left behind keep counting
//	<root>/<id>/flows          flow entries: packets and bytes since the last report
//	<root>/<id>/events         the report ring: reports written that no reader read
//	<root>/<id>/cpu_state      last-flow slots: packets in neither an entry nor a port's counters
//	<root>/<id>/drop_flows     drops the rate limit folded
//	<root>/<id>/port_counters  per-port totals
//	<root>/<id>/port_configs   port identities and local-stack ports
//	<root>/<id>/port_baseline  per-port totals of earlier generations this one carries on
//	<root>/<id>/layout         symlink to the layout ID (layoutID); made last, so a
//	                           generation without it was never complete
//
// An id is the load's wall-clock time in nanoseconds (19 digits, so ids
// sort by age) and the process ID.

// Names of the pins besides the kernel maps.
const (
	baselinePin = "port_baseline"
	layoutPin   = "layout"
)

// pinnedKernelMaps are the maps of the nsint object a generation pins.
var pinnedKernelMaps = [...]string{
	bpf.NsintMapTcProgs, bpf.NsintMapFlows, bpf.NsintMapCpuState,
	bpf.NsintMapDropFlows, bpf.NsintMapPortCounters, bpf.NsintMapPortConfigs,
	bpf.NsintMapEvents,
}

// Errors of generations Recover cannot read; OpenGenerations removes them.
var (
	// ErrGenerationIncompatible: its maps are laid out differently from
	// this build's (another version of nsint pinned them).
	ErrGenerationIncompatible = errors.New("pinned datapath state has another layout")
	// ErrGenerationIncomplete: a pin is missing (the load that made it
	// ended while pinning).
	ErrGenerationIncomplete = errors.New("pinned datapath state is incomplete")
)

// ownGeneration is where this datapath pinned its own state (Pin).
type ownGeneration struct {
	id, dir  string
	baseline *ebpf.Map // portBaseline values by port ID
}

func newGenerationID() string {
	return fmt.Sprintf("%019d-%d", time.Now().UnixNano(), os.Getpid())
}

func isGenerationID(name string) bool {
	ts, pid, ok := strings.Cut(name, "-")
	if !ok || len(ts) != 19 {
		return false
	}
	_, err1 := strconv.ParseUint(ts, 10, 64)
	_, err2 := strconv.ParseUint(pid, 10, 32)
	return err1 == nil && err2 == nil
}

// kernelMaps returns this datapath's maps that a generation pins, by name.
func (d *Datapath) kernelMaps() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		bpf.NsintMapTcProgs:      d.objs.TcProgs,
		bpf.NsintMapFlows:        d.objs.Flows,
		bpf.NsintMapCpuState:     d.objs.CpuState,
		bpf.NsintMapDropFlows:    d.objs.DropFlows,
		bpf.NsintMapPortCounters: d.objs.PortCounters,
		bpf.NsintMapPortConfigs:  d.objs.PortConfigs,
		bpf.NsintMapEvents:       d.objs.Events,
	}
}

// Pin pins this datapath's state as a new generation under root (on a BPF
// filesystem), for the next load to recover. Call it once, before
// attaching dispatchers: from then on the tail-call table outlives the
// process, so attachments left behind keep counting into the pinned maps
// (after Close, or when the process is killed) until a later load recovers
// them (Recover) or the pins are removed (RemoveGenerations). Close leaves
// the pins. It returns the generation's directory.
func (d *Datapath) Pin(root string) (string, error) {
	d.countersMu.Lock()
	defer d.countersMu.Unlock()
	if d.gen != nil {
		return "", fmt.Errorf("pin datapath state: already pinned at %s", d.gen.dir)
	}
	layout, err := layoutID()
	if err != nil {
		return "", fmt.Errorf("pin datapath state: %w", err)
	}
	g := &ownGeneration{id: newGenerationID()}
	g.dir = filepath.Join(root, g.id)
	if err := os.MkdirAll(g.dir, 0o700); err != nil {
		return "", fmt.Errorf("pin datapath state: %w", err)
	}
	fail := func(err error) (string, error) {
		g.baseline.Close()
		if rmErr := os.RemoveAll(g.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove partial pins: %w", rmErr))
		}
		return "", fmt.Errorf("pin datapath state in %s: %w", g.dir, err)
	}
	if g.baseline, err = newBaselineMap(d.cfg.MaxPorts); err != nil {
		return fail(err)
	}
	maps := d.kernelMaps()
	for _, name := range pinnedKernelMaps {
		// A clone, so that the Datapath's own maps never carry a pin path.
		m, err := maps[name].Clone()
		if err == nil {
			err = m.Pin(filepath.Join(g.dir, name))
			m.Close()
		}
		if err != nil {
			return fail(fmt.Errorf("pin map %s: %w", name, err))
		}
	}
	if err := g.baseline.Pin(filepath.Join(g.dir, baselinePin)); err != nil {
		return fail(fmt.Errorf("pin map %s: %w", baselinePin, err))
	}
	for id, c := range d.baseline {
		if err := putBaseline(g.baseline, id, c); err != nil {
			return fail(err)
		}
	}
	if err := os.Symlink(layout, filepath.Join(g.dir, layoutPin)); err != nil {
		return fail(fmt.Errorf("write layout: %w", err))
	}
	d.gen = g
	return g.dir, nil
}

// Generation is the pinned state of an earlier load of the datapath, open
// for Recover. Close releases it and leaves its pins.
type Generation struct {
	id, dir string

	progs, flows, cpuState, dropFlows, portCounters, portConfigs, events, baseline *ebpf.Map
}

// ID names the generation (its directory under the root).
func (g *Generation) ID() string { return g.id }

// Close closes the generation's maps; its pins stay.
func (g *Generation) Close() error {
	var errs []error
	for _, m := range g.all() {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("generation %s: close map: %w", g.id, err))
		}
	}
	return errors.Join(errs...)
}

func (g *Generation) all() []*ebpf.Map {
	return []*ebpf.Map{g.progs, g.flows, g.cpuState, g.dropFlows, g.portCounters, g.portConfigs, g.events, g.baseline}
}

// UnreadableGeneration is an earlier generation OpenGenerations could not
// read and removed.
type UnreadableGeneration struct {
	ID  string
	Err error // wraps ErrGenerationIncompatible or ErrGenerationIncomplete, or the open error
	// RemoveErr is why its pins could not all be removed, if so.
	RemoveErr error
}

// OpenGenerations opens every generation pinned under root but this
// datapath's own, oldest first, and checks that this build can read it: its
// layout ID and each map's type, key and value size. A generation it cannot
// read is removed (its counts are lost) and listed in unreadable. A root
// that does not exist holds no generation.
func (d *Datapath) OpenGenerations(root string) (gens []*Generation, unreadable []UnreadableGeneration, err error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list datapath generations in %s: %w", root, err)
	}
	layout, err := layoutID()
	if err != nil {
		return nil, nil, err
	}
	d.countersMu.Lock()
	own := ""
	if d.gen != nil {
		own = d.gen.id
	}
	d.countersMu.Unlock()
	for _, e := range entries { // sorted by name: oldest first
		if !e.IsDir() || !isGenerationID(e.Name()) || e.Name() == own {
			continue
		}
		dir := filepath.Join(root, e.Name())
		g, err := d.openGeneration(dir, e.Name(), layout)
		if err != nil {
			u := UnreadableGeneration{ID: e.Name(), Err: err}
			if rmErr := os.RemoveAll(dir); rmErr != nil {
				u.RemoveErr = fmt.Errorf("remove generation %s: %w", dir, rmErr)
			}
			unreadable = append(unreadable, u)
			continue
		}
		gens = append(gens, g)
	}
	return gens, unreadable, nil
}

func (d *Datapath) openGeneration(dir, id, layout string) (*Generation, error) {
	got, err := os.Readlink(filepath.Join(dir, layoutPin))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("generation %s: %w: no %s", id, ErrGenerationIncomplete, layoutPin)
	case err != nil:
		return nil, fmt.Errorf("generation %s: read %s: %w", id, layoutPin, err)
	case got != layout:
		return nil, fmt.Errorf("generation %s: %w: layout %s, this build reads %s", id, ErrGenerationIncompatible, got, layout)
	}
	g := &Generation{id: id, dir: dir}
	want := d.kernelMaps()
	fields := map[string]**ebpf.Map{
		bpf.NsintMapTcProgs: &g.progs, bpf.NsintMapFlows: &g.flows, bpf.NsintMapCpuState: &g.cpuState,
		bpf.NsintMapDropFlows: &g.dropFlows, bpf.NsintMapPortCounters: &g.portCounters,
		bpf.NsintMapPortConfigs: &g.portConfigs, bpf.NsintMapEvents: &g.events, baselinePin: &g.baseline,
	}
	for name, field := range fields {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w: no %s", ErrGenerationIncomplete, name)
		}
		if err == nil {
			*field = m
			if name == baselinePin {
				err = checkBaselineMap(m)
			} else {
				err = checkPinnedMap(name, m, want[name])
			}
		}
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("generation %s: map %s: %w", id, name, err)
		}
	}
	return g, nil
}

// checkPinnedMap compares a pinned map with this build's. The flow table is
// either kind (datapath.sharedFlowTable): Recover reads both.
func checkPinnedMap(name string, got, want *ebpf.Map) error {
	typeOK := got.Type() == want.Type()
	if name == bpf.NsintMapFlows {
		typeOK = got.Type() == ebpf.LRUHash || got.Type() == ebpf.LRUCPUHash
	}
	if !typeOK || got.KeySize() != want.KeySize() || got.ValueSize() != want.ValueSize() {
		return fmt.Errorf("%w: %s with %d-byte keys and %d-byte values, this build's is %s with %d and %d",
			ErrGenerationIncompatible, got.Type(), got.KeySize(), got.ValueSize(), want.Type(), want.KeySize(), want.ValueSize())
	}
	return nil
}

// RemoveGenerations removes every generation pinned under root, for
// `nsint-agent cleanup`: their counts are lost, attachments left behind stop
// counting. It returns how many it removed, goes on past errors, and
// removes root too when nothing else is left in it.
func RemoveGenerations(root string) (int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("list datapath generations in %s: %w", root, err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !isGenerationID(e.Name()) {
			continue
		}
		dir := filepath.Join(root, e.Name())
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove generation %s: %w", dir, err))
			continue
		}
		removed++
	}
	if rest, err := os.ReadDir(root); err == nil && len(rest) == 0 {
		if err := os.Remove(root); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", root, err))
		}
	}
	return removed, errors.Join(errs...)
}
