package testsupport

import (
	"net/http"
	"sync/atomic"
)

// CountingWriter is an http.ResponseWriter that adds the body bytes written through it
// to N.
type CountingWriter struct {
	http.ResponseWriter
	N *atomic.Int64
}

func (w CountingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.N.Add(int64(n))
	return n, err
}
