package harness

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ObjectStorage is an object store on 127.0.0.1 that a registry sends blob requests to
// with a 307 and a presigned URL, as registries on S3 or GCS do. It serves the blobs it
// was given by digest below /bucket/ and records the Authorization header of every
// request, so that a test can check that no credential went along.
type ObjectStorage struct {
	URL   string
	blobs map[string][]byte

	mu   sync.Mutex
	auth []string
}

// StartObjectStorage serves blobs (by digest string) until the test ends.
func StartObjectStorage(t testing.TB, blobs map[string][]byte) *ObjectStorage {
	t.Helper()
	s := &ObjectStorage{blobs: blobs}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.auth = append(s.auth, r.Header.Get("Authorization"))
		s.mu.Unlock()
		b, ok := s.blobs[strings.TrimPrefix(r.URL.Path, "/bucket/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// RedirectBlobs is registry middleware (WithMiddleware) that answers a blob request for
// a digest the storage holds with a 307 to its presigned URL, when when(r) is true.
func (s *ObjectStorage) RedirectBlobs(when func(*http.Request) bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
			if strings.Contains(r.URL.Path, "/blobs/") && s.blobs[d] != nil && when(r) {
				http.Redirect(w, r, s.URL+"/bucket/"+d+"?X-Amz-Signature=presigned", http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Authorizations are the Authorization headers of the requests so far, "" for a
// request without one.
func (s *ObjectStorage) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.auth...)
}
