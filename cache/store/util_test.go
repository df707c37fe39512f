package store

import (
	"io"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }

// storagedriverPath reports whether a path component is one the drivers accept.
func storagedriverPath(c string) bool {
	return c != "." && c != ".." && storagedriver.PathRegexp.MatchString("/"+c)
}
