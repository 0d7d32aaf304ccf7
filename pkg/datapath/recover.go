package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// portLocal is NSINT_PORT_LOCAL: an egress flow's ingress port when the
// packet comes from the namespace's own stack.
const portLocal = 0xffff

// RecoverStats say what Recover found in earlier generations.
type RecoverStats struct {
	Generations int // generations read, reported and removed
	Failed      int // generations that could not be read (removed all the same)

	FlowReports int    // flow events emitted
	Packets     uint64 // packets they carry
	Bytes       uint64
	DropReports int    // drop events emitted
	Drops       uint64 // drops they carry
	// Queued is how many of those reports the generation's programs had
	// written to its report ring while no reader read it (the agent had
	// stopped): they are emitted as written. Malformed counts records
	// that could not be decoded (none should).
	Queued, Malformed int

	// EvictedPackets sat in a last-flow slot whose flow entry was gone
	// (evicted): no report carries them, as when the kernel empties such a
	// slot (its ports' counters do).
	EvictedPackets uint64
	// PortGonePackets and PortGoneDrops belong to ports this datapath does
	// not have, or has for another interface: their interface went away
	// while no agent ran and its port ID is released, so no report may
	// name it.
	PortGonePackets, PortGoneDrops uint64
	// BaselinePorts is how many ports' earlier counters now count in
	// PortCountersOf; BaselineSkipped how many belonged to ports gone.
	BaselinePorts, BaselineSkipped int
}

// Recover reports what earlier generations counted and no report carried,
// and carries their ports' counters on. Call it once this datapath's
// dispatchers have replaced theirs wherever an interface is still observed.
// For each generation, in order:
//   - it disarms the generation: empties and unpins its tail-call table, so
//     that its dispatchers still attached anywhere stop counting, and waits
//     until the programs already running have finished;
//   - it reads, from the now quiescent maps, every flow entry's unreported
//     packets and bytes (per CPU on a per-CPU table) with what the CPUs'
//     last-flow slots hold for it, every drop entry's folded drops, and the
//     reports left in its report ring;
//   - it removes the generation's pins;
//   - it adds each port's counters (those slots included, and the
//     generation's own baseline) to the port's baseline, when this datapath
//     has the same port (same namespace and ifindex), calls emit with each
//     report left in the ring (ports this datapath does not have made
//     unknown, reports of such an observation port left out), then with one
//     Event per flow entry (per CPU on a per-CPU table) and drop entry, as a
//     sweep does: Reason ReasonFlush (ReasonDrop for drops), Data nil, ports
//     as the kernel would have reported them (ingress entries that were
//     forwarded are reported at egress; unwatched flows are not reported).
//
// Recover owns gens: it closes them. It is serialised with Sweep, so emit
// may share a sweep's state but must not call Sweep. An error names the
// generations that could not be read; the others are reported all the same.
func (d *Datapath) Recover(gens []*Generation, emit func(*Event)) (RecoverStats, error) {
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	var st RecoverStats
	var errs []error
	for _, g := range gens {
		// Reading goes on when this fails: removing the pins disarms the
		// generation too, and whatever it counts after the reading is lost
		// then, never reported twice.
		if err := g.disarm(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(gens) > 0 {
		waitForPrograms()
	}
	snaps := make([]*genSnapshot, 0, len(gens))
	for _, g := range gens {
		s, err := g.read()
		if rmErr := os.RemoveAll(g.dir); rmErr != nil {
			errs = append(errs, fmt.Errorf("generation %s: remove pins: %w", g.id, rmErr))
		}
		g.Close()
		if err != nil {
			st.Failed++
			errs = append(errs, err)
			continue
		}
		snaps = append(snaps, s)
	}
	for _, s := range snaps {
		st.Generations++
		errs = append(errs, d.carryCounters(s, &st))
		d.emitRecovered(s, &st, emit)
	}
	return st, errors.Join(errs...)
}

// disarm empties the generation's tail-call table, so that its dispatchers
// pass packets on without counting them, and removes its pin and our
// reference (the last user reference, after which the kernel would empty
// it too).
func (g *Generation) disarm() error {
	var errs []error
	for _, idx := range []uint32{uint32(cIngress), uint32(cEgress)} {
		if err := g.progs.Delete(idx); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("generation %s: empty tail-call table slot %d: %w", g.id, idx, err))
		}
	}
	if err := os.Remove(filepath.Join(g.dir, bpf.NsintMapTcProgs)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("generation %s: unpin tail-call table: %w", g.id, err))
	}
	if err := g.progs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("generation %s: close tail-call table: %w", g.id, err))
	}
	return errors.Join(errs...)
}

// waitForPrograms returns once every BPF program that was running when it
// was called has finished. TC programs run inside RCU read-side sections,
// and MEMBARRIER_CMD_GLOBAL waits for an RCU grace period
// (synchronize_rcu). Where the kernel refuses it (nohz_full CPUs) it sleeps
// instead: a program runs for microseconds.
func waitForPrograms() {
	const membarrierCmdGlobal = 1
	if _, _, errno := unix.Syscall(unix.SYS_MEMBARRIER, membarrierCmdGlobal, 0, 0); errno == 0 {
		return
	}
	time.Sleep(100 * time.Millisecond)
}

