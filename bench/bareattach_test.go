package bench

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/nsint/nsint/internal/countprog"
	"github.com/nsint/nsint/internal/netnstest"
)

// benchScaleBare is the attach-latency floor next to an agent run: the same
// creation, with no agent, and each namespace's bare listener attaching a
// do-nothing program with TCX at the ingress and the egress of each link
// the moment it sees it (one goroutine per namespace, so as many attaches
// in flight as the kernel lets run). It returns seen → attached of the
// second hook, per interface: what any TCX attacher pays under this load.
// On the kernels with TCX every attach holds RTNL across a
// synchronize_rcu (the a/b swap of the device's program array), so the
// attaches of all namespaces, the creators' RTNL sections and this floor
// are one queue.
func benchScaleBare(t *testing.T, rate int) map[string]float64 {
	count := envInt("NSINT_BENCH_SCALE_NS", 1000)
	dir := netnstest.Dir(t)
	prog, err := countprog.Load("bench_bare", countprog.Next)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })

	var mu sync.Mutex
	attached := map[ifaceKey]time.Time{}
	var links []link.Link
	var attachErrs []error
	onSeen := func(ns *netnstest.NS) func(string, int) {
		return func(name string, index int) {
			var ls []link.Link
			err := ns.Do(func() error {
				for _, at := range []ebpf.AttachType{ebpf.AttachTCXIngress, ebpf.AttachTCXEgress} {
					l, err := link.AttachTCX(link.TCXOptions{Interface: index, Program: prog.Prog, Attach: at})
					if err != nil {
						return err
					}
					ls = append(ls, l)
				}
				return nil
			})
			done := time.Now()
			mu.Lock()
			defer mu.Unlock()
			links = append(links, ls...)
			if err != nil {
				attachErrs = append(attachErrs, errors.Join(errors.New(ns.Name+"/"+name), err))
				return
			}
			attached[ifaceKey{ns.Inode, name}] = done
		}
	}
	load0 := loadAvg1()
	c := createScale(t, dir, count, rate, onSeen)
	for _, err := range attachErrs {
		t.Error(err)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	var share, whole []float64
	for k, s := range c.seen {
		if a, ok := attached[k]; ok {
			share = append(share, ms(a.Sub(s)))
			whole = append(whole, ms(a.Sub(c.began[k])))
		}
	}
	if len(share) != len(c.created) {
		t.Fatalf("bare attacher: %d of %d interfaces attached", len(share), len(c.created))
	}
	t.Logf("bare TCX attacher, %d namespaces (%d/s, 0: flat out): created in %v; seen → attached p50 %.1f ms, p99 %.1f ms; creation began → attached p99 %.1f ms; load %.2f → %.2f",
		count, rate, c.createdIn.Round(time.Millisecond), percentile(share, 50), percentile(share, 99), percentile(whole, 99), load0, loadAvg1())
	c.removeAll(t)
	for _, l := range links {
		l.Close()
	}
	return map[string]float64{
		"attach_bare_p99_ms": percentile(share, 99), "attach_bare_p50_ms": percentile(share, 50),
		"attach_bare_create_seconds": c.createdIn.Seconds(),
	}
}
