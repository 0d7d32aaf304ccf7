package collector

import (
	"math/rand/v2"
	"testing"
)

// gapSet against a plain slice of booleans, over random operations.
func TestGapSetMatchesSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var g gapSet
	ref := make([]bool, lateWindow)
	count := func() (n uint64) {
		for _, b := range ref {
			if b {
				n++
			}
		}
		return n
	}
	for op := range 20000 {
		switch rng.IntN(4) {
		case 0: // shift by a small, a word-sized or a large amount
			by := []uint64{1, 2, 63, 64, 65, 130, uint64(rng.IntN(lateWindow + 10))}[rng.IntN(7)]
			var want uint64
			next := make([]bool, lateWindow)
			for i, b := range ref {
				if !b {
					continue
				}
				if j := uint64(i) + by; j < lateWindow {
					next[j] = true
				} else {
					want++
				}
			}
			ref = next
			if got := g.shift(by); got != want {
				t.Fatalf("op %d: shift(%d) pushed out %d, want %d", op, by, got, want)
			}
		case 1: // open a range of closed gaps from 1
			hi := uint64(1 + rng.IntN(lateWindow-1))
			closed := true
			for i := uint64(1); i <= hi; i++ {
				closed = closed && !ref[i]
			}
			if !closed {
				continue // openRange's contract: the range is closed
			}
			for i := uint64(1); i <= hi; i++ {
				ref[i] = true
			}
			g.openRange(1, hi)
		case 2:
			i := uint64(rng.IntN(lateWindow + 5))
			want := i < lateWindow && ref[i]
			if want {
				ref[i] = false
			}
			if got := g.fill(i); got != want {
				t.Fatalf("op %d: fill(%d) = %v, want %v", op, i, got, want)
			}
		case 3:
			if rng.IntN(50) == 0 {
				if got, want := g.clearAll(), count(); got != want {
					t.Fatalf("op %d: clearAll = %d, want %d", op, got, want)
				}
				clear(ref)
			}
		}
		if uint64(g.open) != count() || g.empty() != (count() == 0) {
			t.Fatalf("op %d: %d open, want %d", op, g.open, count())
		}
	}
}
