package ifacewatch

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/nsint/nsint/internal/netnstest"
)

// Run with: go test -run '^$' -bench . -benchtime 1x ./ifacewatch/
// Both need root; they create real namespaces under a temporary directory.

// recorder consumes events and remembers when each one arrived.
type recorder struct {
	mu      sync.Mutex
	arrived map[string]time.Time // "<netns>/<ifname>" of IfaceAdded, "<netns>" of NetnsAdded
	added   int
	cond    chan struct{}
}

func runRecorded(b *testing.B, cfg Config) (*Watcher, *recorder, func()) {
	w, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r := &recorder{arrived: make(map[string]time.Time), cond: make(chan struct{}, 1)}
	events := make(chan Event, 1024)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, events) }()
	go func() {
		defer close(done)
		for ev := range events {
			now := time.Now()
			r.mu.Lock()
			switch ev.Kind {
			case NetnsAdded:
				r.arrived[fmt.Sprint(ev.Netns.ID)] = now
			case IfaceAdded:
				r.arrived[fmt.Sprintf("%d/%s", ev.Netns.ID, ev.Iface.Name)] = now
				r.added++
			}
			r.mu.Unlock()
			select {
			case r.cond <- struct{}{}:
			default:
			}
		}
	}()
	return w, r, func() { cancel(); <-done }
}

func (r *recorder) when(key string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.arrived[key]
	return t, ok
}

func (r *recorder) waitAdded(b *testing.B, n int) {
	deadline := time.After(5 * time.Minute)
	for {
		r.mu.Lock()
		got := r.added
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.cond:
		case <-deadline:
			b.Fatalf("only %d of %d interfaces reported", got, n)
		}
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkDiscoveryLatency: 200 namespaces created one after the other while
// the watcher runs, each then given a veth pair. Reported, p50 and p99:
//   - netns_*: from the bind mount being in place (netnstest.Create returned)
//     to the delivery of NetnsAdded;
//   - iface_*: from RTM_NEWLINK's reply (LinkAdd returned) to the delivery
//     of the IfaceAdded of the pair's second end (0 when it came first);
//   - e2e_*: from the start of the namespace's creation to that delivery.
func BenchmarkDiscoveryLatency(b *testing.B) {
	netnstest.RequireRoot(b)
	const n = 200
	for b.Loop() {
		dir := b.TempDir()
		p := netnstest.Prefix(b)
		w, rec, stop := runRecorded(b, Config{Dirs: []string{dir}})
		var nsLat, ifLat, e2e []time.Duration
		var made []*netnstest.NS
		wait := func(key string) time.Time {
			for {
				if at, ok := rec.when(key); ok {
					return at
				}
				<-rec.cond
			}
		}
		for i := range n {
			t0 := time.Now()
			ns, err := netnstest.Create(dir, fmt.Sprintf("%s-%d", p, i))
			if err != nil {
				b.Fatal(err)
			}
			tNs := time.Now()
			made = append(made, ns)
			h, err := ns.Handle()
			if err != nil {
				b.Fatal(err)
			}
			err = h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"})
			tIf := time.Now()
			h.Close()
			if err != nil {
				b.Fatal(err)
			}
			nsLat = append(nsLat, max(0, wait(fmt.Sprint(ns.Inode)).Sub(tNs)))
			at := wait(fmt.Sprintf("%d/v1", ns.Inode))
			ifLat = append(ifLat, max(0, at.Sub(tIf)))
			e2e = append(e2e, at.Sub(t0))
		}
		for _, m := range []struct {
			name string
			d    []time.Duration
		}{{"netns", nsLat}, {"iface", ifLat}, {"e2e", e2e}} {
			b.ReportMetric(ms(percentile(m.d, 0.50)), m.name+"_p50_ms")
			b.ReportMetric(ms(percentile(m.d, 0.99)), m.name+"_p99_ms")
		}
		b.ReportMetric(float64(w.Stats().Recoveries), "recoveries")
		stop()
		for _, ns := range made {
			ns.Remove()
		}
	}
}

// BenchmarkDiscovery1000: 1 000 namespaces with a veth pair each (2
// interfaces, plus lo) exist before Run; time until all 3 000 interfaces are
// delivered, and what the watcher holds then: RSS and Go heap growth, fds,
// goroutines.
func BenchmarkDiscovery1000(b *testing.B) {
	netnstest.RequireRoot(b)
	const n = 1000
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		p := netnstest.Prefix(b)
		var made []*netnstest.NS
		for i := range n {
			ns, err := netnstest.Create(dir, fmt.Sprintf("%s-%d", p, i))
			if err != nil {
				b.Fatal(err)
			}
			made = append(made, ns)
			addVeth(b, ns, "v0", "v1")
		}
		runtime.GC()
		rss0, heap0, fds0, g0 := rssKiB(b), heapKiB(), countFds(b), runtime.NumGoroutine()
		b.StartTimer()
		t0 := time.Now()
		w, rec, stop := runRecorded(b, Config{Dirs: []string{dir}})
		rec.waitAdded(b, 3*n)
		elapsed := time.Since(t0)
		b.StopTimer()
		runtime.GC()
		b.ReportMetric(elapsed.Seconds(), "all_reported_s")
		b.ReportMetric(float64(rssKiB(b)-rss0)/1024, "rss_growth_MiB")
		b.ReportMetric(float64(heapKiB()-heap0)/1024, "heap_growth_MiB")
		b.ReportMetric(float64(countFds(b)-fds0), "fds")
		b.ReportMetric(float64(runtime.NumGoroutine()-g0), "goroutines")
		b.ReportMetric(float64(w.Stats().Recoveries), "recoveries")
		b.ReportMetric(float64(w.Stats().NsidLookups), "nsid_lookups")
		stop()
		for _, ns := range made {
			ns.Remove()
		}
		b.StartTimer()
	}
}

func rssKiB(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func heapKiB() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse / 1024)
}

func countFds(tb testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// BenchmarkDiscovery1000Live: the watcher runs while 1 000 namespaces with a
// veth pair each are created as fast as one goroutine can; reported: the
// creation time, the time until all 3 000 interfaces are delivered, and the
// lag between the last creation and the last delivery.
func BenchmarkDiscovery1000Live(b *testing.B) {
	netnstest.RequireRoot(b)
	const n = 1000
	for b.Loop() {
		dir := b.TempDir()
		p := netnstest.Prefix(b)
		w, rec, stop := runRecorded(b, Config{Dirs: []string{dir}})
		t0 := time.Now()
		var made []*netnstest.NS
		for i := range n {
			ns, err := netnstest.Create(dir, fmt.Sprintf("%s-%d", p, i))
			if err != nil {
				b.Fatal(err)
			}
			made = append(made, ns)
			addVeth(b, ns, "v0", "v1")
		}
		created := time.Since(t0)
		rec.waitAdded(b, 3*n)
		all := time.Since(t0)
		b.ReportMetric(created.Seconds(), "created_s")
		b.ReportMetric(all.Seconds(), "all_reported_s")
		b.ReportMetric(ms(all-created), "lag_ms")
		b.ReportMetric(float64(w.Stats().Recoveries), "recoveries")
		stop()
		for _, ns := range made {
			ns.Remove()
		}
	}
}
