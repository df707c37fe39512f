package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeUntilDoneGraceful starts a request, asks for shutdown while it is in flight, and
// checks that the request still completes and the server then stops cleanly.
func TestServeUntilDoneGraceful(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "finished")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	ln := listenLoopback(t)
	srv := newHTTPServer(ctx, handler, logger)
	shutdownStarted := make(chan struct{})
	srv.RegisterOnShutdown(func() { close(shutdownStarted) })
	done := make(chan error, 1)
	go func() { done <- serveUntilDone(ctx, srv, ln, logger, nil, func() {}) }()

	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	cancel()
	// Let the request finish only once the shutdown has begun: its context must survive it.
	<-shutdownStarted
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: body %q, err %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("serveUntilDone = %v, want nil after a graceful shutdown", err)
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
		t.Error("server still accepts connections after shutdown")
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("no shutdown log line:\n%s", logs.String())
	}
}

func TestServeUntilDoneReload(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	ln := listenLoopback(t)
	hup := make(chan os.Signal)
	reloaded := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() {
		done <- serveUntilDone(ctx, newHTTPServer(ctx, http.NotFoundHandler(), logger), ln, logger, hup, func() { reloaded <- struct{}{} })
	}()
	hup <- syscall.SIGHUP // unbuffered: returns once the loop has taken it
	hup <- syscall.SIGHUP
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(reloaded) != 2 {
		t.Errorf("reload called %d times, want 2", len(reloaded))
	}
}

func TestServeUntilDoneServerFailure(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	ln := listenLoopback(t)
	ln.Close() // Serve fails at once
	err := serveUntilDone(ctx, newHTTPServer(ctx, http.NotFoundHandler(), logger), ln, logger, nil, func() {})
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("serveUntilDone = %v, want the listener's error", err)
	}
}

func TestReloadPolicyLogs(t *testing.T) {
	cfg := &Config{File: "/etc/pullgate/config.yaml", Policy: PolicyConfig{Path: "/etc/pullgate/policy.json"}}
	tests := []struct {
		name   string
		reload func(context.Context) error
		want   []string
	}{
		{"cannot reload", nil, []string{"level=WARN", "restart pullgate", "/etc/pullgate/config.yaml"}},
		{"refused", func(context.Context) error { return errors.New("policy.path: bad key file") }, []string{"level=ERROR", "previous policy stays in force", "bad key file"}},
		{"reloaded", func(context.Context) error { return nil }, []string{"level=INFO", "policy reloaded", "/etc/pullgate/policy.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			reloadPolicy(context.Background(), cfg, tt.reload, slog.New(slog.NewTextHandler(&logs, nil)))
			for _, w := range tt.want {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log %q lacks %q", logs.String(), w)
				}
			}
		})
	}
}

func TestUpstreamOptions(t *testing.T) {
	path := writeConfig(t, `upstreams:
  - registry: docker.io
    url: https://registry-1.docker.io/
  - registry: 127.0.0.1:5001
    url: http://127.0.0.1:5001
    username: robot
    password: pw
    caFile: ca.pem
  - registry: ghcr.io
    url: https://ghcr.io
    dockerConfig: docker-config.json
policy:
  path: policy.json
upstreamTimeouts:
  dial: 2s
  responseHeader: 3s
  setup: 4s
  request: 5s
  blobStall: 6s
`)
	dir := filepath.Dir(path)
	cfg, _, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := upstreamOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		registry, url, user, pass, dockerConfig, ca string
	}
	want := []row{
		{"docker.io", "https://registry-1.docker.io", "", "", "", ""},
		{"127.0.0.1:5001", "http://127.0.0.1:5001", "robot", "pw", "", filepath.Join(dir, "ca.pem")},
		{"ghcr.io", "https://ghcr.io", "", "", filepath.Join(dir, "docker-config.json"), ""},
	}
	if len(opts) != len(want) {
		t.Fatalf("%d options, want %d", len(opts), len(want))
	}
	for i, o := range opts {
		got := row{o.Registry, o.URL.String(), o.Username, o.Password, o.DockerConfig, o.CAFile}
		if got != want[i] {
			t.Errorf("options[%d] = %+v, want %+v", i, got, want[i])
		}
		if o.DialTimeout != 2*time.Second || o.ResponseHeaderTimeout != 3*time.Second {
			t.Errorf("options[%d] timeouts = %s, %s", i, o.DialTimeout, o.ResponseHeaderTimeout)
		}
		if o.SetupTimeout != 4*time.Second || o.RequestTimeout != 5*time.Second || o.BlobStallTimeout != 6*time.Second {
			t.Errorf("options[%d] deadlines = %s, %s, %s", i, o.SetupTimeout, o.RequestTimeout, o.BlobStallTimeout)
		}
		if !strings.HasPrefix(o.UserAgent, "pullgate/") || o.Logger == nil {
			t.Errorf("options[%d]: user agent %q, logger %v", i, o.UserAgent, o.Logger)
		}
		if _, err := url.Parse(o.URL.String()); err != nil {
			t.Error(err)
		}
	}
}
