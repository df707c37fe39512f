package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/internal/testsupport/versitygw"
)

// backend makes storage drivers of one kind; again returns a new driver on the same
// storage (a restart).
type backend struct {
	name string
	new  func(t *testing.T) (d storagedriver.StorageDriver, again func() storagedriver.StorageDriver)
}

// backends are the drivers every store test runs against: inmemory, filesystem and s3 on
// a real versitygw (started by the first s3 subtest, one key prefix per store).
func backends(t *testing.T) []backend {
	var (
		once sync.Once
		srv  *versitygw.Server
		n    atomic.Int64
	)
	return []backend{
		{"inmemory", func(t *testing.T) (storagedriver.StorageDriver, func() storagedriver.StorageDriver) {
			d := inmemory.New()
			return d, func() storagedriver.StorageDriver { return d }
		}},
		{"filesystem", func(t *testing.T) (storagedriver.StorageDriver, func() storagedriver.StorageDriver) {
			root := t.TempDir()
			mk := func() storagedriver.StorageDriver {
				d, err := NewDriver(context.Background(), map[string]any{"filesystem": map[string]any{"rootdirectory": root}}, "/")
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			return mk(), mk
		}},
		{"s3", func(t *testing.T) (storagedriver.StorageDriver, func() storagedriver.StorageDriver) {
			once.Do(func() {
				srv = versitygw.Start(t)
				srv.CreateBucket(t, "pullgate")
			})
			params := srv.DriverParams("pullgate", fmt.Sprintf("/t%d", n.Add(1)))
			mk := func() storagedriver.StorageDriver {
				d, err := NewDriver(context.Background(), map[string]any{"s3": params}, "/")
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			return mk(), mk
		}},
	}
}

// forEachBackend runs f as a subtest per backend; the s3 subtest starts its own versitygw.
func forEachBackend(t *testing.T, f func(t *testing.T, b backend)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { f(t, b) })
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	s     *Store
	d     storagedriver.StorageDriver
	again func() storagedriver.StorageDriver
	logs  *testsupport.LogBuffer
	clock *clock
}

// open opens a store on a new driver of b.
func open(t *testing.T, b backend, o Options) *fixture {
	t.Helper()
	d, again := b.new(t)
	return openOn(t, d, again, o, newClock())
}

func openOn(t *testing.T, d storagedriver.StorageDriver, again func() storagedriver.StorageDriver, o Options, c *clock) *fixture {
	t.Helper()
	f := &fixture{d: d, again: again, logs: &testsupport.LogBuffer{}, clock: c}
	o.Driver = d
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(f.logs, nil))
	}
	if o.Now == nil {
		o.Now = f.clock.Now
	}
	if o.SpoolDir == "" {
		o.SpoolDir = t.TempDir()
	}
	s, err := Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.s = s
	return f
}

// restart closes the store and opens a new one on the same storage.
func (f *fixture) restart(t *testing.T, o Options) *fixture {
	t.Helper()
	f.s.Close()
	return openOn(t, f.again(), f.again, o, f.clock)
}

func randomBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// testManifest makes manifest bytes naming the layers (the store does not parse them).
func testManifest(t testing.TB, mediaType string, refs ...digest.Digest) Manifest {
	var b struct {
		MediaType string          `json:"mediaType"`
		Refs      []digest.Digest `json:"refs"`
		Nonce     []byte          `json:"nonce"`
	}
	b.MediaType, b.Refs, b.Nonce = mediaType, refs, randomBytes(t, 8)
	j, _ := json.Marshal(b)
	return Manifest{MediaType: mediaType, Digest: digest.FromBytes(j), Bytes: j}
}

// upstream is a fake upstream body source counting its opens.
type upstream struct {
	data  []byte
	size  int64 // announced; set -2 to announce len(data)
	opens atomic.Int64
	gate  chan struct{} // when set, the body blocks before byte `at` until closed
	at    int
	cut   int   // when >0, the body fails after cut bytes
	err   error // returned by open
	// openGate, when set, holds open until closed.
	openGate chan struct{}
}

func newUpstream(data []byte) *upstream { return &upstream{data: data, size: int64(len(data))} }

// newHalfGatedUpstream is newUpstream with a body that blocks halfway until u.gate is
// closed.
func newHalfGatedUpstream(data []byte) *upstream {
	u := newUpstream(data)
	u.gate, u.at = make(chan struct{}), len(data)/2
	return u
}

func (u *upstream) open(ctx context.Context) (io.ReadCloser, int64, error) {
	u.opens.Add(1)
	if u.openGate != nil {
		select {
		case <-u.openGate:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
	if u.err != nil {
		return nil, 0, u.err
	}
	return &gatedBody{u: u}, u.size, nil
}

type gatedBody struct {
	u   *upstream
	off int
}

var errCut = errors.New("connection reset by test")

func (b *gatedBody) Read(p []byte) (int, error) {
	u := b.u
	if u.gate != nil && b.off == u.at {
		<-u.gate
	}
	end := len(u.data)
	if u.gate != nil && b.off < u.at {
		end = u.at
	}
	if u.cut > 0 && end > u.cut {
		end = u.cut
	}
	if b.off >= end {
		if u.cut > 0 && b.off >= u.cut {
			return 0, errCut
		}
		return 0, io.EOF
	}
	n := copy(p, u.data[b.off:end])
	b.off += n
	return n, nil
}

func (b *gatedBody) Close() error { return nil }

// fetchAll fetches d from u and reads the whole body.
func fetchAll(t *testing.T, s *Store, d digest.Digest, u *upstream) ([]byte, error) {
	t.Helper()
	body, _, err := s.Fetch(context.Background(), d, u.open)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}

// keep fetches data into the store and checks it was kept.
func keep(t *testing.T, s *Store, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	got, err := fetchAll(t, s, d, newUpstream(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch %s: %v", d, err)
	}
	waitKept(t, s, d)
	return d
}

// waitKept waits until the download of d has committed: the commit follows the readers'
// EOF, and the test's deadline bounds the wait.
func waitKept(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	for s.fetching(d) {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.StatBlob(context.Background(), d); err != nil {
		t.Fatalf("%s not kept: %v", d, err)
	}
}

// waitDone waits until no download of d is in flight.
func waitDone(s *Store, d digest.Digest) {
	for s.fetching(d) {
		time.Sleep(time.Millisecond)
	}
}

// waitSpoolGone waits (at most 10 s) for a failed fetch's spool file to be removed: the
// fetch leaves the in-flight table before its deferred clean-up runs, so waitDone can
// return a moment before the file is gone. The callers then check that nothing is left.
func waitSpoolGone(f *fixture) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		names, _ := f.d.List(context.Background(), uploadsPath)
		entries, _ := os.ReadDir(f.s.spoolDir)
		if len(names) == 0 && len(entries) == 0 {
			return
		}
	}
}

// uploadsEmpty fails the test if staging holds anything.
func uploadsEmpty(t *testing.T, f *fixture) {
	t.Helper()
	names, err := f.d.List(context.Background(), uploadsPath)
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	if len(names) != 0 {
		t.Fatalf("staging holds %v", names)
	}
}

// localPath is the file of a driver path with the filesystem driver.
func localPath(f *fixture, p string) string {
	return filepath.Join(f.s.local, filepath.FromSlash(p))
}
