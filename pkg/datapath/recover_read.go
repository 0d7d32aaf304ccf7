package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// genSnapshot is what Recover read from a disarmed generation.
type genSnapshot struct {
	id string
	// configs: the ports configured, by ID.
	configs map[uint16]bpf.NsintPortConfig
	// flows: each entry's unreported counts, the last-flow slots' added
	// (as sweep_slot would have); order is the order they were read in.
	flows map[flowAt]*bpf.NsintFlowState
	order []flowAt
	drops []dropEntry // entries holding folded drops
	// ports: each port's counters, the slots' packets and the generation's
	// own baseline included.
	ports   map[uint16]Counters
	evicted uint64 // slot packets whose flow entry was gone
	same    map[uint16]bool
	// queued: the records of the generation's report ring that no reader
	// read, in the order they were written.
	queued [][]byte
}

// flowAt is a flow entry: one per flow in the shared table, one per flow and
// CPU in the per-CPU one.
type flowAt struct {
	key bpf.NsintFlowKey
	cpu int // -1: the shared table
}

type dropEntry struct {
	key   bpf.NsintDropKey
	state bpf.NsintDropState
}

// read reads the generation's counts; its maps must be quiescent (disarm).
func (g *Generation) read() (*genSnapshot, error) {
	s := &genSnapshot{
		id:      g.id,
		configs: map[uint16]bpf.NsintPortConfig{},
		flows:   map[flowAt]*bpf.NsintFlowState{},
		ports:   map[uint16]Counters{},
		same:    map[uint16]bool{},
	}
	for _, step := range []struct {
		what string
		read func(*genSnapshot) error
	}{
		{bpf.NsintMapPortConfigs, g.readConfigs},
		{bpf.NsintMapFlows, g.readFlows},
		{bpf.NsintMapCpuState, g.readSlots}, // after the flows: slots add to entries
		{bpf.NsintMapDropFlows, g.readDrops},
		{bpf.NsintMapPortCounters, g.readPortCounters},
		{baselinePin, g.readBaseline},
		{bpf.NsintMapEvents, g.readRing},
	} {
		if err := step.read(s); err != nil {
			return nil, fmt.Errorf("generation %s: read map %s: %w", g.id, step.what, err)
		}
	}
	return s, nil
}

// localPort is local_port_of in the generation: the local-stack port of
// port id's namespace, 0 when unknown.
func (s *genSnapshot) localPort(id uint16) uint16 { return s.configs[id].LocalPort }

func (s *genSnapshot) addPort(id uint16, dir uint8, c DirCounters) {
	pc := s.ports[id]
	if directionOf(dir&1) == netif.Ingress {
		pc.Ingress.add(c.Packets, c.Bytes, c.Drops)
	} else {
		pc.Egress.add(c.Packets, c.Bytes, c.Drops)
	}
	s.ports[id] = pc
}

func (g *Generation) readConfigs(s *genSnapshot) error {
	var (
		id uint32
		pc bpf.NsintPortConfig
	)
	it := g.portConfigs.Iterate()
	for it.Next(&id, &pc) {
		if pc.Netns != 0 && id > 0 && id <= 0xffff {
			s.configs[uint16(id)] = pc
		}
	}
	return it.Err()
}

func (g *Generation) readFlows(s *genSnapshot) error {
	var key bpf.NsintFlowKey
	add := func(cpu int, v bpf.NsintFlowState) {
		if v.LastReportNs == 0 { // per-CPU table: this CPU never counted the flow
			return
		}
		at := flowAt{key, cpu}
		s.flows[at] = &v
		s.order = append(s.order, at)
	}
	it := g.flows.Iterate()
	if g.flows.Type() == ebpf.LRUCPUHash {
		var per []bpf.NsintFlowState
		for it.Next(&key, &per) {
			for cpu, v := range per {
				add(cpu, v)
			}
		}
		return it.Err()
	}
	var v bpf.NsintFlowState
	for it.Next(&key, &v) {
		add(-1, v)
	}
	return it.Err()
}

// readSlots hands each CPU's last-flow slots to their flow's entry and
// port, as sweep_slot does in the kernel.
func (g *Generation) readSlots(s *genSnapshot) error {
	perCPU := g.flows.Type() == ebpf.LRUCPUHash
	var cs bpf.NsintCpuState
	for cpu := range int(g.cpuState.MaxEntries()) {
		if err := g.cpuState.Lookup(uint32(cpu), &cs); err != nil {
			return fmt.Errorf("CPU %d: %w", cpu, err)
		}
		for _, f := range cs.Flow {
			if f.Packets == 0 {
				continue
			}
			// PortCountersOf counts a slot's packets for its port.
			s.addPort(f.Key.Port, f.Key.Dir, DirCounters{Packets: f.Packets, Bytes: f.Bytes})
			if f.Valid == 0 {
				continue
			}
			at := flowAt{f.Key, -1}
			if perCPU {
				at.cpu = cpu
			}
			st := s.flows[at]
			if st == nil {
				s.evicted += f.Packets
				continue
			}
			st.Packets += f.Packets
			st.Bytes += f.Bytes
		}
	}
	return nil
}

func (g *Generation) readDrops(s *genSnapshot) error {
	var e dropEntry
	it := g.dropFlows.Iterate()
	for it.Next(&e.key, &e.state) {
		if e.state.Drops != 0 {
			s.drops = append(s.drops, e)
		}
	}
	return it.Err()
}

func (g *Generation) readPortCounters(s *genSnapshot) error {
	var (
		id  uint32
		per []bpf.NsintPortCounters
	)
	it := g.portCounters.Iterate()
	for it.Next(&id, &per) {
		if id == 0 || id > 0xffff {
			continue
		}
		for _, v := range per {
			for dir := range v.Dir {
				c := DirCounters{Packets: v.Dir[dir].Packets, Bytes: v.Dir[dir].Bytes, Drops: v.Dir[dir].Drops}
				if c != (DirCounters{}) {
					s.addPort(uint16(id), uint8(dir), c)
				}
			}
		}
	}
	return it.Err()
}

func (g *Generation) readBaseline(s *genSnapshot) error {
	var (
		id uint32
		b  portBaseline
	)
	it := g.baseline.Iterate()
	for it.Next(&id, &b) {
		if b != (portBaseline{}) && id > 0 && id <= 0xffff {
			c := s.ports[uint16(id)]
			c.addCounters(b.counters())
			s.ports[uint16(id)] = c
		}
	}
	return it.Err()
}

// readRing takes the records left in the generation's report ring.
func (g *Generation) readRing(s *genSnapshot) error {
	rr, err := ringbuf.NewReader(g.events)
	if err != nil {
		return err
	}
	defer rr.Close()
	// Nothing writes to the ring any more (disarm): read what it holds.
	rr.SetDeadline(time.Now())
	var rec ringbuf.Record
	for {
		err := rr.ReadInto(&rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil
		}
		if err != nil {
			return err
		}
		s.queued = append(s.queued, bytes.Clone(rec.RawSample))
	}
}
