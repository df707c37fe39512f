package enforce

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
)

// admissions is the in-memory AdmissionStore: it remembers the manifests the gate served,
// per policy, registry and repository, with the blobs each lists. A blob is servable while a manifest of its
// repository that lists it is remembered: admissions are derived from accepted manifests,
// so another repository's traffic evicts a blob only by evicting, in LRU order, the
// manifest it belongs to, and a blob request refreshes that manifest. A reverse index
// (blob to the manifests listing it) is kept in step on every add and eviction.
type admissions struct {
	mu  sync.Mutex
	lru *simplelru.LRU[Key, *admitted]
	// refs maps a blob to the remembered manifests of its repository that list it.
	refs map[Key]map[digest.Digest]struct{}
	// weight is the number of blob references held; maxWeight bounds it.
	weight, maxWeight int
	now               func() time.Time
	// manifests remembers the digests served or refused as manifests.
	manifests *cache.TTL[Key, struct{}]
}

var _ AdmissionStore = (*admissions)(nil)

type admitted struct {
	blobs   []digest.Digest
	expires time.Time
	// accepted is true for a manifest the policy accepted (or served as an index), which
	// may therefore be the subject of a signature attachment; false for an attachment.
	accepted bool
}

// newAdmissions holds at most entries manifests and maxWeight blob references in total,
// and remembers at most seen digests as manifests.
func newAdmissions(entries, maxWeight, seen int) (*admissions, error) {
	a := &admissions{refs: map[Key]map[digest.Digest]struct{}{}, maxWeight: maxWeight, now: time.Now}
	l, err := simplelru.NewLRU(entries, a.evicted)
	if err != nil {
		return nil, fmt.Errorf("enforce: admissions: %w", err)
	}
	a.lru = l
	if a.manifests, err = cache.NewTTL[Key, struct{}](seen); err != nil {
		return nil, fmt.Errorf("enforce: admissions: %w", err)
	}
	return a, nil
}

// evicted keeps the reverse index in step; it runs with mu held (from Add, Remove,
// RemoveOldest and Purge).
func (a *admissions) evicted(k Key, v *admitted) {
	for _, b := range v.blobs {
		bk := Key{k.Policy, k.Registry, k.Repository, b}
		if m := a.refs[bk]; m != nil {
			delete(m, k.Digest)
			if len(m) == 0 {
				delete(a.refs, bk)
			}
		}
	}
	a.weight -= len(v.blobs)
}

// Admit implements AdmissionStore, evicting the least recently used manifests as the
// bounds require.
func (a *admissions) Admit(k Key, blobs []digest.Digest, accepted bool, ttl time.Duration) {
	blobs = slices.Clone(blobs)
	slices.Sort(blobs)
	blobs = slices.Compact(blobs)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lru.Remove(k) // Add would replace the value without the eviction callback
	for a.weight+len(blobs) > a.maxWeight && a.lru.Len() > 0 {
		a.lru.RemoveOldest()
	}
	a.lru.Add(k, &admitted{blobs: blobs, expires: a.now().Add(ttl), accepted: accepted})
	for _, b := range blobs {
		bk := Key{k.Policy, k.Registry, k.Repository, b}
		if a.refs[bk] == nil {
			a.refs[bk] = map[digest.Digest]struct{}{}
		}
		a.refs[bk][k.Digest] = struct{}{}
	}
	a.weight += len(blobs)
}

// HasBlob implements AdmissionStore.
func (a *admissions) HasBlob(b Key) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	for m := range a.refs[b] { // evicting while ranging is safe: deleted keys are not visited
		k := Key{b.Policy, b.Registry, b.Repository, m}
		e, ok := a.lru.Peek(k)
		if !ok {
			continue
		}
		if !now.Before(e.expires) {
			a.lru.Remove(k)
			continue
		}
		a.lru.Get(k)
		return true
	}
	return false
}

// Accepted implements AdmissionStore.
func (a *admissions) Accepted(k Key) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	e, ok := a.lru.Get(k)
	return ok && e.accepted && a.now().Before(e.expires)
}

// SeenManifest implements AdmissionStore.
func (a *admissions) SeenManifest(k Key, ttl time.Duration) { a.manifests.Add(k, struct{}{}, ttl) }

// IsManifest implements AdmissionStore.
func (a *admissions) IsManifest(k Key) bool {
	_, ok := a.manifests.Get(k)
	return ok
}
