package store

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
)

// Download leases let replicas sharing one store fetch a missing blob from the upstream
// once between them, not once each. The store is the only thing they share, and
// distribution's drivers offer no conditional write, so a lease is an ordinary small
// object: _leases/<hex> holding {holder, beat}. A replica about to download writes its
// own, waits LeaseSettle, and reads it back: only the replica whose lease survived the
// settle downloads; the others wait for the blob to appear. The holder rewrites its lease
// (a new beat) every LeaseBeat while it downloads and removes it at the end.
//
// A waiter judges a lease by what it sees change, on its own clock, never by times written
// by another machine: a lease whose content did not change for LeaseTTL belongs to a
// holder that died (kill -9) or hung, and is taken over. A waiter also gives up waiting
// after MaxLeaseWait and downloads itself. Whatever goes wrong with leases (a store error,
// a race that two replicas both win) costs an extra upstream fetch, never a wrong byte:
// every download is verified and committed on its own, as without leases.

// leasePath is where the lease for d lives; not under _uploads, whose purge removes folders.
func leasePath(d digest.Digest) string { return rootPath + "/_leases/" + d.Encoded() }

// leasesDir holds the leases.
const leasesDir = rootPath + "/_leases"

type lease struct {
	Holder string `json:"holder"`
	Beat   string `json:"beat"`
}

// leaseOutcome is what awaitLease found.
type leaseOutcome int

const (
	leaseTaken  leaseOutcome = iota // download: this store holds the lease (or leases failed)
	leaseKept                       // the blob was committed by another replica meanwhile
	leaseGaveUp                     // waited MaxLeaseWait: download without a lease
)

// awaitLease returns once this store may download d: it holds the lease, the blob is
// kept now, or the wait timed out. ctx ends the wait (the download is abandoned then).
func (s *Store) awaitLease(ctx context.Context, d digest.Digest) (leaseOutcome, error) {
	p := leasePath(d)
	start := time.Now()
	var seen []byte
	var seenAt time.Time
	for {
		if ok, err := s.exists(ctx, blobPath(d)); err == nil && ok {
			return leaseKept, nil
		}
		b, err := s.getBounded(ctx, p, MaxLinkSize)
		switch {
		case err == nil && s.isOwnLease(b):
			return leaseTaken, nil
		case err == nil && string(b) != string(seen):
			seen, seenAt = b, time.Now() // a live holder's beat, or a lease seen for the first time
		case err == nil && time.Since(seenAt) >= s.leaseTTL:
			s.log.Warn("content store: taking over a download whose holder stopped", "store", s.desc,
				"digest", d.String(), "lease", string(b))
			if s.takeLease(ctx, d) {
				return leaseTaken, nil
			}
			seen, seenAt = nil, time.Time{}
		case err != nil && isNotFound(err):
			if s.takeLease(ctx, d) {
				return leaseTaken, nil
			}
		case err != nil:
			return leaseTaken, nil // leases unreadable: fetch without one
		}
		if time.Since(start) >= MaxLeaseWait {
			s.log.Warn("content store: another replica's download did not finish in time; fetching too", "store", s.desc,
				"digest", d.String(), "waited", MaxLeaseWait.String())
			return leaseGaveUp, nil
		}
		if err := sleepCtx(ctx, LeasePoll); err != nil {
			return 0, err
		}
	}
}

// takeLease writes this store's lease for d, waits LeaseSettle and reports whether it is
// still there: another replica writing at the same moment wins or loses as one.
func (s *Store) takeLease(ctx context.Context, d digest.Digest) bool {
	if err := s.d.PutContent(ctx, leasePath(d), s.leaseBytes()); err != nil {
		return true // leases not writable: fetch without one
	}
	if sleepCtx(ctx, LeaseSettle) != nil {
		return false
	}
	b, err := s.getBounded(ctx, leasePath(d), MaxLinkSize)
	return err != nil || s.isOwnLease(b)
}

func (s *Store) leaseBytes() []byte {
	b, _ := json.Marshal(lease{Holder: s.holder, Beat: strconv.FormatInt(s.beat.Add(1), 10)})
	return b
}

func (s *Store) isOwnLease(b []byte) bool {
	var l lease
	return json.Unmarshal(b, &l) == nil && l.Holder == s.holder
}

// holdLease beats the lease for d until the returned function is called, which removes
// the lease (if it is still this store's).
func (s *Store) holdLease(ctx context.Context, d digest.Digest) (release func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseBeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				s.d.PutContent(ctx, leasePath(d), s.leaseBytes())
			}
		}
	}()
	return func() {
		cancel()
		<-done
		ctx := context.WithoutCancel(ctx)
		if b, err := s.getBounded(ctx, leasePath(d), MaxLinkSize); err == nil && s.isOwnLease(b) {
			s.d.Delete(ctx, leasePath(d))
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
