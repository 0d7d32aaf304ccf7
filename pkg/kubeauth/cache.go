package kubeauth

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxCacheEntries bounds each cache: beyond it, expired entries are dropped,
// and if none are, the whole cache is (a flood of distinct tokens must not
// grow memory).
const maxCacheEntries = 8192

type digest [sha256.Size]byte

func hashOf(parts ...string) digest {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	var d digest
	h.Sum(d[:0])
	return d
}

type entry[V any] struct {
	v       V
	expires time.Time
}

// ttlCache keeps answers for ttl; a zero ttl keeps nothing.
type ttlCache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	m  map[digest]entry[V]
}

func newCache[V any](ttl time.Duration) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, now: time.Now, m: map[digest]entry[V]{}}
}

func (c *ttlCache[V]) get(k digest) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.now().Before(e.expires) {
		var zero V
		return zero, false
	}
	return e.v, true
}

func (c *ttlCache[V]) put(k digest, v V) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.m) >= maxCacheEntries {
		for k, e := range c.m {
			if !now.Before(e.expires) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= maxCacheEntries {
			clear(c.m)
		}
	}
	c.m[k] = entry[V]{v: v, expires: now.Add(c.ttl)}
}
