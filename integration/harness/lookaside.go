package harness

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// LookasideMode is how a Lookaside answers.
type LookasideMode int

const (
	// LookasideServe serves the files of its folder (404 for a missing one).
	LookasideServe LookasideMode = iota
	// LookasideError answers every request with 500.
	LookasideError
	// LookasideHTML answers every request with 200 and an HTML page, as a captive portal
	// or a misconfigured web server does.
	LookasideHTML
	// LookasideHang accepts requests and never answers them (until the client gives up or
	// the test ends).
	LookasideHang
)

// Lookaside is a signature lookaside server (containers-registries.d lookaside) on
// 127.0.0.1 serving a folder over plain http, the folder skopeo's lookaside-staging
// writes to. It records every request and can be switched to fail and back, or held so
// that requests wait until released.
type Lookaside struct {
	// URL is http://127.0.0.1:<port>, the lookaside base; Dir is the folder served.
	URL string
	Dir string

	mu       sync.Mutex
	mode     LookasideMode
	hold     chan struct{} // non-nil: requests wait until it is closed
	requests []LookasideRequest
	closing  chan struct{}
	stop     func()
}

// LookasideRequest is one request a Lookaside received.
type LookasideRequest struct {
	Path      string
	UserAgent string
	// Remote is the client's address; the port tells connections apart.
	Remote string
}

// StartLookaside serves dir until the test ends.
func StartLookaside(t testing.TB, dir string) *Lookaside {
	t.Helper()
	l := &Lookaside{Dir: dir, closing: make(chan struct{})}
	files := http.FileServer(http.Dir(dir))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("harness: lookaside listen: %v", err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.requests = append(l.requests, LookasideRequest{Path: r.URL.Path, UserAgent: r.UserAgent(), Remote: r.RemoteAddr})
		mode, hold := l.mode, l.hold
		l.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			case <-l.closing:
				return
			}
		}
		switch mode {
		case LookasideError:
			http.Error(w, "lookaside storage is broken", http.StatusInternalServerError)
		case LookasideHTML:
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write([]byte("<!DOCTYPE html>\n<html><body><h1>Please sign in to the network</h1></body></html>\n"))
		case LookasideHang:
			select {
			case <-r.Context().Done():
			case <-l.closing:
			}
		default:
			files.ServeHTTP(w, r)
		}
	})}}
	srv.Start()
	var once sync.Once
	l.stop = func() {
		once.Do(func() {
			// Let hanging and held handlers return, or Close would wait for them.
			close(l.closing)
			srv.Close()
		})
	}
	t.Cleanup(l.stop)
	l.URL = srv.URL
	return l
}

// Stop closes the server before the test ends: from then on connections to it are
// refused, as from a lookaside that went down. Calling it again does nothing.
func (l *Lookaside) Stop() { l.stop() }

// SetMode switches how the server answers from the next request on.
func (l *Lookaside) SetMode(m LookasideMode) {
	l.mu.Lock()
	l.mode = m
	l.mu.Unlock()
}

// Hold makes requests wait, from the next one on, until release is called. Requests
// already waiting are released too.
func (l *Lookaside) Hold() (release func()) {
	ch := make(chan struct{})
	l.mu.Lock()
	l.hold = ch
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.hold = nil
			l.mu.Unlock()
			close(ch)
		})
	}
}

// Requests returns the requests received so far.
func (l *Lookaside) Requests() []LookasideRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]LookasideRequest(nil), l.requests...)
}

// Count counts the requests whose path contains every one of parts.
func (l *Lookaside) Count(parts ...string) int {
	n := 0
	for _, r := range l.Requests() {
		match := true
		for _, p := range parts {
			match = match && strings.Contains(r.Path, p)
		}
		if match {
			n++
		}
	}
	return n
}

// ResetRequests forgets the requests received so far.
func (l *Lookaside) ResetRequests() {
	l.mu.Lock()
	l.requests = nil
	l.mu.Unlock()
}
