package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// startReaders makes n Fetch calls for d and waits until every one has its reader (joined
// the same download: the body is held at u.at until the test opens u.gate). Each then reads
// the whole body; results arrive on the returned channel.
type readResult struct {
	data []byte
	err  error
}

func startReaders(t *testing.T, s *Store, d digest.Digest, u *upstream, n int) <-chan readResult {
	t.Helper()
	out := make(chan readResult, n)
	var joined sync.WaitGroup
	joined.Add(n)
	for range n {
		go func() {
			body, _, err := s.Fetch(ctx, d, u.open)
			joined.Done()
			if err != nil {
				out <- readResult{err: err}
				return
			}
			defer body.Close()
			b, err := io.ReadAll(body)
			out <- readResult{b, err}
		}()
	}
	joined.Wait()
	return out
}

func TestFetchShared(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		data := randomBytes(t, 3<<20+17)
		d := digest.FromBytes(data)
		u := newHalfGatedUpstream(data)
		const n = 8
		results := startReaders(t, f.s, d, u, n)
		close(u.gate)
		for range n {
			r := <-results
			if r.err != nil || !bytes.Equal(r.data, data) {
				t.Fatalf("reader: %d bytes, %v", len(r.data), r.err)
			}
		}
		if got := u.opens.Load(); got != 1 {
			t.Fatalf("%d upstream opens for %d concurrent callers, want 1", got, n)
		}
		waitKept(t, f.s, d)
		bl, err := f.s.OpenBlob(ctx, d)
		if err != nil || !bl.Checked || bl.Size != int64(len(data)) {
			t.Fatalf("kept: %+v %v", bl, err)
		}
		bl.Body.Close()
		// Kept: the next Fetch opens it, the upstream is not asked.
		if got, err := fetchAll(t, f.s, d, u); err != nil || !bytes.Equal(got, data) || u.opens.Load() != 1 {
			t.Fatalf("warm fetch: %v, opens %d", err, u.opens.Load())
		}
		if b.name == "filesystem" {
			onDisk, _ := os.ReadFile(localPath(f, blobPath(d)))
			if !bytes.Equal(onDisk, data) {
				t.Fatal("kept file differs")
			}
		}
		uploadsEmpty(t, f)
		if st := f.s.Stats(); st.BytesKept < int64(len(data)) {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestFetchLateJoiner(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := open(t, b, Options{})
		data := randomBytes(t, 1<<20)
		d := digest.FromBytes(data)
		u := newHalfGatedUpstream(data)
		first, size, err := f.s.Fetch(ctx, d, u.open)
		if err != nil || size != int64(len(data)) {
			t.Fatal(err, size)
		}
		defer first.Close()
		head := make([]byte, len(data)/2)
		if _, err := io.ReadFull(first, head); err != nil {
			t.Fatal(err)
		}
		late, _, err := f.s.Fetch(ctx, d, u.open)
		if err != nil {
			t.Fatal(err)
		}
		defer late.Close()
		close(u.gate)
		got, err := io.ReadAll(late)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("late joiner: %d bytes, %v", len(got), err)
		}
		rest, err := io.ReadAll(first)
		if err != nil || !bytes.Equal(append(head, rest...), data) {
			t.Fatalf("first: %v", err)
		}
		if u.opens.Load() != 1 {
			t.Fatalf("%d opens", u.opens.Load())
		}
		waitKept(t, f.s, d)
	})
}

