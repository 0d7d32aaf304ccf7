package ports

import (
	"sync/atomic"
	"testing"

	"github.com/nsint/nsint/pkg/netif"
)

// BenchmarkAcquire measures one new assignment including its durable write,
// serially and with concurrent callers sharing writes.
func BenchmarkAcquire(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		a := open(b, b.TempDir(), 65535)
		for i := 0; b.Loop(); i++ {
			if i%60000 == 59999 {
				b.StopTimer()
				a = open(b, b.TempDir(), 65535)
				b.StartTimer()
			}
			acquire(b, a, netif.ID{Netns: 1, Ifindex: netif.Ifindex(i%60000 + 1)})
		}
	})
	b.Run("parallel", func(b *testing.B) {
		a := open(b, b.TempDir(), 65535)
		var n atomic.Uint32
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := a.Acquire(netif.ID{Netns: netif.Netns(i / 60000), Ifindex: netif.Ifindex(i)}); err != nil {
					b.Skip("range used up: ", err)
				}
			}
		})
	})
}
