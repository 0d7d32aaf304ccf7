package datapath

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/netif"
)

// Port flags (C enum nsint_port_flags), as port_config.flags holds them.
const (
	portFlagBridge     = uint8(bpf.NsintNsintPortFlagsNSINT_PORT_BRIDGE)
	portFlagLocalStack = uint8(bpf.NsintNsintPortFlagsNSINT_PORT_LOCAL_STACK)
	portFlagHasMAC     = uint8(bpf.NsintNsintPortFlagsNSINT_PORT_HAS_MAC)
)

// PortInfo is what the programs know about a port.
type PortInfo struct {
	// ID is the port's interface: its namespace and its ifindex there;
	// ifindex 0 for a local-stack port.
	netif.ID
	// LocalPort is the local-stack port of the namespace (the "CPU port"
	// that reports name for traffic starting or ending in its stack).
	LocalPort uint16
	// BridgePort marks a bridge member: frames not addressed to BridgeMAC
	// are forwarded, not delivered to the namespace's stack.
	BridgePort bool
	BridgeMAC  net.HardwareAddr
	// MAC is the device's own Ethernet address, when it has one: a unicast
	// frame arriving for another address goes past the stack (a macvlan
	// parent's children, a promiscuous device) and is reported at ingress
	// with no egress port instead of as delivered.
	MAC net.HardwareAddr
	// LocalStack marks the namespace's local-stack port itself.
	LocalStack bool
}

func (d *Datapath) checkID(id uint16) error {
	if id == 0 || uint32(id) >= d.cfg.MaxPorts {
		return fmt.Errorf("port %d outside 1..%d", id, d.cfg.MaxPorts-1)
	}
	return nil
}

func portKey(p PortInfo) bpf.NsintPortKey {
	k := bpf.NsintPortKey{Netns: uint64(p.Netns), Ifindex: uint32(p.Ifindex)}
	if p.LocalStack {
		k.Ifindex = 0
	}
	return k
}

// SetPort configures port id: its identity (namespace, ifindex) for the drop
// hook and its local-stack port and bridge role for report decisions.
func (d *Datapath) SetPort(id uint16, p PortInfo) error {
	if err := d.checkID(id); err != nil {
		return err
	}
	if p.Netns == 0 || p.Netns > 0xffffffff {
		return fmt.Errorf("port %d: invalid netns inode %d", id, p.Netns)
	}
	if !p.LocalStack && p.Ifindex == 0 {
		return fmt.Errorf("port %d: ifindex 0 on a port that is not a local-stack port", id)
	}
	pc := bpf.NsintPortConfig{Netns: uint64(p.Netns), Ifindex: uint32(p.Ifindex), LocalPort: p.LocalPort}
	if p.LocalStack {
		pc.Flags |= portFlagLocalStack
		pc.Ifindex = 0
		if pc.LocalPort == 0 {
			pc.LocalPort = id
		}
	}
	switch {
	case p.BridgePort:
		if len(p.BridgeMAC) != 6 {
			return fmt.Errorf("port %d: bridge port needs a 6-byte bridge MAC, got %q", id, p.BridgeMAC)
		}
		pc.Flags |= portFlagBridge
		copy(pc.Mac[:], p.BridgeMAC)
	case len(p.MAC) == 6 && !p.LocalStack:
		pc.Flags |= portFlagHasMAC
		copy(pc.Mac[:], p.MAC)
	}
	if err := d.objs.PortConfigs.Put(uint32(id), &pc); err != nil {
		return fmt.Errorf("port %d: write config: %w", id, err)
	}
	key := portKey(p)
	if err := d.objs.PortIds.Put(&key, uint32(id)); err != nil {
		return fmt.Errorf("port %d: index (netns %d, ifindex %d): %w", id, key.Netns, key.Ifindex, err)
	}
	return nil
}

// DeletePort removes port id (configured with p) and clears its counters,
// its baseline (Recover) included. Its flow state ages out of the LRU
// tables.
func (d *Datapath) DeletePort(id uint16, p PortInfo) error {
	if err := d.checkID(id); err != nil {
		return err
	}
	var errs []error
	key := portKey(p)
	var cur uint32
	switch err := d.objs.PortIds.Lookup(&key, &cur); {
	case errors.Is(err, ebpf.ErrKeyNotExist):
	case err != nil:
		errs = append(errs, fmt.Errorf("port %d: read index: %w", id, err))
	case cur == uint32(id):
		if err := d.objs.PortIds.Delete(&key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("port %d: delete index: %w", id, err))
		}
	}
	if err := d.objs.PortConfigs.Put(uint32(id), &bpf.NsintPortConfig{}); err != nil {
		errs = append(errs, fmt.Errorf("port %d: clear config: %w", id, err))
	}
	zero := make([]bpf.NsintPortCounters, d.possibleCPUs())
	if err := d.objs.PortCounters.Put(uint32(id), zero); err != nil {
		errs = append(errs, fmt.Errorf("port %d: clear counters: %w", id, err))
	}
	d.countersMu.Lock()
	delete(d.countersFloor, id)
	errs = append(errs, d.clearBaselineLocked(id))
	d.countersMu.Unlock()
	return errors.Join(errs...)
}

