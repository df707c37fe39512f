package testsupport

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

// ResponseBuffer is an http.ResponseWriter that keeps a handler's answer for middleware
// to rewrite. Unlike httptest.ResponseRecorder it adds nothing: no sniffed
// Content-Type, so a lie built from it is exactly the one the test wrote.
type ResponseBuffer struct {
	Status int
	Body   bytes.Buffer
	header http.Header
}

// NewResponseBuffer is an empty answer with status 200.
func NewResponseBuffer() *ResponseBuffer {
	return &ResponseBuffer{Status: http.StatusOK, header: http.Header{}}
}

func (b *ResponseBuffer) Header() http.Header         { return b.header }
func (b *ResponseBuffer) WriteHeader(status int)      { b.Status = status }
func (b *ResponseBuffer) Write(p []byte) (int, error) { return b.Body.Write(p) }

// Request is one request a test server received.
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
}

// RequestKind is what a registry request was for, as tests count them.
type RequestKind string

const (
	ManifestByTag    RequestKind = "manifest by tag"
	ManifestByDigest RequestKind = "manifest by digest"
	BlobRequest      RequestKind = "blob"
	OtherRequest     RequestKind = "other"
)

// Kind classifies a registry request by its path.
func (q Request) Kind() RequestKind {
	i := strings.LastIndex(q.Path, "/manifests/")
	switch {
	case i >= 0 && strings.HasPrefix(q.Path[i+len("/manifests/"):], "sha256:"):
		return ManifestByDigest
	case i >= 0:
		return ManifestByTag
	case strings.Contains(q.Path, "/blobs/"):
		return BlobRequest
	}
	return OtherRequest
}

// String is "METHOD path" (and ?query).
func (q Request) String() string {
	if q.RawQuery != "" {
		return q.Method + " " + q.Path + "?" + q.RawQuery
	}
	return q.Method + " " + q.Path
}

// RequestLog records the requests a test server receives; the zero value is ready and
// safe for concurrent use.
type RequestLog struct {
	mu       sync.Mutex
	requests []Request
}

// Record wraps next so that every request is recorded before next serves it.
func (l *RequestLog) Record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.Add(r)
		next.ServeHTTP(w, r)
	})
}

// Add records r.
func (l *RequestLog) Add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Header: r.Header.Clone()})
}

// Requests are the requests recorded so far, in order.
func (l *RequestLog) Requests() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.requests...)
}

// Count is how many recorded requests had method and a path containing part.
func (l *RequestLog) Count(method, part string) int {
	n := 0
	for _, r := range l.Requests() {
		if r.Method == method && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

// CountExact is how many recorded requests had method and exactly path.
func (l *RequestLog) CountExact(method, path string) int {
	n := 0
	for _, r := range l.Requests() {
		if r.Method == method && r.Path == path {
			n++
		}
	}
	return n
}

// Reset forgets the requests recorded so far.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = nil
}

// MemoryRegistry is go-containerregistry's in-memory registry with its log discarded,
// behind mw when mw is set (to make it misbehave).
func MemoryRegistry(mw func(http.Handler) http.Handler, opts ...registry.Option) http.Handler {
	h := registry.New(append([]registry.Option{registry.Logger(log.New(io.Discard, "", 0))}, opts...)...)
	if mw != nil {
		return mw(h)
	}
	return h
}
