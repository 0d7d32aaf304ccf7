package bench

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/agentproc"
	"github.com/nsint/nsint/internal/netnstest"
	"github.com/nsint/nsint/pkg/ports"
)

// resources is what must come back to its baseline after churn.
type resources struct {
	fds, goroutines int
	attached        int // nsint_ports_attached
	topoPorts       int // ports in the topology
	pins            int // files under <bpffs>/nsint
	stateEntries    int // port IDs in the state directory
	mapEntries      map[string]int
	ours            int // our attachments in the steady pods
}

func (r resources) String() string {
	return fmt.Sprintf("fds %d, goroutines %d, attached %d, topology ports %d, pins %d, state entries %d, map entries %v, our attachments %d",
		r.fds, r.goroutines, r.attached, r.topoPorts, r.pins, r.stateEntries, r.mapEntries, r.ours)
}

func (r resources) equal(o resources) bool {
	if len(r.mapEntries) != len(o.mapEntries) {
		return false
	}
	for k, v := range r.mapEntries {
		if o.mapEntries[k] != v {
			return false
		}
	}
	return r.fds == o.fds && r.goroutines == o.goroutines && r.attached == o.attached && r.topoPorts == o.topoPorts &&
		r.pins == o.pins && r.stateEntries == o.stateEntries && r.ours == o.ours
}

func snapshot(p *agentProc, env *agentEnv, steady []*soakPod) (resources, error) {
	var r resources
	var err error
	if r.fds, err = p.fds(); err != nil {
		return r, err
	}
	g, err := p.metric("go_goroutines")
	if err != nil {
		return r, err
	}
	r.goroutines = int(g)
	a, err := p.metric("nsint_ports_attached")
	if err == nil {
		r.attached = int(a)
	}
	topo, err := p.Topology()
	if err != nil {
		return r, err
	}
	r.topoPorts = len(topo.Ports)
	if r.pins, err = countPins(env.bpffs); err != nil {
		return r, err
	}
	if r.stateEntries, err = stateEntries(env.stateDir); err != nil {
		return r, err
	}
	if r.mapEntries, err = hashMapEntries(p.PID()); err != nil {
		return r, err
	}
	for _, sp := range steady {
		o, err := agentproc.Attachments(sp.ns)
		if err != nil {
			return r, err
		}
		r.ours += len(o)
	}
	return r, nil
}

func countPins(bpffs string) (int, error) {
	n := 0
	err := filepath.WalkDir(filepath.Join(bpffs, "nsint"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			n++
		}
		return nil
	})
	return n, err
}

// stateEntries counts the port IDs the agent's state holds on disk, read
// the way a restarted agent reads them.
func stateEntries(dir string) (int, error) {
	a, err := ports.Open(dir, math.MaxUint16)
	if err != nil {
		return 0, err
	}
	return a.InUse(), nil
}

// hashMapEntries counts the entries of the agent's plain hash maps (found
// through its file descriptors), by map name. LRU maps (flow state) depend
// on traffic and are left out.
func hashMapEntries(pid int) (map[string]int, error) {
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	seen := map[ebpf.MapID]bool{}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil || target != "anon_inode:bpf-map" {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		var typ, id uint64
		for _, l := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(l, "map_type:"); ok {
				typ, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			}
			if v, ok := strings.CutPrefix(l, "map_id:"); ok {
				id, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			}
		}
		if ebpf.MapType(typ) != ebpf.Hash || seen[ebpf.MapID(id)] {
			continue
		}
		seen[ebpf.MapID(id)] = true
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			continue // gone meanwhile
		}
		mi, _ := m.Info()
		n := 0
		key := make([]byte, m.KeySize())
		it := m.Iterate()
		val := make([]byte, m.ValueSize())
		for it.Next(&key, &val) {
			n++
		}
		m.Close()
		name := fmt.Sprint(id)
		if mi != nil && mi.Name != "" {
			name = mi.Name
		}
		out[name] += n
	}
	return out, nil
}

// hasForeign tells whether the foreign cls_bpf filter and TCX program are
// still on dev's ingress in ns.
func hasForeign(ns *netnstest.NS, dev string, tcxProg *ebpf.Program) (cls, tcx bool, err error) {
	h, err := ns.Handle()
	if err != nil {
		return false, false, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return false, false, err
	}
	filters, _ := h.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Name == foreignFilterName && bf.Priority == 7 {
			cls = true
		}
	}
	pi, err := tcxProg.Info()
	if err != nil {
		return cls, false, err
	}
	want, _ := pi.ID()
	err = ns.Do(func() error {
		res, err := link.QueryPrograms(link.QueryOptions{Target: l.Attrs().Index, Attach: ebpf.AttachTCXIngress})
		if err != nil {
			return err
		}
		for _, qp := range res.Programs {
			if qp.ID == want {
				tcx = true
			}
		}
		return nil
	})
	return cls, tcx, err
}
