package proxy

import (
	"container/list"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

// manifestKey names verified manifest bytes. The repository is part of the key: the same
// digest in another repository is another object upstream (it may not exist there, or
// need other credentials), so bytes are never served across repositories.
type manifestKey struct {
	registry, repo string
	digest         digest.Digest
}

// manifestCache holds verified manifests by digest, least recently used first out,
// bounded by the total size of the bytes held. Content-addressed entries never go
// stale, so there is no expiry. Safe for concurrent use.
type manifestCache struct {
	mu       sync.Mutex
	maxBytes int64
	bytes    int64
	order    *list.List // of *manifestEntry, most recent at the front
	entries  map[manifestKey]*list.Element
}

type manifestEntry struct {
	key manifestKey
	m   *content.Manifest
}

// newManifestCache returns a cache holding at most maxBytes of manifest bytes; a
// maxBytes of zero or less holds nothing.
func newManifestCache(maxBytes int64) *manifestCache {
	return &manifestCache{maxBytes: maxBytes, order: list.New(), entries: map[manifestKey]*list.Element{}}
}

func (c *manifestCache) get(k manifestKey) (*content.Manifest, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*manifestEntry).m, true
}

// add stores m under its own digest. Only verified manifests may be added.
func (c *manifestCache) add(registry, repo string, m *content.Manifest) {
	size := int64(len(m.Bytes))
	if size > c.maxBytes {
		return
	}
	k := manifestKey{registry: registry, repo: repo, digest: m.Digest}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		c.order.MoveToFront(el)
		return
	}
	c.entries[k] = c.order.PushFront(&manifestEntry{key: k, m: m})
	c.bytes += size
	for c.bytes > c.maxBytes {
		last := c.order.Back()
		e := last.Value.(*manifestEntry)
		c.order.Remove(last)
		delete(c.entries, e.key)
		c.bytes -= int64(len(e.m.Bytes))
	}
}
