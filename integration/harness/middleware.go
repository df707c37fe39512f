package harness

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// RewriteResponses returns a registry middleware that buffers the answers to requests
// matching match and lets change rewrite them (status, headers, body) before they are
// sent, with Content-Length set to the new body's length unless change sets one itself.
// Tests use it to make an upstream lie.
func RewriteResponses(match func(*http.Request) bool, change func(r *http.Request, status int, h http.Header, body []byte) (int, []byte)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r) {
				next.ServeHTTP(w, r)
				return
			}
			rec := testsupport.NewResponseBuffer()
			next.ServeHTTP(rec, r)
			rec.Header().Del("Content-Length")
			status, body := change(r, rec.Status, rec.Header(), rec.Body.Bytes())
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			if w.Header().Get("Content-Length") == "" {
				w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			}
			w.WriteHeader(status)
			if r.Method != http.MethodHead {
				_, _ = w.Write(body)
			}
		})
	}
}

// InterceptBlobGETs returns a handler that gives every GET of a blob to serve, with the
// digest the path names, and every other request to next.
func InterceptBlobGETs(next http.Handler, serve func(w http.ResponseWriter, r *http.Request, digest string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := strings.LastIndex(r.URL.Path, "/blobs/")
		if r.Method != http.MethodGet || i < 0 {
			next.ServeHTTP(w, r)
			return
		}
		serve(w, r, r.URL.Path[i+len("/blobs/"):])
	})
}

// ClosedAddr returns a 127.0.0.1 address where nothing listens: connections are
// refused.
func ClosedAddr(t testing.TB) string { return testsupport.ClosedAddr(t) }

// HangingAddr returns a 127.0.0.1 address that accepts connections and never answers
// (until the test ends).
func HangingAddr(t testing.TB) string { return testsupport.HangingAddr(t) }
