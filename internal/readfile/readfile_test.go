package readfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

func TestBounded(t *testing.T) {
	dir := t.TempDir()
	small := filepath.Join(dir, "small")
	testsupport.WriteFile(t, small, []byte("12345"))
	// A FIFO without a writer: a blocking open would wait forever.
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		max  int64
		want error // nil: read
	}{
		{"within the bound", small, 5, nil},
		{"over the bound", small, 4, ErrTooLarge},
		{"a folder", dir, 5, ErrNotRegular},
		{"a FIFO", fifo, 5, ErrNotRegular},
		{"a link to a device", zero, 5, ErrNotRegular},
		{"missing", filepath.Join(dir, "nope"), 5, fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data, err := Bounded(tc.path, tc.max)
			if tc.want == nil {
				if err != nil || string(data) != "12345" {
					t.Fatalf("Bounded = %q, %v", data, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Bounded = %v, want %v", err, tc.want)
			}
			if Refused(err) != (tc.want == ErrTooLarge || tc.want == ErrNotRegular) {
				t.Fatalf("Refused(%v) wrong", err)
			}
		})
	}
}
