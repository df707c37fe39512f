package upstream_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestSignatureProbeIsShared: callers that arrive while the signature API probe is in
// flight share it (one GET /v2/), and one whose context ends stops waiting at once
// instead of queueing behind the probe's round trip. The answer is then cached.
func TestSignatureProbeIsShared(t *testing.T) {
	release := make(chan struct{})
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		<-release
		w.Header().Set("X-Registry-Supports-Signatures", "1")
	}))
	defer srv.Close()
	c, _ := newClient(t, srv.URL, nil)

	first := make(chan error, 1)
	go func() {
		ok, err := c.SupportsSignatureExtension(context.Background())
		if err == nil && !ok {
			err = errors.New("extension not detected")
		}
		first <- err
	}()
	for hits.Load() == 0 {
		runtime.Gosched()
	}

	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		_, err := c.SupportsSignatureExtension(ctx)
		waiting <- err
	}()
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Fatalf("a caller whose context ended got %v while the probe was in flight", err)
	}

	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if ok, err := c.SupportsSignatureExtension(context.Background()); err != nil || !ok {
		t.Fatalf("cached answer: %v, %v", ok, err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("GET /v2/ sent %d times, want 1", n)
	}
}
