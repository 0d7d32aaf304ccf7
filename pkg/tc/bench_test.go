package tc

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nsint/nsint/pkg/netif"
)

// Run with -benchtime=1x: every iteration attaches to interfaces that have
// nothing of ours yet, then detaches with the timer stopped.

// BenchmarkAttachLatency measures one interface at a time, from the call to
// both hooks attached, over 200 interfaces in 100 namespaces.
func BenchmarkAttachLatency(b *testing.B) {
	for _, mode := range []Mode{ModeTCX, ModeLegacy} {
		b.Run(mode.String(), func(b *testing.B) {
			if mode == ModeTCX {
				requireTCX(b)
			}
			_, _, targets := manyInterfaces(b, 100)
			prog := newCounter(b, "nsint_bench")
			a := newAttacher(b, Config{Mode: mode, PinDir: privateBPFFS(b)})
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				for _, tg := range targets {
					start := time.Now()
					for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
						if err := a.Attach(tg, dir, prog.prog); err != nil {
							b.Fatal(err)
						}
					}
					lat = append(lat, time.Since(start))
				}
				b.StopTimer()
				detachAll(b, a, targets)
				b.StartTimer()
			}
			reportPercentiles(b, lat)
		})
	}
}

// BenchmarkAttach1000Cold attaches both hooks of 1 000 interfaces (500
// namespaces × 2 veth ends) from cold with 8 callers, as the agent does at
// start, then does it again with a new Attacher (a restart: every program
// replaced in place).
func BenchmarkAttach1000Cold(b *testing.B) {
	for _, mode := range []Mode{ModeTCX, ModeLegacy} {
		b.Run(mode.String(), func(b *testing.B) {
			if mode == ModeTCX {
				requireTCX(b)
			}
			_, _, targets := manyInterfaces(b, 500)
			prog := newCounter(b, "nsint_bench")
			cfg := Config{Mode: mode, PinDir: privateBPFFS(b)}
			var cold, restart time.Duration
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				a := newAttacher(b, cfg)
				start := time.Now()
				lat = append(lat, attachTimed(b, a, targets, prog, 8)...)
				cold += time.Since(start)
				b.StopTimer()
				start = time.Now()
				attachTimed(b, newAttacher(b, cfg), targets, prog, 8)
				restart += time.Since(start)
				detachAll(b, a, targets)
				b.StartTimer()
			}
			b.ReportMetric(cold.Seconds()/float64(b.N), "cold-s")
			b.ReportMetric(restart.Seconds()/float64(b.N), "restart-s")
			reportPercentiles(b, lat)
		})
	}
}

// attachTimed is attachAll that returns each interface's latency.
func attachTimed(b *testing.B, a *Attacher, targets []Target, prog *counter, workers int) []time.Duration {
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	next := make(chan Target)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tg := range next {
				start := time.Now()
				for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
					if err := a.Attach(tg, dir, prog.prog); err != nil {
						b.Error(err)
					}
				}
				d := time.Since(start)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}
	for _, tg := range targets {
		next <- tg
	}
	close(next)
	wg.Wait()
	return lat
}

func detachAll(b *testing.B, a *Attacher, targets []Target) {
	for _, tg := range targets {
		for _, dir := range []netif.Direction{netif.Ingress, netif.Egress} {
			if err := a.Detach(tg, dir); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(0, "ns/op")
}