// TestFetchBadBody: a body that does not match its digest or size, or is cut short, ends
// every reader with an error and leaves nothing behind.
func TestFetchBadBody(t *testing.T) {
	good := randomBytes(t, 512<<10)
	d := digest.FromBytes(good)
	flipped := append([]byte{}, good...)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name string
		body []byte
		size int64
		cut  int
		want error
	}{
		{"wrong bytes", flipped, int64(len(good)), 0, ErrMismatch},
		{"wrong bytes, size unknown", flipped, -1, 0, ErrMismatch},
		{"longer than announced", append(append([]byte{}, good...), 'x'), int64(len(good)), 0, ErrMismatch},
		{"shorter than announced", good[:len(good)-1], int64(len(good)), 0, ErrMismatch},
		{"right bytes, size announced wrong", good, int64(len(good)) + 1, 0, ErrMismatch},
		{"cut short", good, int64(len(good)), len(good) - 100, errCut},
		{"cut short, size unknown", good, -1, len(good) - 100, errCut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				f := open(t, b, Options{})
				u := &upstream{data: tc.body, size: tc.size, cut: tc.cut, gate: make(chan struct{}), at: 1000}
				results := startReaders(t, f.s, d, u, 3)
				close(u.gate)
				for range 3 {
					r := <-results
					if !errors.Is(r.err, tc.want) {
						t.Fatalf("reader: %d bytes, err %v, want %v", len(r.data), r.err, tc.want)
					}
				}
				waitDone(f.s, d)
				if _, err := f.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
					t.Fatalf("kept after a bad body: %v", err)
				}
				waitSpoolGone(f)
				uploadsEmpty(t, f)
				if entries, _ := os.ReadDir(f.s.spoolDir); len(entries) != 0 {
					t.Fatalf("spool left: %v", entries)
				}
				if u.opens.Load() != 1 {
					t.Fatalf("%d opens", u.opens.Load())
				}
			})
		})
	}
}

// TestFetchOpenError: open's error reaches every waiting caller as is, before any body.
func TestFetchOpenError(t *testing.T) {
	f := open(t, backends(t)[0], Options{})
	errDenied := fmt.Errorf("upstream said 401")
	u := &upstream{err: errDenied, openGate: make(chan struct{})}
	d := digest.FromString("x")
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, _, err := f.s.Fetch(ctx, d, u.open)
			errs <- err
		}()
	}
	testsupport.WaitForCallers(t, "store.(*Store).Fetch(", n)
	close(u.openGate)
	for range n {
		if err := <-errs; err != errDenied {
			t.Fatalf("err = %v, want open's error as is", err)
		}
	}
	if u.opens.Load() != 1 {
		t.Fatalf("%d opens", u.opens.Load())
	}
}

// TestFetchCallerGoesAway: a caller that cancels (the one that started the download, or one
// that joined) stops only its own reader.
func TestFetchCallerGoesAway(t *testing.T) {
	for _, starterCancels := range []bool{true, false} {
		t.Run(fmt.Sprintf("starter cancels %v", starterCancels), func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				f := open(t, b, Options{})
				data := randomBytes(t, 1<<20)
				d := digest.FromBytes(data)
				u := newHalfGatedUpstream(data)
				cctx, cancel := context.WithCancel(ctx)
				defer cancel()
				var leaving, staying io.ReadCloser
				var err error
				if starterCancels {
					leaving, _, err = f.s.Fetch(cctx, d, u.open)
					if err == nil {
						staying, _, err = f.s.Fetch(ctx, d, u.open)
					}
				} else {
					staying, _, err = f.s.Fetch(ctx, d, u.open)
					if err == nil {
						leaving, _, err = f.s.Fetch(cctx, d, u.open)
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				defer staying.Close()
				head := make([]byte, len(data)/2)
				if _, err := io.ReadFull(leaving, head); err != nil {
					t.Fatal(err)
				}
				cancel()
				if _, err := leaving.Read(make([]byte, 10)); !errors.Is(err, context.Canceled) {
					t.Fatalf("cancelled reader: %v", err)
				}
				leaving.Close()
				close(u.gate)
				got, err := io.ReadAll(staying)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("staying reader: %d bytes, %v", len(got), err)
				}
				waitKept(t, f.s, d)
				if u.opens.Load() != 1 {
					t.Fatalf("%d opens", u.opens.Load())
				}
			})
		})
	}
}

