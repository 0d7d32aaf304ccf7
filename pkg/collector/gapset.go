package collector

import "math/bits"

// gapSet is the late window of one sequence: bit i set means that number
// next-1-i was skipped and has not arrived yet (i < lateWindow).
type gapSet struct {
	w    [lateWindow / 64]uint64
	open int // bits set
}

// empty reports whether no gap is open.
func (g *gapSet) empty() bool { return g.open == 0 }

// clearAll closes every gap and returns how many were open.
func (g *gapSet) clearAll() uint64 {
	n := uint64(g.open)
	g.w = [lateWindow / 64]uint64{}
	g.open = 0
	return n
}

// fill closes gap i when it is open and reports whether it was.
func (g *gapSet) fill(i uint64) bool {
	if i >= lateWindow {
		return false
	}
	m := uint64(1) << (i % 64)
	if g.w[i/64]&m == 0 {
		return false
	}
	g.w[i/64] &^= m
	g.open--
	return true
}

// shift moves every gap by places (the sequence moved on by as many
// numbers) and returns how many were pushed out of the window.
func (g *gapSet) shift(by uint64) uint64 {
	if g.open == 0 {
		return 0
	}
	if by >= lateWindow {
		return g.clearAll()
	}
	out := g.countFrom(lateWindow - by)
	words, b := int(by/64), by%64
	for i := len(g.w) - 1; i >= 0; i-- {
		var v uint64
		if j := i - words; j >= 0 {
			v = g.w[j] << b
			if b > 0 && j > 0 {
				v |= g.w[j-1] >> (64 - b)
			}
		}
		g.w[i] = v
	}
	g.open -= int(out)
	return out
}

// countFrom counts the open gaps at index from and above.
func (g *gapSet) countFrom(from uint64) uint64 {
	i := from / 64
	n := bits.OnesCount64(g.w[i] >> (from % 64))
	for _, w := range g.w[i+1:] {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// openRange opens gaps lo to hi (inclusive, hi < lateWindow), all closed.
func (g *gapSet) openRange(lo, hi uint64) {
	for i := lo; i <= hi; i++ {
		g.w[i/64] |= 1 << (i % 64)
	}
	g.open += int(hi - lo + 1)
}
