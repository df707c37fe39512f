package store

import (
	"context"
	"io"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkFetchCold: a first pull of a 64 MiB blob through Fetch with the filesystem driver
// (spool, hash, commit by rename).
func BenchmarkFetchCold(b *testing.B) {
	data := randomBytes(b, 64<<20)
	d := digest.FromBytes(data)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		b.StopTimer()
		drv, err := NewDriver(context.Background(), map[string]any{"filesystem": map[string]any{"rootdirectory": b.TempDir()}}, "/")
		if err != nil {
			b.Fatal(err)
		}
		s, err := Open(context.Background(), Options{Driver: drv})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		body, _, err := s.Fetch(context.Background(), d, newUpstream(data).open)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, body); err != nil || n != int64(len(data)) {
			b.Fatal(n, err)
		}
		body.Close()
		waitDone(s, d)
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkServeKept: a warm read of a kept, checked 64 MiB blob (the *os.File).
func BenchmarkServeKept(b *testing.B) {
	data := randomBytes(b, 64<<20)
	drv, _ := NewDriver(context.Background(), map[string]any{"filesystem": map[string]any{"rootdirectory": b.TempDir()}}, "/")
	s, err := Open(context.Background(), Options{Driver: drv})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	d := digest.FromBytes(data)
	body, _, _ := s.Fetch(context.Background(), d, newUpstream(data).open)
	io.Copy(io.Discard, body)
	body.Close()
	waitDone(s, d)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		bl, err := s.OpenBlob(context.Background(), d)
		if err != nil || !bl.Checked {
			b.Fatal(err)
		}
		io.Copy(io.Discard, bl.Body)
		bl.Body.Close()
	}
}
