package policy

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// maxKeyFileSize bounds a key, certificate or keyring file read at load time. Real files
// are a few KiB; the bound only stops a mistaken path (a device, a huge file) from
// exhausting memory.
const maxKeyFileSize = 16 << 20

// LoadError is a key file or key datum that could not be loaded: missing, unreadable or
// unparsable. Path is the JSON path of the policy member that names it.
type LoadError struct {
	Path string
	Err  error
}

func (e *LoadError) Error() string { return e.Path + ": " + e.Err.Error() }

func (e *LoadError) Unwrap() error { return e.Err }

// readKeyFile reads a file named by a policy. Relative paths are relative to the process's
// working directory, as in containers/image.
func readKeyFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("reading key file: empty path")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading key file %q: %w", path, err)
	}
	if len(data) > maxKeyFileSize {
		return nil, fmt.Errorf("reading key file %q: larger than %d bytes", path, maxKeyFileSize)
	}
	return data, nil
}
