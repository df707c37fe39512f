package verify

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
)

func TestReader(t *testing.T) {
	content := []byte(strings.Repeat("pullgate ", 10000))
	good := digest.FromBytes(content)
	tests := []struct {
		name    string
		body    io.Reader
		want    digest.Digest
		size    int64
		wantErr error // nil: the whole content is read and Read ends with io.EOF
	}{
		{name: "exact", body: bytes.NewReader(content), want: good, size: int64(len(content))},
		{name: "one byte at a time", body: iotest.OneByteReader(bytes.NewReader(content)), want: good, size: int64(len(content))},
		{name: "sha512", body: bytes.NewReader(content), want: digest.SHA512.FromBytes(content), size: int64(len(content))},
		{name: "empty", body: bytes.NewReader(nil), want: digest.FromBytes(nil), size: 0},
		{name: "corrupted byte", body: bytes.NewReader(append([]byte("X"), content[1:]...)), want: good, size: int64(len(content)), wantErr: ErrDigestMismatch},
		{name: "short body", body: bytes.NewReader(content[:len(content)-1]), want: good, size: int64(len(content)), wantErr: ErrSizeMismatch},
		{name: "long body", body: bytes.NewReader(append(content, '!')), want: good, size: int64(len(content)), wantErr: ErrSizeMismatch},
		{name: "size announced too small", body: bytes.NewReader(content), want: good, size: int64(len(content)) - 1, wantErr: ErrSizeMismatch},
		{name: "unknown size", body: bytes.NewReader(content), want: good, size: -1},
		{name: "unknown size, corrupted", body: bytes.NewReader(append([]byte("X"), content[1:]...)), want: good, size: -1, wantErr: ErrDigestMismatch},
		{name: "unknown size, truncated", body: bytes.NewReader(content[:100]), want: good, size: -1, wantErr: ErrDigestMismatch},
		{name: "read error passed on", body: iotest.ErrReader(io.ErrClosedPipe), want: good, size: int64(len(content)), wantErr: io.ErrClosedPipe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReader(io.NopCloser(tt.body), tt.want, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("ReadAll: %v", err)
				}
				if want := int64(len(content)); tt.size >= 0 && int64(len(got)) != tt.size || tt.size < 0 && int64(len(got)) != want {
					t.Fatalf("read %d bytes, want %d", len(got), tt.size)
				}
				// The end stays the end.
				if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
					t.Fatalf("Read after EOF = %d, %v", n, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadAll error = %v, want %v", err, tt.wantErr)
			}
			if tt.size >= 0 && int64(len(got)) > tt.size {
				t.Fatalf("passed on %d bytes, more than the %d announced", len(got), tt.size)
			}
			// The failure is sticky.
			if _, err2 := r.Read(make([]byte, 10)); !errors.Is(err2, tt.wantErr) {
				t.Fatalf("second Read error = %v, want %v", err2, tt.wantErr)
			}
		})
	}
}

func TestNewReaderRefuses(t *testing.T) {
	if _, err := NewReader(io.NopCloser(bytes.NewReader(nil)), "sha256:nothex", 0); err == nil {
		t.Error("NewReader accepted an invalid digest")
	}
}
