package datapath

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"

	"github.com/nsint/nsint/bpf"
)

// Port flags; they match the C enum nsint_port_flags.
const (
	portFlagBridge     = 1 << 0
	portFlagLocalStack = 1 << 1
)

// PortInfo is what the programs know about a port.
type PortInfo struct {
	// NetnsInode is the nsfs inode of the port's network namespace.
	NetnsInode uint64
	// Ifindex of the interface in that namespace; 0 for a local-stack port.
	Ifindex uint32
	// LocalPort is the local-stack port of the namespace (the "CPU port"
	// that reports name for traffic starting or ending in its stack).
	LocalPort uint16
	// BridgePort marks a bridge member: frames not addressed to BridgeMAC
	// are forwarded, not delivered to the namespace's stack.
	BridgePort bool
	BridgeMAC  net.HardwareAddr
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
	k := bpf.NsintPortKey{Netns: p.NetnsInode, Ifindex: p.Ifindex}
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
	if p.NetnsInode == 0 || p.NetnsInode > 0xffffffff {
		return fmt.Errorf("port %d: invalid netns inode %d", id, p.NetnsInode)
	}
	if !p.LocalStack && p.Ifindex == 0 {
		return fmt.Errorf("port %d: ifindex 0 on a port that is not a local-stack port", id)
	}
	pc := bpf.NsintPortConfig{Netns: p.NetnsInode, Ifindex: p.Ifindex, LocalPort: p.LocalPort}
	if p.LocalStack {
		pc.Flags |= portFlagLocalStack
		pc.Ifindex = 0
		if pc.LocalPort == 0 {
			pc.LocalPort = id
		}
	}
	if p.BridgePort {
		if len(p.BridgeMAC) != 6 {
			return fmt.Errorf("port %d: bridge port needs a 6-byte bridge MAC, got %q", id, p.BridgeMAC)
		}
		pc.Flags |= portFlagBridge
		copy(pc.BridgeMac[:], p.BridgeMAC)
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

// DeletePort removes port id (configured with p) and clears its counters.
// Its flow state ages out of the LRU tables.
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
	zero := make([]bpf.NsintPortCounters, ebpf.MustPossibleCPU())
	if err := d.objs.PortCounters.Put(uint32(id), zero); err != nil {
		errs = append(errs, fmt.Errorf("port %d: clear counters: %w", id, err))
	}
	return errors.Join(errs...)
}

// DirCounters are one direction's totals of a port.
type DirCounters struct {
	Packets uint64 // GSO segments counted individually
	Bytes   uint64
	Drops   uint64 // kfree_skb drops attributed to the port
}

// Counters are a port's totals since SetPort, summed over CPUs.
type Counters struct {
	Ingress DirCounters
	Egress  DirCounters
}

// PortCounters reads port id's counters.
func (d *Datapath) PortCounters(id uint16) (Counters, error) {
	if err := d.checkID(id); err != nil {
		return Counters{}, err
	}
	var per []bpf.NsintPortCounters
	if err := d.objs.PortCounters.Lookup(uint32(id), &per); err != nil {
		return Counters{}, fmt.Errorf("port %d: read counters: %w", id, err)
	}
	var c Counters
	for _, v := range per {
		c.Ingress.Packets += v.Dir[Ingress].Packets
		c.Ingress.Bytes += v.Dir[Ingress].Bytes
		c.Ingress.Drops += v.Dir[Ingress].Drops
		c.Egress.Packets += v.Dir[Egress].Packets
		c.Egress.Bytes += v.Dir[Egress].Bytes
		c.Egress.Drops += v.Dir[Egress].Drops
	}
	return c, nil
}
