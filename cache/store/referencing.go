package store

import (
	"container/list"
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
)

// ManifestsReferencing lists the kept manifests of registry/repo whose refs name blob (as a
// blob or a child manifest), sorted, at most MaxReferencingResults of them.
//
// Every call lists the repository's revisions (one List), so that a manifest another
// replica kept a moment ago is found and one it evicted is not; records are read only for
// revisions this process has not indexed yet (keptIndex). Concurrent calls for one
// repository share a listing that started after they were made. Each manifest returned had
// its link when it was looked up.
func (s *Store) ManifestsReferencing(ctx context.Context, registry, repo string, blob digest.Digest) ([]digest.Digest, error) {
	if err := checkNamesDigest(registry, repo, blob); err != nil {
		return nil, err
	}
	what := fmt.Sprintf("manifests of %s/%s referencing %s", registry, repo, blob)
	found, err := s.kept.lookup(ctx, s, registry, repo, blob)
	if err != nil {
		return nil, s.wrapErr(what, err)
	}
	slices.Sort(found)
	var out []digest.Digest
	var statErr error
	for i, h := range found {
		if i >= MaxReferencingChecks || len(out) >= MaxReferencingResults {
			break
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, h)
		// Dropped as corrupt: the record stays, the link is gone until it is kept again.
		ok, err := s.exists(ctx, revisionDir(registry, repo, d)+"/"+linkFile)
		if ok {
			out = append(out, d)
		} else if err != nil && statErr == nil {
			statErr = err
		}
	}
	if len(out) == 0 && statErr != nil {
		// Not "none": the store did not answer for the candidates.
		return nil, s.wrapErr(what, statErr)
	}
	return out, nil
}

// keptIndex remembers, per repository, which digests the records of its kept manifests
// name, so that a lookup reads only the records of revisions it has not seen: a repository
// whose listing did not change costs one List per lookup, whatever the number of its
// manifests and of the callers. It is a cache of what the store holds: the listing read at
// every refresh is the truth (a revision gone from it is forgotten, a new one is read), and
// records never change (they derive from the manifest's bytes).
//
// References are kept as 64-bit hashes under a per-process random seed (hash/maphash); two
// digests that share a hash (a chance of about n²/2⁶⁵ for n references, which a client
// cannot aim at without the seed) make a manifest a candidate for a blob it does not list.
// Callers decide on each candidate from its bytes, so such a candidate is refused there
// (the gate re-hashes and parses the manifest, and admits only the blobs it lists).
//
// Memory is bounded by MaxKeptIndexCost (a reference costs 1, a revision
// keptRevisionCost) and by MaxKeptIndexRepos idle repositories, least recently looked up
// forgotten first; a repository without kept manifests is not remembered, so lookups in
// made-up repositories evict nothing. At most MaxConcurrentKeptScans refreshes run at
// once; a caller waits for one for as long as its own context lasts.
type keptIndex struct {
	seed maphash.Seed
	sem  chan struct{}

	mu    sync.Mutex
	repos map[string]*repoIndex
	idle  list.List // of *repoIndex not in use and holding something, most recent first
	cost  int       // of all repositories' indexes

	maxCost, maxRepos int // MaxKeptIndexCost and MaxKeptIndexRepos (tests lower them)
}

func newKeptIndex() *keptIndex {
	return &keptIndex{seed: maphash.MakeSeed(), sem: make(chan struct{}, MaxConcurrentKeptScans),
		repos: map[string]*repoIndex{}, maxCost: MaxKeptIndexCost, maxRepos: MaxKeptIndexRepos}
}

// repoIndex is one repository's index, and its refreshes: one runs at a time, and a lookup
// uses the result of one that started after the lookup did.
type repoIndex struct {
	key   string
	elem  *list.Element // in keptIndex.idle, nil while in use
	users int           // lookups and the running refresh holding it

	started, done uint64        // refreshes started and finished
	running       chan struct{} // closed when the running refresh ends; nil when none runs
	err           error         // the last refresh's: nil when it read what it listed
	waiting       int           // lookups waiting for a refresh (tests)

	ids    map[string]uint32 // indexed revision (hex) → id
	revs   []string          // id → revision hex
	byRef  refIndex
	failed map[string]*failedRead
	cost   int // references, and keptRevisionCost per revision in ids or failed
	// full: MaxKeptIndexCost was reached while indexing; revisions not indexed then are not
	// read until some of this repository's are removed.
	full bool
	// warnedScanned and warnedFull say that the bound was logged (once while it holds).
	warnedScanned, warnedFull bool
}