// TestAbandonedStaging: what a killed process left in staging is never served, and is
// removed at Open once older than StagingMaxAge (a younger one may be a live replica's).
func TestAbandonedStaging(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		spoolDir := t.TempDir()
		f := open(t, b, Options{SpoolDir: spoolDir})
		data := randomBytes(t, 10000)
		d := digest.FromBytes(data)
		// A partial spool of d and a staging object, as a kill -9 leaves them.
		staging := uploadsPath + "/" + randomName()
		if err := f.d.PutContent(ctx, staging, data[:5000]); err != nil {
			t.Fatal(err)
		}
		localSpool := filepath.Join(spoolDir, spoolPrefix+"killed")
		testsupport.WriteFile(t, localSpool, data[:5000])

		f2 := f.restart(t, Options{SpoolDir: spoolDir})
		if _, err := f2.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a partial download is served: %v", err)
		}
		if ok, _ := f2.s.exists(ctx, staging); !ok {
			t.Fatal("recent staging removed (it may be a live replica's)")
		}
		f2.clock.t = time.Now().Add(StagingMaxAge + time.Minute)
		f3 := f2.restart(t, Options{SpoolDir: spoolDir})
		if ok, _ := f3.s.exists(ctx, staging); ok {
			t.Fatal("old staging not purged")
		}
		if _, err := os.Stat(localSpool); b.name != "filesystem" && !os.IsNotExist(err) {
			t.Fatalf("old spool not purged: %v", err)
		}
		if len(f3.logs.Lines("removed staging")) != 1 {
			t.Fatalf("logs:\n%s", f3.logs)
		}
		// And the blob is fetched whole.
		if got, err := fetchAll(t, f3.s, d, newUpstream(data)); err != nil || !bytes.Equal(got, data) {
			t.Fatal(err)
		}
	})
}

// failingDriver fails every write once armed: a store whose disk is full or whose S3
// endpoint went down after start.
type failingDriver struct {
	storagedriver.StorageDriver
	armed atomic.Bool
}

var errStoreDown = errors.New("no space left on device (test)")

func (d *failingDriver) PutContent(ctx context.Context, p string, b []byte) error {
	if d.armed.Load() {
		return errStoreDown
	}
	return d.StorageDriver.PutContent(ctx, p, b)
}

func (d *failingDriver) Writer(ctx context.Context, p string, a bool) (storagedriver.FileWriter, error) {
	if d.armed.Load() {
		return nil, errStoreDown
	}
	return d.StorageDriver.Writer(ctx, p, a)
}

func (d *failingDriver) Move(ctx context.Context, a, b string) error {
	if d.armed.Load() {
		return errStoreDown
	}
	return d.StorageDriver.Move(ctx, a, b)
}

// TestFetchUnwritable: a store that cannot be written never fails a pull the upstream can
// serve: the bytes are relayed, nothing is kept, and one error line says so.
func TestFetchUnwritable(t *testing.T) {
	setups := []struct {
		name  string
		setup func(t *testing.T) *fixture
	}{
		{"store writes fail (inmemory)", func(t *testing.T) *fixture {
			fd := &failingDriver{StorageDriver: inmemory.New()}
			f := openOn(t, fd, nil, Options{}, newClock())
			fd.armed.Store(true)
			return f
		}},
		{"spool folder unusable", func(t *testing.T) *fixture {
			f := open(t, backends(t)[0], Options{})
			file := filepath.Join(t.TempDir(), "file")
			testsupport.WriteFile(t, file, "")
			f.s.spoolDir = filepath.Join(file, "spool")
			return f
		}},
		{"filesystem staging folder unusable", func(t *testing.T) *fixture {
			f := open(t, backends(t)[1], Options{})
			up := localPath(f, uploadsPath)
			os.RemoveAll(up)
			testsupport.WriteFile(t, up, "") // root ignores permissions; a file in the way stops it
			return f
		}},
	}
	for _, tc := range setups {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.setup(t)
			data := randomBytes(t, 300<<10)
			d := digest.FromBytes(data)
			u := newUpstream(data)
			got, err := fetchAll(t, f.s, d, u)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("relayed: %d bytes, %v", len(got), err)
			}
			waitDone(f.s, d)
			if _, err := f.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("kept: %v", err)
			}
			// Following fetches relay directly, without a second line.
			data2 := randomBytes(t, 1000)
			u2 := newUpstream(data2)
			for range 2 {
				if got, err := fetchAll(t, f.s, digest.FromBytes(data2), u2); err != nil || !bytes.Equal(got, data2) {
					t.Fatal(err)
				}
			}
			if u2.opens.Load() != 2 {
				t.Fatalf("%d opens", u2.opens.Load())
			}
			// A relayed body is still verified.
			bad := newUpstream(append([]byte{}, data...))
			bad.data[0] ^= 1
			if _, err := fetchAll(t, f.s, d, bad); !errors.Is(err, ErrMismatch) {
				t.Fatalf("relayed wrong bytes: %v", err)
			}
			// Small writes fail at once meanwhile, without another line.
			m := testManifest(t, "x")
			if err := f.s.PutManifest(ctx, "docker.io", "a", m, Refs{}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("PutManifest while unwritable: %v", err)
			}
			if n := len(f.logs.Lines("level=ERROR", "content store unwritable")); n != 1 {
				t.Fatalf("%d error lines, want 1:\n%s", n, f.logs)
			}
			// After UnwritableFor the store is tried again (and fails again: one more line).
			f.clock.Add(UnwritableFor + time.Second)
			fetchAll(t, f.s, digest.FromBytes(data2), u2)
			waitDone(f.s, digest.FromBytes(data2))
			if n := len(f.logs.Lines("level=ERROR", "content store unwritable")); n != 2 {
				t.Fatalf("%d error lines after the pause, want 2:\n%s", n, f.logs)
			}
		})
	}
}

