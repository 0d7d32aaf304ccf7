package datapath

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/nsint/nsint/bpf"
	"github.com/nsint/nsint/pkg/watchlist"
)

// compileRule lays a watchlist rule out as the programs read it.
func compileRule(r watchlist.Rule) (bpf.NsintRule, error) {
	out := bpf.NsintRule{Proto: r.Proto}
	fam := uint8(0)
	for _, p := range []netip.Prefix{r.Src, r.Dst} {
		if !p.IsValid() {
			continue
		}
		f := uint8(6)
		if p.Addr().Is4() {
			f = 4
		}
		if fam != 0 && fam != f {
			return out, fmt.Errorf("watch rule %+v: source and destination of different families", r)
		}
		fam = f
	}
	out.Family = fam
	out.Src, out.SrcMask = compilePrefix(r.Src)
	out.Dst, out.DstMask = compilePrefix(r.Dst)
	out.SportLo, out.SportHi = compileRange(r.SrcPort)
	out.DportLo, out.DportHi = compileRange(r.DstPort)
	if out.SportLo > out.SportHi || out.DportLo > out.DportHi {
		return out, fmt.Errorf("watch rule %+v: port range first after last", r)
	}
	return out, nil
}

// compilePrefix lays the prefix out as the programs hold addresses: 16 bytes
// in network order, IPv4 in the first four, read as native-endian words.
func compilePrefix(p netip.Prefix) (addr, mask [4]uint32) {
	if !p.IsValid() {
		return addr, mask
	}
	p = p.Masked()
	var a, m [16]byte
	if p.Addr().Is4() {
		a4 := p.Addr().As4()
		copy(a[:], a4[:])
	} else {
		a = p.Addr().As16()
	}
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	for i := range 4 {
		addr[i] = binary.NativeEndian.Uint32(a[4*i:])
		mask[i] = binary.NativeEndian.Uint32(m[4*i:])
	}
	return addr, mask
}

func compileRange(r watchlist.PortRange) (lo, hi uint16) {
	if r.Any() {
		return 0, 0xffff
	}
	return r.Lo, r.Hi
}

// SetWatchlist replaces the in-kernel watchlist; an empty list reports
// every flow. For ICMP and ICMPv6 a rule's source "port" is type<<8|code and
// its destination "port" the echo identifier, as in the flow key. New flows see it at once, existing flows at their next
// refresh (the verdict is cached with the list's generation).
func (d *Datapath) SetWatchlist(rules []watchlist.Rule) error {
	if len(rules) > watchlist.MaxRules {
		return fmt.Errorf("watchlist: %d rules, at most %d", len(rules), watchlist.MaxRules)
	}
	compiled := make([]bpf.NsintRule, len(rules))
	for i, r := range rules {
		c, err := compileRule(r)
		if err != nil {
			return err
		}
		compiled[i] = c
	}
	d.watchMu.Lock()
	defer d.watchMu.Unlock()
	for i := range compiled {
		if err := d.objs.WatchRules.Put(uint32(i), &compiled[i]); err != nil {
			return fmt.Errorf("watchlist: write rule %d: %w", i, err)
		}
	}
	var meta bpf.NsintWatchMeta
	if err := d.objs.WatchMeta.Lookup(uint32(0), &meta); err != nil {
		return fmt.Errorf("watchlist: read generation: %w", err)
	}
	meta.Count = uint32(len(compiled))
	meta.Generation++
	if err := d.objs.WatchMeta.Put(uint32(0), &meta); err != nil {
		return fmt.Errorf("watchlist: publish generation %d: %w", meta.Generation, err)
	}
	return nil
}
