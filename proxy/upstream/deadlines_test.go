package upstream_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// watchdog is the caller's context in the deadline tests: far longer than any deadline
// under test, so that an answer while it is still live came from the client's own bound.
const watchdog = 30 * time.Second

// trickleEvery is how often a trickled answer sends its next byte.
const trickleEvery = 100 * time.Millisecond

// wantUpstreamTimeout checks that err is the 504 UNAVAILABLE answer for an upstream that
// ran out of time, returned while the caller's context was still live.
func wantUpstreamTimeout(t *testing.T, ctx context.Context, err error) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatalf("the caller's context ended first (%v): the upstream call is not bounded; error %v", ctx.Err(), err)
	}
	pe := proxy.Answer(err)
	if err == nil || pe.Code != errcode.ErrorCodeUnavailable || pe.HTTPStatus() != http.StatusGatewayTimeout {
		t.Fatalf("want a 504 UNAVAILABLE, got %v", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the error does not say a deadline ran out: %v", err)
	}
}

// ended waits for a stalling handler to see its request cancelled: the upstream
// connection was given up, not left open.
func waitEnded(t *testing.T, ended <-chan struct{}) {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(watchdog):
		t.Fatal("the upstream request was never cancelled")
	}
}

// TestSetupBodyThatStallsIsBounded: a /v2/ ping or a token answer whose body stalls ends
// at the set-up deadline, and the upstream request is given up.
func TestSetupBodyThatStallsIsBounded(t *testing.T) {
	for name, stalled := range map[string]string{"ping": "/v2/", "token endpoint": "/token"} {
		t.Run(name, func(t *testing.T) {
			ended := make(chan struct{}, 4)
			var srv *httptest.Server
			srv = testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
				switch {
				case r.URL.Path == stalled:
					testsupport.StallBody(w, r, stop, 4096, ended)
				case stalled == "/token":
					w.Header().Set("WWW-Authenticate", `Bearer realm="`+srv.URL+`/token",service="registry.test"`)
					w.WriteHeader(http.StatusUnauthorized)
				default:
					http.NotFound(w, r)
				}
			})
			c, _ := newClient(t, srv.URL, func(o *upstream.Options) { o.SetupTimeout = 500 * time.Millisecond })
			ctx, cancel := context.WithTimeout(context.Background(), watchdog)
			defer cancel()
			_, err := c.Manifest(ctx, "team/app", "v1", nil)
			wantUpstreamTimeout(t, ctx, err)
			waitEnded(t, ended)
		})
	}
}

func TestTrickledAPIAnswersHitTheRequestDeadline(t *testing.T) {
	// 4 KiB at 10 bytes a second would take minutes; the request deadline is 1 s.
	body := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"` + strings.Repeat("a", 4096) + `"}`)
	tests := []struct {
		name string
		path string
		call func(ctx context.Context, c *upstream.Client) error
	}{
		{name: "manifest", path: "/manifests/", call: func(ctx context.Context, c *upstream.Client) error {
			_, err := c.Manifest(ctx, "team/app", "v1", nil)
			return err
		}},
		{name: "tags", path: "/tags/list", call: func(ctx context.Context, c *upstream.Client) error {
			_, err := c.Tags(ctx, "team/app", nil)
			return err
		}},
		{name: "referrers", path: "/referrers/", call: func(ctx context.Context, c *upstream.Client) error {
			_, err := c.Referrers(ctx, "team/app", digest.FromString("subject"), nil)
			return err
		}},
		{name: "signature API", path: "/signatures/", call: func(ctx context.Context, c *upstream.Client) error {
			_, err := c.ExtensionSignatures(ctx, "team/app", digest.FromString("signed"))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ended := make(chan struct{}, 4)
			srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
				switch {
				case r.URL.Path == "/v2/":
					w.WriteHeader(http.StatusOK)
				case strings.Contains(r.URL.Path, tt.path):
					testsupport.TrickleBody(w, r, stop, body, trickleEvery, ended)
				default:
					http.NotFound(w, r)
				}
			})
			c, _ := newClient(t, srv.URL, func(o *upstream.Options) { o.RequestTimeout = time.Second })
			ctx, cancel := context.WithTimeout(context.Background(), watchdog)
			defer cancel()
			wantUpstreamTimeout(t, ctx, tt.call(ctx, c))
			waitEnded(t, ended)
		})
	}
}

func TestBlobThatStallsEndsWithAnError(t *testing.T) {
	content := bytes.Repeat([]byte("layer "), 1000)
	dgst := digest.FromBytes(content)
	ended := make(chan struct{}, 4)
	srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+dgst.String()):
			w.Header().Set("Content-Length", strconv.Itoa(len(content)))
			w.WriteHeader(http.StatusOK)
			w.Write(content[:100])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				ended <- struct{}{}
			case <-stop:
			}
		default:
			http.NotFound(w, r)
		}
	})
	c, _ := newClient(t, srv.URL, func(o *upstream.Options) { o.BlobStallTimeout = 500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	b, err := c.Blob(ctx, "team/app", dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	got, err := io.ReadAll(b.Body)
	if ctx.Err() != nil {
		t.Fatalf("the caller's context ended first: a stalled blob is never given up (%d bytes, %v)", len(got), err)
	}
	if !bytes.Equal(got, content[:100]) {
		t.Fatalf("read %d bytes before the stall, want the 100 sent", len(got))
	}
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a stalled blob body ended with %v, want a deadline error", err)
	}
	waitEnded(t, ended)
}

func TestSlowSteadyBlobIsNotCutOff(t *testing.T) {
	// A blob that keeps coming, byte by byte, outlives the request deadline: only a
	// stall ends a blob.
	content := []byte("0123456789abcdefghij") // 20 bytes, 2 s at 10 bytes a second
	dgst := digest.FromBytes(content)
	srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/blobs/"+dgst.String()):
			testsupport.TrickleBody(w, r, stop, content, trickleEvery, nil)
		default:
			http.NotFound(w, r)
		}
	})
	c, _ := newClient(t, srv.URL, func(o *upstream.Options) {
		o.RequestTimeout = 500 * time.Millisecond
		o.BlobStallTimeout = 5 * time.Second
	})
	b, err := c.Blob(context.Background(), "team/app", dgst)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Body.Close()
	got, err := io.ReadAll(b.Body)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestSetupWaiterStopsAtItsOwnContext(t *testing.T) {
	srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		testsupport.StallBody(w, r, stop, 4096, nil)
	})
	c, _ := newClient(t, srv.URL, nil) // the default set-up deadline, far away
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	_, err := c.Manifest(ctx, "team/app", "v1", nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("a waiter whose context ended got %v", err)
	}
}