// failAfter fails writes with ENOSPC once n bytes went through: a disk that fills up
// mid-download.
type failAfter struct {
	w io.Writer
	n int64
}

func (f *failAfter) Write(p []byte) (int, error) {
	if int64(len(p)) > f.n {
		k, _ := f.w.Write(p[:f.n])
		f.n = 0
		return k, &os.PathError{Op: "write", Path: "spool", Err: syscall.ENOSPC}
	}
	f.n -= int64(len(p))
	return f.w.Write(p)
}

// TestFetchDiskFullMidway: the spool fills up mid-download; every reader still gets the
// whole body, verified, each fetching the rest itself; nothing is kept. An upstream that
// serves other bytes the second time is caught.
func TestFetchDiskFullMidway(t *testing.T) {
	for _, b := range backends(t)[:2] {
		t.Run(b.name, func(t *testing.T) {
			f := open(t, b, Options{})
			data := randomBytes(t, 2<<20)
			d := digest.FromBytes(data)
			f.s.spoolWrap = func(w io.Writer) io.Writer { return &failAfter{w: w, n: int64(len(data)) * 3 / 4} }
			u := newHalfGatedUpstream(data)
			results := startReaders(t, f.s, d, u, 3)
			close(u.gate)
			for range 3 {
				if r := <-results; r.err != nil || !bytes.Equal(r.data, data) {
					t.Fatalf("reader: %d bytes, %v", len(r.data), r.err)
				}
			}
			if got := u.opens.Load(); got != 4 {
				t.Fatalf("%d opens, want 1 shared + 3 for the rest", got)
			}
			waitDone(f.s, d)
			if _, err := f.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
				t.Fatalf("kept: %v", err)
			}
			if n := len(f.logs.Lines("level=ERROR", "content store unwritable")); n != 1 {
				t.Fatalf("%d error lines:\n%s", n, f.logs)
			}
			uploadsEmpty(t, f)

			// The attack: the second answer differs after the point of failure.
			f.clock.Add(UnwritableFor + time.Second)
			var opens atomic.Int64
			tampered := append([]byte{}, data...)
			tampered[len(data)-10] ^= 1
			gate := make(chan struct{})
			open := func(ctx context.Context) (io.ReadCloser, int64, error) {
				if opens.Add(1) == 1 {
					u := newUpstream(data)
					u.gate, u.at = gate, len(data)/2
					return u.open(ctx)
				}
				return io.NopCloser(bytes.NewReader(tampered)), int64(len(data)), nil
			}
			body, _, err := f.s.Fetch(ctx, d, open)
			if err != nil {
				t.Fatal(err)
			}
			close(gate)
			if got, err := io.ReadAll(body); !errors.Is(err, ErrMismatch) {
				t.Fatalf("tampered rest: %d bytes, %v", len(got), err)
			}
			body.Close()
		})
	}
}
