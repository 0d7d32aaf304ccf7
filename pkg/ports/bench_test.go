package ports

import (
	"sync/atomic"
	"testing"
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
			acquire(b, a, Key{Netns: 1, Ifindex: uint32(i%60000 + 1)})
		}
	})
	b.Run("parallel", func(b *testing.B) {
		a := open(b, b.TempDir(), 65535)
		var n atomic.Uint32
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := a.Acquire(Key{Netns: uint64(i / 60000), Ifindex: i}); err != nil {
					b.Skip("range used up: ", err)
				}
			}
		})
	})
}
