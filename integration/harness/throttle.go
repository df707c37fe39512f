package harness

import (
	"github.com/pullgate/pullgate/internal/testsupport"

	"net/http"
	"strconv"
	"sync"
	"time"
)

// Throttle is a registry middleware (WithMiddleware(th.Middleware)) that slows down the
// blob GETs it is told about: for a digest in half-then-hang mode it sends the headers
// (the full Content-Length) and the first half of the body, then waits until Release,
// the client going away, or the request context ending; for a paced digest it sends the
// body in chunks with a pause between them. Other requests pass untouched.
//
// Registry.Stop and the registry's cleanup wait for handlers in flight: a test using
// half-then-hang must call Release before either (t.Cleanup(th.Release) registered after
// StartRegistry runs first).
type Throttle struct {
	mu      sync.Mutex
	hang    map[string]bool // digest → half then hang
	pace    map[string]time.Duration
	chunk   int
	halfOut chan string // receives the digest once its half has been flushed
	release chan struct{}
	once    sync.Once
}

// NewThrottle returns a Throttle that lets everything through until told otherwise.
func NewThrottle() *Throttle {
	return &Throttle{hang: map[string]bool{}, pace: map[string]time.Duration{}, chunk: 64 << 10,
		halfOut: make(chan string, 64), release: make(chan struct{})}
}

// HalfThenHang makes GETs of blob digest send half of the body and hang.
func (th *Throttle) HalfThenHang(digest string) {
	th.mu.Lock()
	th.hang[digest] = true
	th.mu.Unlock()
}

// Pace makes GETs of blob digest send 64 KiB, then pause for pause, until the end.
func (th *Throttle) Pace(digest string, pause time.Duration) {
	th.mu.Lock()
	th.pace[digest] = pause
	th.mu.Unlock()
}

// Clear lets GETs of digest through untouched from the next request on.
func (th *Throttle) Clear(digest string) {
	th.mu.Lock()
	delete(th.hang, digest)
	delete(th.pace, digest)
	th.mu.Unlock()
}

// HalfSent receives the digest of every half-then-hang GET once its first half has been
// written and flushed to the client.
func (th *Throttle) HalfSent() <-chan string { return th.halfOut }

// Release ends every hanging GET (their bodies stay cut short) and every later one
// returns at once after its half. Calling it again does nothing.
func (th *Throttle) Release() { th.once.Do(func() { close(th.release) }) }

// Middleware wraps a registry handler.
func (th *Throttle) Middleware(next http.Handler) http.Handler {
	return InterceptBlobGETs(next, func(w http.ResponseWriter, r *http.Request, digest string) {
		th.mu.Lock()
		hang, pause := th.hang[digest], th.pace[digest]
		th.mu.Unlock()
		if !hang && pause == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rec := testsupport.NewResponseBuffer()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Status)
		flusher, _ := w.(http.Flusher)
		if hang {
			_, _ = w.Write(body[:len(body)/2])
			if flusher != nil {
				flusher.Flush()
			}
			select {
			case th.halfOut <- digest:
			default:
			}
			select {
			case <-th.release:
			case <-r.Context().Done():
			}
			// Returning without the rest: net/http closes the connection, since fewer
			// bytes than Content-Length were written.
			return
		}
		for off := 0; off < len(body); off += th.chunk {
			end := min(off+th.chunk, len(body))
			if _, err := w.Write(body[off:end]); err != nil {
				return
			}
			if flusher != nil {
				flusher.Flush()
			}
			if end < len(body) {
				select {
				case <-time.After(pause):
				case <-r.Context().Done():
					return
				}
			}
		}
	})
}
