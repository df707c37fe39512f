package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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

// keyFiles reads the key files a policy names while it is loaded. When sum is set, every
// file's bytes are written to it as read (length first), for the policy's ID.
type keyFiles struct {
	sum hash.Hash
	// paths are the files read, in order (Policy.KeyFiles).
	paths []string
}

func (k *keyFiles) read(path string) ([]byte, error) {
	if k != nil {
		k.paths = append(k.paths, path)
	}
	data, err := readKeyFile(path)
	if err == nil && k != nil && k.sum != nil {
		writeSized(k.sum, data)
	}
	return data, err
}

// writeSized writes data to h after its length, so that consecutive writes cannot be
// read as other ones.
func writeSized(h hash.Hash, data []byte) {
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
	h.Write(data)
}

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
