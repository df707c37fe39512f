package upstream_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
	"github.com/pullgate/pullgate/proxy/upstream"
)

func TestNewHTTPClientRedirectPolicy(t *testing.T) {
	other := startInternal(t, []byte(internalSecret))
	plain := startInternal(t, []byte(internalSecret))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			io.WriteString(w, "signature bytes")
		case "/cross":
			http.Redirect(w, r, strings.Replace(other.URL, "http:", "https:", 1)+"/x", http.StatusFound)
		case "/downgrade":
			http.Redirect(w, r, plain.URL+"/x", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	testsupport.WriteFile(t, caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	client, err := upstream.NewHTTPClient(upstream.HTTPClientOptions{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path        string
		wantBody    string
		wantRefused bool
	}{
		{path: "/same", wantBody: "signature bytes"},
		{path: "/cross", wantRefused: true},
		{path: "/downgrade", wantRefused: true},
		{path: "/loop"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := client.Get(srv.URL + tt.path)
			if tt.wantBody != "" {
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				if b, _ := io.ReadAll(resp.Body); string(b) != tt.wantBody {
					t.Fatalf("body %q", b)
				}
				return
			}
			if err == nil {
				resp.Body.Close()
				t.Fatalf("GET %s: %s, want an error", tt.path, resp.Status)
			}
			if got := errors.Is(err, upstream.ErrRedirectRefused); got != tt.wantRefused {
				t.Fatalf("GET %s: %v (refused redirect: %v, want %v)", tt.path, err, got, tt.wantRefused)
			}
		})
	}
	if n := other.hits.Load() + plain.hits.Load(); n != 0 {
		t.Fatalf("redirect targets on other hosts were reached %d times", n)
	}
}

func TestNewHTTPClientBoundsTheBody(t *testing.T) {
	srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		testsupport.TrickleBody(w, r, stop, bytes.Repeat([]byte("s"), 4096), trickleEvery, nil)
	})
	client, err := upstream.NewHTTPClient(upstream.HTTPClientOptions{RequestTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if ctx.Err() != nil || err == nil {
		t.Fatalf("a trickled body was read until the caller gave up: %v", err)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("want a timeout, got %v", err)
	}
}

func TestNewHTTPClientRejectsABadCAFile(t *testing.T) {
	if _, err := upstream.NewHTTPClient(upstream.HTTPClientOptions{CAFile: filepath.Join(t.TempDir(), "none.pem")}); err == nil {
		t.Fatal("a missing CA file was accepted")
	}
}

func TestSetupBodyIsCapped(t *testing.T) {
	// A /v2/ answer of endless zeros, sent as fast as it is read: bounded in bytes, not
	// only in time.
	srv := testsupport.StallingServer(t, func(w http.ResponseWriter, r *http.Request, stop <-chan struct{}) {
		if r.URL.Path != "/v2/" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
		chunk := make([]byte, 64<<10)
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	c, _ := newClient(t, srv.URL, nil)
	_, err := c.Manifest(context.Background(), "team/app", "v1", nil)
	if err == nil || !strings.Contains(err.Error(), "larger than pullgate") {
		t.Fatalf("an endless /v2/ body gave %v", err)
	}
}
