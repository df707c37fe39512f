// Package readfile reads the files an operator names (the configuration, the htpasswd
// file, TLS certificates and keys) with the bounds each such read needs: a regular file
// (a FIFO or a device would block or never end), at most a given number of bytes (a
// mistaken path such as a disk image must not be read into memory).
package readfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Sentinels for errors.Is; the errors name the path.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// Open opens the regular file at path for reading. It opens without blocking, so that a
// FIFO (whose open waits for a writer) is refused like a device instead of hanging the
// caller; a regular file reads as usual. Open and stat errors are returned as the os
// package words them (they name the path).
func Open(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is %w", path, ErrNotRegular)
	}
	return f, st, nil
}

// Bounded reads the regular file at path (see Open), at most max bytes. Open, stat and
// read errors are returned as the os package words them (they name the path).
func Bounded(path string, max int64) ([]byte, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, max)
	}
	return data, nil
}

// Refused reports whether err says the file itself is unacceptable (not regular, too
// large), as opposed to unreadable.
func Refused(err error) bool {
	return errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge)
}
