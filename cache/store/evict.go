package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
)

func (s *Store) kickEvict() {
	select {
	case s.evictKick <- struct{}{}:
	default:
	}
}

// evictLoop runs one pass per burst of commits, EvictDebounce after the first; the first
// pass after Open only sizes the store unless it is over MaxSize.
func (s *Store) evictLoop() {
	defer s.wg.Done()
	first := true
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.evictKick:
		}
		if !first {
			if s.maxSize == 0 || s.bytesKept.Load() <= s.maxSize {
				continue
			}
			t := time.NewTimer(EvictDebounce)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			select { // the commits of the debounce window are in this pass
			case <-s.evictKick:
			default:
			}
		}
		first = false
		if err := s.Evict(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("content store: eviction pass failed", "store", s.desc, "err", err)
		}
	}
}

type contentInfo struct {
	size int64
	mod  time.Time
}

type mkey struct {
	repoDir string
	d       digest.Digest
}

type mentry struct {
	link, pinned bool
	linkMod      time.Time
	servedPath   string
	rec          *record
	served       time.Time
	sig          digest.Digest // the signatures record kept for this image, if any
	sigLink      string
}

type unit struct {
	members []mkey
	served  time.Time
	pinned  bool
}

// Evict runs one eviction pass now (one pass at a time): it sizes the store, and beyond
// MaxSize removes orphan content first, then the least recently served unpinned images.
func (s *Store) Evict(ctx context.Context) error {
	s.evictMu.Lock()
	defer s.evictMu.Unlock()

	content := map[digest.Digest]contentInfo{}
	var total int64
	entries := 0
	err := s.walk(ctx, blobsPath, func(fi storagedriver.FileInfo) error {
		if entries++; entries > MaxEvictEntries {
			return fmt.Errorf("more than %d objects in the store: not evicted", MaxEvictEntries)
		}
		if fi.IsDir() {
			return nil
		}
		if d, ok := parseBlobObject(fi.Path()); ok {
			content[d] = contentInfo{size: fi.Size(), mod: fi.ModTime()}
			total += fi.Size()
		}
		return nil
	})
	if err != nil {
		return s.wrapErr("sizing the store", err)
	}
	s.bytesKept.Store(total)
	if s.maxSize == 0 || total <= s.maxSize {
		return nil
	}

	manifests := map[mkey]*mentry{}
	layers := map[mkey]string{}
	tags := map[string][]string{} // repoDir -> tag link paths
	get := func(k mkey) *mentry {
		e := manifests[k]
		if e == nil {
			e = &mentry{}
			manifests[k] = e
		}
		return e
	}
	err = s.walk(ctx, reposPath, func(fi storagedriver.FileInfo) error {
		if entries++; entries > MaxEvictEntries {
			return fmt.Errorf("more than %d objects in the store: not evicted", MaxEvictEntries)
		}
		if fi.IsDir() {
			return nil
		}
		p, ok := parseRepoObject(fi.Path())
		if !ok {
			return nil
		}
		k := mkey{p.repoDir, p.digest}
		switch p.kind {
		case "revision":
			e := get(k)
			switch p.file {
			case linkFile:
				e.link, e.linkMod = true, fi.ModTime()
			case pinnedFile:
				e.pinned = true
			case servedFile:
				e.servedPath = fi.Path()
			}
		case "signatures":
			get(k).sigLink = fi.Path()
		case "layer":
			layers[k] = fi.Path()
		case "tag":
			tags[p.repoDir] = append(tags[p.repoDir], fi.Path())
		}
		return nil
	})
	if err != nil {
		return s.wrapErr("listing the store's repositories", err)
	}

	// What each kept manifest references, and when its image was last served.
	refc := map[digest.Digest]int{}
	for k, e := range manifests {
		if !e.link {
			continue
		}
		dir := k.repoDir + "/_manifests/revisions/sha256/" + k.d.Encoded()
		if r, err := s.readRecord(ctx, dir, k.d); err == nil {
			e.rec = r
		} else {
			e.rec = &record{Digest: k.d}
		}
		e.served = e.linkMod
		if e.servedPath != "" {
			if b, err := s.getBounded(ctx, e.servedPath, MaxServedSize); err == nil {
				if t := parseServed(b); t.After(e.served) {
					e.served = t
				}
			}
		}
		if t := s.servedTime(dir); t.After(e.served) {
			e.served = t
		}
		if e.sigLink != "" {
			if b, err := s.getBounded(ctx, e.sigLink, MaxLinkSize); err == nil {
				e.sig, _ = parseLink(b)
			}
		}
		refc[k.d]++
		for _, r := range e.rec.refsAll() {
			refc[r]++
		}
		if e.sig != "" {
			refc[e.sig]++
		}
	}

	// Images: a top-level manifest with its children (an index's platforms) and the
	// referrers of any of them, in one repository.
	children := map[mkey]bool{}
	referrers := map[mkey][]mkey{}
	for k, e := range manifests {
		if !e.link {
			continue
		}
		for _, c := range e.rec.Manifests {
			if ce := manifests[mkey{k.repoDir, c}]; ce != nil && ce.link && c != k.d {
				children[mkey{k.repoDir, c}] = true
			}
		}
		if sub := e.rec.Subject; sub != "" && sub != k.d {
			if se := manifests[mkey{k.repoDir, sub}]; se != nil && se.link {
				children[k] = true
				referrers[mkey{k.repoDir, sub}] = append(referrers[mkey{k.repoDir, sub}], k)
			}
		}
	}
	var units []*unit
	memberOf := map[mkey]int{}
	for k, e := range manifests {
		if !e.link || children[k] {
			continue
		}
		u := &unit{}
		seen := map[mkey]bool{k: true}
		queue := []mkey{k}
		for len(queue) > 0 {
			m := queue[0]
			queue = queue[1:]
			me := manifests[m]
			u.members = append(u.members, m)
			u.pinned = u.pinned || me.pinned
			if me.served.After(u.served) {
				u.served = me.served
			}
			next := append([]mkey{}, referrers[m]...)
			for _, c := range me.rec.Manifests {
				next = append(next, mkey{m.repoDir, c})
			}
			for _, n := range next {
				if ne := manifests[n]; ne != nil && ne.link && !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
		for _, m := range u.members {
			memberOf[m]++
		}
		units = append(units, u)
	}

	var evicted int64
	removeContent := func(d digest.Digest) {
		if s.fetching(d) {
			return
		}
		ci, ok := content[d]
		if !ok {
			return
		}
		if n := s.deleteContent(ctx, d); n > 0 || ci.size == 0 {
			delete(content, d)
			total -= ci.size
			evicted += ci.size
		}
	}

	// Orphans first: content no kept manifest references, once past its grace.
	var orphans []digest.Digest
	cutoff := s.now().Add(-OrphanGrace)
	for d, ci := range content {
		if refc[d] == 0 && ci.mod.Before(cutoff) {
			orphans = append(orphans, d)
		}
	}
	sort.Slice(orphans, func(i, j int) bool { return content[orphans[i]].mod.Before(content[orphans[j]].mod) })
	for _, d := range orphans {
		if total <= s.maxSize {
			break
		}
		removeContent(d)
	}

	// Then the least recently served unpinned images.
	sort.Slice(units, func(i, j int) bool { return units[i].served.Before(units[j].served) })
	images := 0
	for _, u := range units {
		if total <= s.maxSize || ctx.Err() != nil {
			break
		}
		if u.pinned {
			continue
		}
		images++
		for _, m := range u.members {
			if memberOf[m]--; memberOf[m] > 0 {
				continue // also part of an image that stays
			}
			e := manifests[m]
			s.removeManifest(ctx, m, tags[m.repoDir])
			drop := []digest.Digest{m.d}
			drop = append(drop, e.rec.refsAll()...)
			if e.sig != "" {
				drop = append(drop, e.sig)
			}
			for _, d := range drop {
				if refc[d]--; refc[d] <= 0 {
					removeContent(d)
					if lp, ok := layers[mkey{m.repoDir, d}]; ok {
						s.d.Delete(ctx, path.Dir(lp))
					}
				}
			}
		}
	}
	s.bytesKept.Store(total)
	s.bytesEvicted.Add(evicted)
	if evicted > 0 {
		s.log.Info("content store: evicted beyond maxSize", "store", s.desc, "bytes", evicted,
			"images", images, "kept", total, "maxSize", s.maxSize)
	}
	if total > s.maxSize {
		s.log.Warn("content store: still beyond maxSize after eviction (pinned, in use or too recent)",
			"store", s.desc, "kept", total, "maxSize", s.maxSize)
	}
	return ctx.Err()
}

// removeManifest removes a manifest from a repository: its revision folder, its signatures
// link and the tags naming it.
func (s *Store) removeManifest(ctx context.Context, m mkey, tagLinks []string) {
	s.d.Delete(ctx, m.repoDir+"/_manifests/revisions/sha256/"+m.d.Encoded())
	s.d.Delete(ctx, m.repoDir+"/_signatures/sha256/"+m.d.Encoded())
	s.servedMu.Lock()
	delete(s.served, m.repoDir+"/_manifests/revisions/sha256/"+m.d.Encoded())
	s.servedMu.Unlock()
	for _, tl := range tagLinks {
		b, err := s.getBounded(ctx, tl, MaxLinkSize)
		if err != nil {
			continue
		}
		if t, err := parseTag(b); err == nil && t.Digest == m.d {
			s.d.Delete(ctx, path.Dir(path.Dir(tl)))
		}
	}
}

func (s *Store) fetching(d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.fetches[d]
	return ok
}

// walk calls fn for every object under root; a root that does not exist is empty.
func (s *Store) walk(ctx context.Context, root string, fn storagedriver.WalkFn) error {
	err := s.d.Walk(ctx, root, fn)
	if err != nil && isNotFound(err) {
		return nil
	}
	if err != nil && !errors.Is(err, storagedriver.ErrSkipDir) {
		return err
	}
	return nil
}
