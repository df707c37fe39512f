package upstream

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// realError performs one request with a plain transport and returns its error.
func realError(t *testing.T, url string, timeout time.Duration, cancel bool) error {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	if cancel {
		stop()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	tr := &http.Transport{ResponseHeaderTimeout: timeout}
	defer tr.CloseIdleConnections()
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("GET %s succeeded", url)
	}
	return err
}

func TestRetryableErrors(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/v2/"
	closed.Close()
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hang.Close()
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	hangURL := "http://" + hang.Addr().String() + "/v2/"
	// A server that closes the connection without answering.
	hangup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _ := w.(http.Hijacker).Hijack()
		conn.Close()
	}))
	defer hangup.Close()

	tests := []struct {
		name string
		err  error
		want bool
	}{
		{name: "connection refused", err: realError(t, closedURL, time.Second, false), want: true},
		{name: "closed without an answer", err: realError(t, hangup.URL+"/v2/", time.Second, false), want: true},
		{name: "header timeout", err: realError(t, hangURL, 100*time.Millisecond, false), want: false},
		{name: "cancelled", err: realError(t, hangURL, time.Second, true), want: false},
		{name: "deadline", err: context.DeadlineExceeded, want: false},
		{name: "other", err: errors.New("tls: bad certificate"), want: false},
	}
	for _, tt := range tests {
		if got := retryable(nil, tt.err); got != tt.want {
			t.Errorf("%s (%v): retryable = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	for status, want := range map[int]bool{200: false, 404: false, 429: false, 500: false, 502: true, 503: true, 504: true} {
		if got := retryable(&http.Response{StatusCode: status}, nil); got != want {
			t.Errorf("status %d: retryable = %v, want %v", status, got, want)
		}
	}
}

func TestRetryTransportRetriesRefusedConnections(t *testing.T) {
	// The first two dials are refused (nothing listens yet); then a server appears.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var dials atomic.Int32
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) })}
	defer srv.Close()
	base := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		if dials.Add(1) == 3 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return nil, err
			}
			go srv.Serve(l)
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	defer base.CloseIdleConnections()
	rt := &retryTransport{inner: base, retries: 3, delay: time.Millisecond}
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("after retries: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || dials.Load() != 3 {
		t.Fatalf("status %d after %d dials, want 204 after 3", resp.StatusCode, dials.Load())
	}
	// POST is never retried.
	dials.Store(-100)
	post, _ := http.NewRequest(http.MethodPost, "http://"+testsupport.ClosedAddr(t)+"/v2/", nil)
	if _, err := rt.RoundTrip(post); err == nil {
		t.Fatal("POST to a closed port succeeded")
	}
	if n := dials.Load(); n != -99 {
		t.Fatalf("POST dialled %d times, want once", n+100)
	}
}
