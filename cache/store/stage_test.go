package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
)

// stagingEmpty fails the test if the spool folder or the driver's staging holds anything.
func stagingEmpty(t *testing.T, f *fixture) {
	t.Helper()
	uploadsEmpty(t, f)
	if entries, _ := os.ReadDir(f.s.spoolDir); len(entries) != 0 {
		t.Fatalf("spool folder holds %d entries", len(entries))
	}
}

func notKept(t *testing.T, f *fixture, data []byte) {
	t.Helper()
	d := digest.FromBytes(data)
	if _, err := f.s.StatBlob(context.Background(), d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("StatBlob: %v, want not found", err)
	}
	if _, err := f.s.OpenBlob(context.Background(), d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("OpenBlob: %v, want not found", err)
	}
}

// endless counts what is read of an endless stream of bytes.
type endless struct{ n int64 }

func (e *endless) Read(p []byte) (int, error) {
	e.n += int64(len(p))
	return len(p), nil
}

func TestStage(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		// One store for the parts: versitygw lives as long as the test that started it.
		f := open(t, b, Options{})
		t.Run("commit", func(t *testing.T) {
			data := randomBytes(t, 3*copyBufferSize+17)
			st, err := f.s.Stage(ctx, digest.FromBytes(data), int64(len(data)), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			notKept(t, f, data) // staged is invisible until Commit
			if err := st.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			bl, err := f.s.OpenBlob(ctx, digest.FromBytes(data))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(bl.Body)
			bl.Body.Close()
			if err != nil || !bytes.Equal(got, data) || !bl.Checked {
				t.Fatalf("kept %d bytes (checked %v): %v", len(got), bl.Checked, err)
			}
			if err := st.Commit(ctx); err == nil {
				t.Fatal("a second Commit succeeded")
			}
			st.Discard() // after Commit: nothing
			if _, err := f.s.StatBlob(ctx, digest.FromBytes(data)); err != nil {
				t.Fatalf("Discard after Commit removed the kept blob: %v", err)
			}
			stagingEmpty(t, f)
			// Staged again while kept: the commit leaves the kept blob and staging empty.
			st, err = f.s.Stage(ctx, digest.FromBytes(data), int64(len(data)), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			stagingEmpty(t, f)
		})
		t.Run("discard", func(t *testing.T) {
			data := randomBytes(t, 1000)
			st, err := f.s.Stage(ctx, digest.FromBytes(data), int64(len(data)), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			st.Discard()
			st.Discard()
			if err := st.Commit(ctx); err == nil {
				t.Fatal("Commit after Discard succeeded")
			}
			notKept(t, f, data)
			stagingEmpty(t, f)
		})
		t.Run("mismatch", func(t *testing.T) {
			data := randomBytes(t, 2*copyBufferSize)
			d, size := digest.FromBytes(data), int64(len(data))
			flipped := bytes.Clone(data)
			flipped[len(flipped)/2] ^= 1
			inf := &endless{}
			for _, c := range []struct {
				name string
				r    io.Reader
				read int64
			}{
				{"flipped byte", bytes.NewReader(flipped), size},
				{"one byte short", bytes.NewReader(data[:size-1]), size - 1},
				{"one byte long", bytes.NewReader(append(bytes.Clone(data), 0)), size + 1},
				// An endless stream (a device) is read no further than size+1.
				{"endless", inf, size + 1},
			} {
				st, err := f.s.Stage(ctx, d, size, c.r)
				var mm *MismatchError
				if st != nil || !errors.As(err, &mm) || !errors.Is(err, ErrMismatch) || mm.Read != c.read {
					t.Fatalf("%s: %v, %v; want a mismatch after %d bytes", c.name, st, err, c.read)
				}
				notKept(t, f, data)
				stagingEmpty(t, f)
			}
			if inf.n > size+1+copyBufferSize {
				t.Fatalf("read %d bytes of an endless stream for a %d byte blob", inf.n, size)
			}
		})
		t.Run("canceled", func(t *testing.T) {
			data := randomBytes(t, 1000)
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if st, err := f.s.Stage(cctx, digest.FromBytes(data), int64(len(data)), bytes.NewReader(data)); st != nil || !errors.Is(err, context.Canceled) {
				t.Fatalf("%v, %v; want canceled", st, err)
			}
			stagingEmpty(t, f)
		})
	})
}
