package store

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// sharedBackends are the drivers replicas can share (inmemory lives in one process).
func sharedBackends(t *testing.T) []backend {
	var out []backend
	for _, b := range backends(t) {
		if b.name != "inmemory" {
			out = append(out, b)
		}
	}
	return out
}

// twoReplicas opens two stores on the same storage, as two replicas do.
func twoReplicas(t *testing.T, b backend) (a, c *fixture) {
	t.Helper()
	d, again := b.new(t)
	a = openOn(t, d, again, Options{}, newClock())
	c = openOn(t, again(), again, Options{}, newClock())
	return a, c
}

func readAll(t *testing.T, body io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A blob missing from a shared store is fetched upstream once by two replicas: the second
// waits on the first one's lease and serves what it committed.
func TestLeaseOneFetchAcrossReplicas(t *testing.T) {
	for _, b := range sharedBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			a, c := twoReplicas(t, b)
			data := randomBytes(t, 3<<20)
			d := digest.FromBytes(data)
			ua, uc := newUpstream(data), newUpstream(data)
			ua.gate, ua.at = make(chan struct{}), 1<<20

			bodyA, _, errA := a.s.Fetch(context.Background(), d, ua.open)
			if errA != nil {
				t.Fatal(errA)
			}
			// A holds the lease and streams; C arrives while A's download is in flight.
			for ua.opens.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			var gotC []byte
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				body, _, err := c.s.Fetch(context.Background(), d, uc.open)
				gotC = readAll(t, body, err)
			}()
			close(ua.gate)
			if got := readAll(t, bodyA, nil); !bytes.Equal(got, data) {
				t.Fatal("replica A served other bytes")
			}
			wg.Wait()
			if !bytes.Equal(gotC, data) {
				t.Fatal("replica C served other bytes")
			}
			if n := ua.opens.Load() + uc.opens.Load(); n != 1 {
				t.Errorf("%d upstream fetches, want 1 (A %d, C %d)", n, ua.opens.Load(), uc.opens.Load())
			}
			if _, err := a.d.Stat(context.Background(), leasePath(d)); !isNotFound(err) {
				t.Errorf("the lease outlived the download: %v", err)
			}
		})
	}
}

// A lease whose holder died (kill -9: it never beats again, never removes it) is taken
// over once it has not changed for the lease TTL; the blob is fetched and kept.
func TestLeaseHolderDied(t *testing.T) {
	for _, b := range sharedBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			a, c := twoReplicas(t, b)
			c.s.leaseTTL = 300 * time.Millisecond
			data := randomBytes(t, 64<<10)
			d := digest.FromBytes(data)
			if err := a.d.PutContent(context.Background(), leasePath(d), []byte(`{"holder":"dead","beat":"7"}`)); err != nil {
				t.Fatal(err)
			}
			u := newUpstream(data)
			body, _, err := c.s.Fetch(context.Background(), d, u.open)
			if got := readAll(t, body, err); !bytes.Equal(got, data) {
				t.Fatal("other bytes after taking over")
			}
			waitKept(t, c.s, d)
			if u.opens.Load() != 1 {
				t.Errorf("%d upstream fetches, want 1", u.opens.Load())
			}
			if !strings.Contains(c.logs.String(), "taking over a download whose holder stopped") {
				t.Errorf("no line says the lease was taken over:\n%s", c.logs)
			}
		})
	}
}

// Two replicas committing the same blob at the same moment (leases off, so both
// download) leave exactly its bytes in the store.
func TestConcurrentCommitsOfOneBlob(t *testing.T) {
	for _, b := range sharedBackends(t) {
		t.Run(b.name, func(t *testing.T) {
			a, c := twoReplicas(t, b)
			a.s.leases, c.s.leases = false, false
			data := randomBytes(t, 6<<20)
			d := digest.FromBytes(data)
			gate := make(chan struct{})
			var wg sync.WaitGroup
			var ups []*upstream
			for _, f := range []*fixture{a, c} {
				u := newUpstream(data)
				ups = append(ups, u)
				u.gate, u.at = gate, len(data)-1
				wg.Add(1)
				go func() {
					defer wg.Done()
					body, _, err := f.s.Fetch(context.Background(), d, u.open)
					if got := readAll(t, body, err); !bytes.Equal(got, data) {
						t.Error("other bytes")
					}
					waitKept(t, f.s, d)
				}()
			}
			// Both are downloading (and stop before the last byte), then finish and commit
			// together.
			for _, u := range ups {
				for u.opens.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			close(gate)
			wg.Wait()
			r, err := a.d.Reader(context.Background(), blobPath(d), 0)
			if got := readAll(t, r, err); digest.FromBytes(got) != d {
				t.Fatalf("the kept object (%d bytes) does not hash to its digest", len(got))
			}
		})
	}
}