// refIndex maps the hash of a referenced digest to the ids of the revisions naming it: most
// digests are named by one manifest, held in the map itself; the others' lists are in multi.
type refIndex struct {
	one   map[uint64]uint32 // an id, or multiBit|i for multi[i]
	multi [][]uint32
	n     int // references held
}

const multiBit = 1 << 31

func (x *refIndex) add(h uint64, id uint32) {
	if x.one == nil {
		x.one = map[uint64]uint32{}
	}
	x.n++
	v, ok := x.one[h]
	switch {
	case !ok:
		x.one[h] = id
	case v&multiBit == 0:
		x.multi = append(x.multi, []uint32{v, id})
		x.one[h] = multiBit | uint32(len(x.multi)-1)
	default:
		x.multi[v&^multiBit] = append(x.multi[v&^multiBit], id)
	}
}

func (x *refIndex) get(h uint64) []uint32 {
	v, ok := x.one[h]
	switch {
	case !ok:
		return nil
	case v&multiBit == 0:
		return []uint32{v}
	default:
		return x.multi[v&^multiBit]
	}
}

// failedRead is a listed revision whose record could not be read or parsed. It is read
// again at the next keptImmediateRetries refreshes (a record being written is not yet
// there), then after a growing delay: a corrupt record is read again only when it may
// have been rewritten by a replica that kept its manifest again.
type failedRead struct {
	attempts int
	retryAt  time.Time
}

func (r *repoIndex) empty() bool { return len(r.ids) == 0 && len(r.failed) == 0 }

// acquire returns the index of key, in use by the caller until release. Called with mu held.
func (ix *keptIndex) acquire(key string) *repoIndex {
	r := ix.repos[key]
	if r == nil {
		r = &repoIndex{key: key, ids: map[string]uint32{}, failed: map[string]*failedRead{}}
		ix.repos[key] = r
	}
	if r.elem != nil {
		ix.idle.Remove(r.elem)
		r.elem = nil
	}
	r.users++
	return r
}

// release ends a use of r: an index no longer in use is forgotten when it holds nothing,
// else it is the most recent idle one. Called with mu held.
func (ix *keptIndex) release(r *repoIndex) {
	r.users--
	if r.users > 0 {
		return
	}
	if r.empty() {
		ix.cost -= r.cost
		delete(ix.repos, r.key)
		return
	}
	r.elem = ix.idle.PushFront(r)
	ix.trim(0)
}

// trim forgets idle indexes, least recent first, until there are at most maxRepos and n
// more fits in maxCost. Called with mu held.
func (ix *keptIndex) trim(n int) {
	for ix.idle.Len() > 0 && (ix.idle.Len() > ix.maxRepos || ix.cost+n > ix.maxCost) {
		r := ix.idle.Remove(ix.idle.Back()).(*repoIndex)
		r.elem = nil
		ix.cost -= r.cost
		delete(ix.repos, r.key)
	}
}

// addCost counts n more (or fewer) for r. Called with mu held.
func (ix *keptIndex) addCost(r *repoIndex, n int) {
	r.cost += n
	ix.cost += n
}

// lookup returns the revisions (hex) of registry/repo whose records name blob, from an index
// refreshed after the call began.
func (ix *keptIndex) lookup(ctx context.Context, s *Store, registry, repo string, blob digest.Digest) ([]string, error) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	r := ix.acquire(registry + "/" + repo) // a registry name holds no '/'
	defer ix.release(r)
	target := r.started + 1 // the first refresh that starts after this call
	for r.done < target {
		if r.running == nil {
			ix.mu.Unlock()
			select {
			case ix.sem <- struct{}{}:
			case <-ctx.Done():
				ix.mu.Lock()
				return nil, ctx.Err()
			}
			ix.mu.Lock()
			if r.running != nil || r.done >= target {
				<-ix.sem // another caller started it meanwhile
				continue
			}
			r.started++
			r.running = make(chan struct{})
			r.users++ // the refresh's own, released when it ends
			go s.refreshKept(r, registry, repo, r.started, r.running)
		}
		ch := r.running
		r.waiting++
		ix.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		ix.mu.Lock()
		r.waiting--
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	ids := r.byRef.get(maphash.String(ix.seed, blob.Encoded()))
	if len(ids) == 0 {
		return nil, r.err
	}
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = r.revs[id]
	}
	return out, nil
}