// carryCounters adds the generation's port counters to this datapath's
// baselines, for the ports it has too.
func (d *Datapath) carryCounters(s *genSnapshot, st *RecoverStats) error {
	d.countersMu.Lock()
	defer d.countersMu.Unlock()
	var errs []error
	for id, c := range s.ports {
		if c.isZero() {
			continue
		}
		if !d.samePort(id, s) {
			st.BaselineSkipped++
			continue
		}
		if err := d.addBaselineLocked(id, c); err != nil {
			errs = append(errs, err)
		}
		st.BaselinePorts++
	}
	return errors.Join(errs...)
}

// samePort tells whether port id of the generation is port id of this
// datapath: configured in both, for the same interface.
func (d *Datapath) samePort(id uint16, s *genSnapshot) bool {
	if same, ok := s.same[id]; ok {
		return same
	}
	same := false
	if old, ok := s.configs[id]; ok && d.checkID(id) == nil {
		var cur bpf.NsintPortConfig
		if err := d.objs.PortConfigs.Lookup(uint32(id), &cur); err == nil {
			same = cur.Netns == old.Netns && cur.Ifindex == old.Ifindex &&
				cur.Flags&portFlagLocalStack == old.Flags&portFlagLocalStack
		}
	}
	s.same[id] = same
	return same
}

// knownPort is id when this datapath has it (samePort), else 0: unknown.
func (d *Datapath) knownPort(id uint16, s *genSnapshot) uint16 {
	if id == 0 || !d.samePort(id, s) {
		return 0
	}
	return id
}

// emitRecovered turns the generation's unreported counts into events.
func (d *Datapath) emitRecovered(s *genSnapshot, st *RecoverStats, emit func(*Event)) {
	now := time.Now()
	var ev Event
	for _, raw := range s.queued {
		if err := d.decodeEvent(raw, &ev); err != nil {
			st.Malformed++
			continue
		}
		drop := ev.Type == DropEvent
		if !d.samePort(ev.Port, s) {
			if drop {
				st.PortGoneDrops += ev.Packets
			} else {
				st.PortGonePackets += ev.Packets
			}
			continue
		}
		ev.InPort, ev.OutPort = d.knownPort(ev.InPort, s), d.knownPort(ev.OutPort, s)
		emit(&ev)
		st.Queued++
		if drop {
			st.DropReports++
			st.Drops += ev.Packets
		} else {
			st.FlowReports++
			st.Packets += ev.Packets
			st.Bytes += ev.Bytes
		}
	}
	for _, at := range s.order {
		v := s.flows[at]
		if (v.Packets == 0 && v.Bytes == 0) || v.Watched == 0 {
			continue
		}
		k := at.key
		var in, out uint16
		if directionOf(k.Dir) == netif.Ingress {
			if v.Forwarded != 0 { // reported by the egress hook
				continue
			}
			in, out = k.Port, s.localPort(k.Port)
		} else {
			in, out = v.InPort, k.Port
			if in == portLocal {
				in = s.localPort(k.Port)
			}
		}
		if !d.samePort(k.Port, s) {
			st.PortGonePackets += v.Packets
			continue
		}
		ev = Event{
			Type: FlowEvent, Reason: ReasonFlush, Direction: directionOf(k.Dir), Port: k.Port,
			InPort: d.knownPort(in, s), OutPort: d.knownPort(out, s),
			Proto: k.T.Proto, SrcPort: k.T.Sport, DstPort: k.T.Dport,
			InTime: now, OutTime: now, Packets: v.Packets, Bytes: v.Bytes,
		}
		ev.Src, ev.Dst = tupleAddrs(k.T.Family, k.T.Saddr, k.T.Daddr)
		emit(&ev)
		st.FlowReports++
		st.Packets += v.Packets
		st.Bytes += v.Bytes
	}
	for _, dr := range s.drops {
		k, v := dr.key.Fk, dr.state
		if !d.samePort(k.Port, s) {
			st.PortGoneDrops += v.Drops
			continue
		}
		ev = Event{
			Type: DropEvent, Reason: ReasonDrop, Direction: directionOf(k.Dir), Port: k.Port,
			InPort: d.knownPort(v.InPort, s), OutPort: d.knownPort(v.OutPort, s),
			Proto: k.T.Proto, SrcPort: k.T.Sport, DstPort: k.T.Dport,
			InTime: now, OutTime: now, Packets: v.Drops,
			DropReason: dr.key.Reason, DropReasonKnown: v.Flags&evfNoDropReason == 0,
			NonFirstFragment: v.Flags&evfNonFirstFrag != 0,
		}
		ev.Src, ev.Dst = tupleAddrs(k.T.Family, k.T.Saddr, k.T.Daddr)
		emit(&ev)
		st.DropReports++
		st.Drops += v.Drops
	}
	st.EvictedPackets += s.evicted
}
