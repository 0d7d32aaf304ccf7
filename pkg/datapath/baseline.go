package datapath

import (
	"fmt"
	"unsafe"

	"github.com/cilium/ebpf"
)

// A port's baseline is what earlier generations counted for it (Recover):
// PortCountersOf adds it to the kernel's figures, so that a port's totals
// go on across agent restarts. It lives in memory and, once the datapath
// is pinned, in the generation's port_baseline map too, so that the
// generation after the next one still has it. Only user space writes it.

// portBaseline is one port's baseline as the port_baseline map holds it
// (described by baselineLayout).
type portBaseline struct {
	InPackets, InBytes, InDrops uint64
	EgPackets, EgBytes, EgDrops uint64
}

const baselineValueSize = uint32(unsafe.Sizeof(portBaseline{}))

func toBaseline(c Counters) portBaseline {
	return portBaseline{c.Ingress.Packets, c.Ingress.Bytes, c.Ingress.Drops, c.Egress.Packets, c.Egress.Bytes, c.Egress.Drops}
}

func (b portBaseline) counters() Counters {
	return Counters{
		Ingress: DirCounters{Packets: b.InPackets, Bytes: b.InBytes, Drops: b.InDrops},
		Egress:  DirCounters{Packets: b.EgPackets, Bytes: b.EgBytes, Drops: b.EgDrops},
	}
}

func (c *Counters) addCounters(o Counters) {
	c.Ingress.add(o.Ingress.Packets, o.Ingress.Bytes, o.Ingress.Drops)
	c.Egress.add(o.Egress.Packets, o.Egress.Bytes, o.Egress.Drops)
}

func (c Counters) isZero() bool { return c == Counters{} }

func newBaselineMap(maxPorts uint32) (*ebpf.Map, error) {
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "nsint_baseline",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  baselineValueSize,
		MaxEntries: maxPorts,
	})
	if err != nil {
		return nil, fmt.Errorf("create map %s: %w", baselinePin, err)
	}
	return m, nil
}

func checkBaselineMap(m *ebpf.Map) error {
	if m.Type() != ebpf.Array || m.KeySize() != 4 || m.ValueSize() != baselineValueSize {
		return fmt.Errorf("%w: %s with %d-byte keys and %d-byte values, this build's is %s with 4 and %d",
			ErrGenerationIncompatible, m.Type(), m.KeySize(), m.ValueSize(), ebpf.Array, baselineValueSize)
	}
	return nil
}

func putBaseline(m *ebpf.Map, id uint16, c Counters) error {
	if uint32(id) >= m.MaxEntries() {
		return nil // a port ID this datapath cannot have
	}
	v := toBaseline(c)
	if err := m.Put(uint32(id), &v); err != nil {
		return fmt.Errorf("port %d: write baseline: %w", id, err)
	}
	return nil
}

// addBaselineLocked adds c to port id's baseline; countersMu is held.
func (d *Datapath) addBaselineLocked(id uint16, c Counters) error {
	if d.baseline == nil {
		d.baseline = map[uint16]Counters{}
	}
	b := d.baseline[id]
	b.addCounters(c)
	d.baseline[id] = b
	if d.gen == nil {
		return nil
	}
	return putBaseline(d.gen.baseline, id, b)
}

// clearBaselineLocked forgets port id's baseline (DeletePort); countersMu
// is held.
func (d *Datapath) clearBaselineLocked(id uint16) error {
	if _, ok := d.baseline[id]; !ok {
		return nil
	}
	delete(d.baseline, id)
	if d.gen == nil {
		return nil
	}
	return putBaseline(d.gen.baseline, id, Counters{})
}