// refreshKept lists the revisions of registry/repo and brings r up to date with the listing,
// reading the records of revisions new to it. It runs detached from the lookups waiting for
// it (a caller that goes away does not end it for the others), bounded by KeptScanTimeout
// and the store's life, holding a slot of ix.sem.
func (s *Store) refreshKept(r *repoIndex, registry, repo string, gen uint64, done chan struct{}) {
	ix := s.kept
	defer func() { <-ix.sem }()
	ctx, cancel := context.WithTimeout(s.ctx, KeptScanTimeout)
	defer cancel()

	listed, over, err := s.listRevisions(ctx, registry, repo)
	var toRead, removed []string
	if err == nil {
		// Without mu: r's index changes only in apply, which only this refresh (one per
		// repository at a time) calls; lookups only read it.
		toRead, removed = r.plan(listed, s.now())
		r.boundLogged(s, registry, repo, over, &r.warnedScanned,
			"content store: repository holds more manifests than indexed", "indexed", MaxManifestsScanned)
	}
	var results []recordRead
	if err == nil && len(toRead) > 0 {
		results = s.readRecords(ctx, registry, repo, toRead)
	}

	ix.mu.Lock()
	defer ix.mu.Unlock()
	if err == nil {
		err = ix.apply(s, r, registry, repo, removed, results)
	}
	r.err = err
	r.done = gen
	r.running = nil
	close(done)
	ix.release(r)
}

