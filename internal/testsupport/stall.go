package testsupport

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// StallingServer serves handler on 127.0.0.1 until the test ends; stop is closed before
// the server is, so handlers that hold their requests return and Close does not wait on
// them.
func StallingServer(t testing.TB, handler func(w http.ResponseWriter, r *http.Request, stop <-chan struct{})) *httptest.Server {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler(w, r, stop) }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) }) // runs first
	return srv
}

// StallBody sends the headers (Content-Length size) and a first byte of a body, then
// sends nothing more until the request ends or stop is closed; it reports on ended, if
// not nil, when the request's context is done.
func StallBody(w http.ResponseWriter, r *http.Request, stop <-chan struct{}, size int, ended chan<- struct{}) {
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("{"))
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
		if ended != nil {
			ended <- struct{}{}
		}
	case <-stop:
	}
}

// TrickleBody sends body (Content-Length set) one byte every `every` until it is sent,
// the request ends or stop is closed; it reports on ended, if not nil, when the request's
// context is done.
func TrickleBody(w http.ResponseWriter, r *http.Request, stop <-chan struct{}, body []byte, every time.Duration, ended chan<- struct{}) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := range body {
		select {
		case <-r.Context().Done():
			if ended != nil {
				ended <- struct{}{}
			}
			return
		case <-stop:
			return
		case <-tick.C:
		}
		w.Write(body[i : i+1])
		w.(http.Flusher).Flush()
	}
}
