package cache

import (
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// TTL is a bounded LRU cache whose entries each carry their own lifetime, so that accepted
// and denied verdicts can live for different durations in one cache. It is safe for
// concurrent use.
type TTL[K comparable, V any] struct {
	lru *lru.Cache[K, ttlEntry[V]]
	// now is replaceable in tests.
	now func() time.Time
	mu  sync.Mutex // serialises the read-check-remove of an expired entry
}

type ttlEntry[V any] struct {
	value   V
	expires time.Time
}

// NewTTL returns a cache holding at most size entries.
func NewTTL[K comparable, V any](size int) (*TTL[K, V], error) {
	if size <= 0 {
		return nil, fmt.Errorf("cache: size must be positive, got %d", size)
	}
	l, err := lru.New[K, ttlEntry[V]](size)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &TTL[K, V]{lru: l, now: time.Now}, nil
}

// Get returns the value for key if it is present and has not expired.
func (c *TTL[K, V]) Get(key K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.lru.Get(key)
	if !ok {
		var zero V
		return zero, false
	}
	if !c.now().Before(e.expires) {
		c.lru.Remove(key)
		var zero V
		return zero, false
	}
	return e.value, true
}

// Add stores value for ttl. A ttl of zero or less stores nothing (and drops any older entry).
func (c *TTL[K, V]) Add(key K, value V, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ttl <= 0 {
		c.lru.Remove(key)
		return
	}
	c.lru.Add(key, ttlEntry[V]{value: value, expires: c.now().Add(ttl)})
}

// Remove drops key.
func (c *TTL[K, V]) Remove(key K) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Remove(key)
}

// Purge drops every entry.
func (c *TTL[K, V]) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Purge()
}

// Len is the number of entries, expired ones included until they are looked up or evicted.
func (c *TTL[K, V]) Len() int { return c.lru.Len() }