// listRevisions lists the revisions (hex) of registry/repo, the first MaxManifestsScanned
// in sorted order when there are more. A repository never kept is an empty listing.
func (s *Store) listRevisions(ctx context.Context, registry, repo string) (hexes []string, over bool, err error) {
	base := revisionsDir(registry, repo)
	dirs, err := s.d.List(ctx, base)
	if err != nil {
		if isNotFound(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	out := make([]string, 0, len(dirs))
	for _, dir := range dirs {
		// The hex digits of a revision new to the index are checked in plan.
		if len(dir) == len(base)+1+64 && dir[len(base)] == '/' {
			out = append(out, dir[len(base)+1:])
		}
	}
	if len(out) > MaxManifestsScanned {
		slices.Sort(out)
		return out[:MaxManifestsScanned], true, nil
	}
	return out, false, nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// plan compares a listing with r: the revisions whose records are to be read (new ones
// unless r is full, and failed ones due again, at most maxKeptRetriesPerScan of those), and
// those r knows that the listing no longer holds. Only r's refresh calls it (see
// refreshKept).
func (r *repoIndex) plan(listed []string, now time.Time) (toRead, removed []string) {
	known, retries := 0, 0
	for _, h := range listed {
		if _, ok := r.ids[h]; ok {
			known++
			continue
		}
		if f, ok := r.failed[h]; ok {
			known++
			if (f.attempts < keptImmediateRetries || !now.Before(f.retryAt)) && retries < maxKeptRetriesPerScan {
				toRead = append(toRead, h)
				retries++
			}
			continue
		}
		if !r.full && isLowerHex(h) {
			toRead = append(toRead, h)
		}
	}
	if known == len(r.ids)+len(r.failed) {
		return toRead, nil // nothing gone: the common case, with no set built
	}
	in := make(map[string]struct{}, len(listed))
	for _, h := range listed {
		in[h] = struct{}{}
	}
	for h := range r.ids {
		if _, ok := in[h]; !ok {
			removed = append(removed, h)
		}
	}
	for h := range r.failed {
		if _, ok := in[h]; !ok {
			removed = append(removed, h)
		}
	}
	return toRead, removed
}

// recordRead is the outcome of reading one revision's record.
type recordRead struct {
	hex  string
	refs []digest.Digest
	err  error
	cut  bool // not read: the refresh's context ended
}

// readRecords reads the records of revisions (hex), keptScanReaders at a time; a record in
// the records cache is not read again, and what is read is not added to it (a scan would
// flush it).
func (s *Store) readRecords(ctx context.Context, registry, repo string, hexes []string) []recordRead {
	out := make([]recordRead, len(hexes))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(keptScanReaders, len(hexes)) {
		wg.Go(func() {
			for i := range next {
				out[i] = s.readRecordOnce(ctx, registry, repo, hexes[i])
			}
		})
	}
	for i := range hexes {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func (s *Store) readRecordOnce(ctx context.Context, registry, repo, h string) recordRead {
	d := digest.NewDigestFromEncoded(digest.SHA256, h)
	out := recordRead{hex: h}
	rec, ok := s.records.Peek(d)
	if !ok {
		if ctx.Err() != nil {
			out.cut = true
			return out
		}
		b, err := s.getBounded(ctx, revisionDir(registry, repo, d)+"/"+recordFile, MaxRecordSize)
		if err == nil {
			rec, err = parseRecord(b)
		}
		if err == nil && rec.Digest != d {
			err = fmt.Errorf("manifest record names %s: %w", rec.Digest, ErrCorrupt)
		}
		if err != nil {
			out.err, out.cut = err, ctx.Err() != nil
			return out
		}
	}
	out.refs = rec.refsAll()
	return out
}

// apply brings r up to the listing: removed revisions are forgotten, records read are
// indexed (in sorted order, while MaxKeptIndexCost allows), failures are remembered. An
// error says that the context ended before every record was read. Called with mu held.
func (ix *keptIndex) apply(s *Store, r *repoIndex, registry, repo string, removed []string, results []recordRead) error {
	if len(removed) > 0 {
		for _, h := range removed {
			if _, ok := r.failed[h]; ok {
				delete(r.failed, h)
				ix.addCost(r, -keptRevisionCost)
			}
		}
		ix.rebuild(r, removed)
		// Room was made: what did not fit is read at the next refresh.
		r.full = false
	}
	slices.SortFunc(results, func(a, b recordRead) int { return strings.Compare(a.hex, b.hex) })
	now := s.now()
	cut := 0
	for _, res := range results {
		switch {
		case res.cut:
			cut++
		case res.err != nil:
			f := r.failed[res.hex]
			if f == nil {
				f = &failedRead{}
				r.failed[strings.Clone(res.hex)] = f
				ix.addCost(r, keptRevisionCost)
			}
			f.attempts++
			if f.attempts >= keptImmediateRetries {
				f.retryAt = now.Add(min(time.Second<<(f.attempts-keptImmediateRetries), keptRetryMaxDelay))
			}
		case r.full:
			// Not indexed, not remembered: read again once room is made.
		default:
			hashes := make([]uint64, 0, len(res.refs))
			for _, ref := range res.refs {
				hashes = append(hashes, maphash.String(ix.seed, ref.Encoded()))
			}
			slices.Sort(hashes)
			hashes = slices.Compact(hashes)
			cost := len(hashes) + keptRevisionCost
			if _, ok := r.failed[res.hex]; ok {
				delete(r.failed, res.hex)
				ix.addCost(r, -keptRevisionCost)
			}
			ix.trim(cost) // never r: it is in use
			if ix.cost+cost > ix.maxCost {
				r.full = true
				continue
			}
			h := strings.Clone(res.hex)
			id := uint32(len(r.revs))
			r.revs = append(r.revs, h)
			r.ids[h] = id
			for _, x := range hashes {
				r.byRef.add(x, id)
			}
			ix.addCost(r, cost)
		}
	}
	r.boundLogged(s, registry, repo, r.full, &r.warnedFull,
		"content store: the kept-manifest index is full; some manifests of this repository are not looked up", "maxCost", ix.maxCost)
	if cut > 0 {
		return fmt.Errorf("%d manifest records not read before the scan ended: %w", cut, ErrUnavailable)
	}
	return nil
}

// rebuild forgets removed revisions: the others are renumbered and the reverse index is
// made again. Called with mu held.
func (ix *keptIndex) rebuild(r *repoIndex, removed []string) {
	gone := 0
	for _, h := range removed {
		if _, ok := r.ids[h]; ok {
			delete(r.ids, h)
			gone++
		}
	}
	if gone == 0 {
		return
	}
	renum := make([]uint32, len(r.revs))
	revs := make([]string, 0, len(r.ids))
	for id, h := range r.revs {
		renum[id] = multiBit // gone
		if cur, ok := r.ids[h]; ok && cur == uint32(id) {
			renum[id] = uint32(len(revs))
			r.ids[h] = uint32(len(revs))
			revs = append(revs, h)
		}
	}
	var byRef refIndex
	for h := range r.byRef.one {
		for _, id := range r.byRef.get(h) {
			if n := renum[id]; n != multiBit {
				byRef.add(h, n)
			}
		}
	}
	ix.addCost(r, (byRef.n+keptRevisionCost*len(revs))-(r.byRef.n+keptRevisionCost*len(r.revs)))
	r.revs, r.byRef = revs, byRef
}

// boundLogged logs a bound once while it holds (flag remembers it) and forgets it once it no
// longer holds.
func (r *repoIndex) boundLogged(s *Store, registry, repo string, holds bool, flag *bool, msg, key string, value int) {
	if holds && !*flag {
		s.log.Warn(msg, "store", s.desc, "registry", registry, "repository", repo, key, value)
	}
	*flag = holds
}

// keptWaiting is the number of lookups of registry/repo waiting for a refresh (tests).
func (s *Store) keptWaiting(registry, repo string) int {
	s.kept.mu.Lock()
	defer s.kept.mu.Unlock()
	if r := s.kept.repos[registry+"/"+repo]; r != nil {
		return r.waiting
	}
	return 0
}