// DirCounters are one direction's totals of a port.
type DirCounters struct {
	Packets uint64 // GSO segments counted individually
	Bytes   uint64
	Drops   uint64 // kfree_skb drops attributed to the port
	// Flowless counts the packets (of Packets) that are in no flow: not
	// IP, or truncated. No report carries them.
	Flowless uint64
}

// Counters are a port's totals since SetPort, summed over CPUs, with what
// earlier generations of the datapath counted for it (Recover).
type Counters struct {
	Ingress DirCounters
	Egress  DirCounters
}

// PortCounters reads port id's counters (see PortCountersOf).
func (d *Datapath) PortCounters(id uint16) (Counters, error) {
	c, err := d.PortCountersOf([]uint16{id})
	if err != nil {
		return Counters{}, err
	}
	return c[0], nil
}

// PortCountersOf reads the counters of ports ids, in that order: the
// kernel's per-CPU counters, then the packets and bytes the CPUs' last-flow
// slots hold for the port and have not handed over yet (the fast path
// counts a packet only there; flow_cache_flush moves it on), plus what
// earlier generations counted for it (Recover). In that order a
// packet is never counted twice: a flush empties the slot before it adds to
// the counters. A flush between the two reads hides its packets from one
// reading, so each figure is also held to at least what it read before.
func (d *Datapath) PortCountersOf(ids []uint16) ([]Counters, error) {
	out := make([]Counters, len(ids))
	var per []bpf.NsintPortCounters
	for i, id := range ids {
		if err := d.checkID(id); err != nil {
			return nil, err
		}
		if err := d.objs.PortCounters.Lookup(uint32(id), &per); err != nil {
			return nil, fmt.Errorf("port %d: read counters: %w", id, err)
		}
		c := &out[i]
		for _, v := range per {
			c.Ingress.add(v.Dir[cIngress].Packets, v.Dir[cIngress].Bytes, v.Dir[cIngress].Drops)
			c.Egress.add(v.Dir[cEgress].Packets, v.Dir[cEgress].Bytes, v.Dir[cEgress].Drops)
			c.Ingress.Flowless += v.Dir[cIngress].Flowless
			c.Egress.Flowless += v.Dir[cEgress].Flowless
		}
	}
	held, err := d.slotCounts()
	if err != nil {
		return nil, err
	}
	d.countersMu.Lock()
	defer d.countersMu.Unlock()
	for i, id := range ids {
		c := &out[i]
		h := held[id]
		c.Ingress.add(h[cIngress].Packets, h[cIngress].Bytes, 0)
		c.Egress.add(h[cEgress].Packets, h[cEgress].Bytes, 0)
		c.addCounters(d.baseline[id])
		floor := d.countersFloor[id]
		c.Ingress.atLeast(floor.Ingress)
		c.Egress.atLeast(floor.Egress)
		d.countersFloor[id] = *c
	}
	return out, nil
}

// slotCounts sums what the CPUs' last-flow slots hold, by port and direction.
func (d *Datapath) slotCounts() (map[uint16][2]DirCounters, error) {
	held := map[uint16][2]DirCounters{}
	var st bpf.NsintCpuState
	for cpu := range d.possibleCPUs() {
		if err := d.objs.CpuState.Lookup(uint32(cpu), &st); err != nil {
			return nil, fmt.Errorf("read CPU %d state: %w", cpu, err)
		}
		for _, f := range st.Flow {
			if f.Packets == 0 {
				continue
			}
			h := held[f.Key.Port]
			h[f.Key.Dir&1].add(f.Packets, f.Bytes, 0)
			held[f.Key.Port] = h
		}
	}
	return held, nil
}

func (c *DirCounters) add(packets, bytes, drops uint64) {
	c.Packets += packets
	c.Bytes += bytes
	c.Drops += drops
}

func (c *DirCounters) atLeast(floor DirCounters) {
	c.Packets = max(c.Packets, floor.Packets)
	c.Bytes = max(c.Bytes, floor.Bytes)
	c.Drops = max(c.Drops, floor.Drops)
	c.Flowless = max(c.Flowless, floor.Flowless)
}
