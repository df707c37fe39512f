package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/internal/testsupport"
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
	go func() { done <- serveUntilDone(ctx, srv, ln, logger, nil, nil) }()

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
	hup := make(chan struct{})
	committed := make(chan struct{}, 2)
	load := func(context.Context) (func(), error) {
		return func() { committed <- struct{}{} }, nil
	}
	done := make(chan error, 1)
	go func() {
		done <- serveUntilDone(ctx, newHTTPServer(ctx, http.NotFoundHandler(), logger), ln, logger, hup,
			newReloader(testReloadConfig(time.Hour), load, logger))
	}()
	hup <- struct{}{} // unbuffered: returns once the loop has taken it
	<-committed
	hup <- struct{}{}
	<-committed
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeUntilDoneServerFailure(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	ln := listenLoopback(t)
	ln.Close() // Serve fails at once
	err := serveUntilDone(ctx, newHTTPServer(ctx, http.NotFoundHandler(), logger), ln, logger, nil, nil)
	if err == nil || !errors.Is(err, net.ErrClosed) {
		t.Errorf("serveUntilDone = %v, want the listener's error", err)
	}
}

func testReloadConfig(timeout time.Duration) *config.Config {
	return &config.Config{File: "/etc/pullgate/config.yaml", Policy: config.Policy{Path: "/etc/pullgate/policy.json", ReloadTimeout: timeout}}
}

// reloadHarness runs serveUntilDone with a reloader over load, and lets a test send
// SIGHUPs and wait for log lines.
type reloadHarness struct {
	hup    chan struct{}
	logs   *testsupport.LogBuffer
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	err      error
}

func startReloadHarness(t *testing.T, timeout time.Duration, load reloadFunc) *reloadHarness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &reloadHarness{hup: make(chan struct{}), logs: &testsupport.LogBuffer{}, cancel: cancel, done: make(chan error, 1)}
	logger := slog.New(slog.NewTextHandler(h.logs, nil))
	ln := listenLoopback(t)
	go func() {
		h.done <- serveUntilDone(ctx, newHTTPServer(ctx, http.NotFoundHandler(), logger), ln, logger, h.hup,
			newReloader(testReloadConfig(timeout), load, logger))
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

// waitLogBound bounds waitLog; it only guards against a hang, it is no performance
// assertion.
const waitLogBound = 30 * time.Second

// waitLog waits until n lines containing every one of parts have been logged.
func (h *reloadHarness) waitLog(t *testing.T, n int, parts ...string) {
	t.Helper()
	for deadline := time.Now().Add(waitLogBound); len(h.logs.Lines(parts...)) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("no %d log lines with %q within %s:\n%s", n, parts, waitLogBound, h.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stop ends serveUntilDone and returns its result (again on later calls).
func (h *reloadHarness) stop() error {
	h.stopOnce.Do(func() {
		h.cancel()
		h.err = <-h.done
	})
	return h.err
}

func TestReloadPolicyLogs(t *testing.T) {
	tests := []struct {
		name string
		load reloadFunc
		want []string
	}{
		{"cannot reload", nil, []string{"level=WARN", "restart pullgate", "/etc/pullgate/config.yaml"}},
		{"refused", func(context.Context) (func(), error) { return nil, errors.New("policy.path: bad key file") }, []string{"level=ERROR", "previous policy stays in force", "bad key file"}},
		{"reloaded", func(context.Context) (func(), error) { return func() {}, nil }, []string{"level=INFO", "policy reloaded", "/etc/pullgate/policy.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startReloadHarness(t, time.Hour, tt.load)
			h.hup <- struct{}{}
			h.waitLog(t, 1, tt.want...)
		})
	}
}

// TestReloadTimesOut: a reload whose read blocks is reported as timed out, the signal
// loop goes on, and when the read returns after all, its result is discarded, success
// included.
func TestReloadTimesOut(t *testing.T) {
	release := make(chan struct{})
	var commits atomic.Int32
	load := func(context.Context) (func(), error) {
		<-release
		return func() { commits.Add(1) }, nil
	}
	h := startReloadHarness(t, time.Millisecond, load)
	h.hup <- struct{}{}
	h.waitLog(t, 1, "level=ERROR", "reload timed out; the previous policy stays in force", "timeout=1ms", "/etc/pullgate/policy.json")
	// The loop still takes signals: this request waits for the blocked read.
	h.hup <- struct{}{}
	h.waitLog(t, 1, "level=WARN", "timed-out reload is still reading")
	close(release)
	h.waitLog(t, 1, "level=WARN", "a timed-out reload finished late; its result is discarded")
	// The queued reload reads again (release is closed: at once) and, in time, commits.
	h.waitLog(t, 1, "policy reloaded")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if n := commits.Load(); n != 1 {
		t.Fatalf("%d reloads put in force, want 1 (the late one must not be)", n)
	}
	if n := len(h.logs.Lines("reload timed out")); n != 1 {
		t.Fatalf("%d timeouts logged, want 1:\n%s", n, h.logs)
	}
}

// TestReloadOneAtATime: SIGHUPs during a reload queue one more reload, not one each; no
// two reads run at once.
func TestReloadOneAtATime(t *testing.T) {
	release := make(chan struct{})
	var running, most, loads atomic.Int32
	load := func(context.Context) (func(), error) {
		loads.Add(1)
		n := running.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		running.Add(-1)
		return func() {}, nil
	}
	h := startReloadHarness(t, time.Hour, load)
	for range 5 {
		h.hup <- struct{}{}
	}
	h.waitLog(t, 1, "reload requested while one runs; it runs next")
	close(release)
	h.waitLog(t, 2, "policy reloaded")
	if err := h.stop(); err != nil {
		t.Fatal(err)
	}
	if n := loads.Load(); n != 2 {
		t.Errorf("%d reloads ran for 5 SIGHUPs during one, want 2", n)
	}
	if n := most.Load(); n != 1 {
		t.Errorf("%d reloads ran at once, want 1", n)
	}
}

// TestShutdownDuringBlockedReload: a stop request is served while a reload is blocked
// for good.
func TestShutdownDuringBlockedReload(t *testing.T) {
	block := make(chan struct{})
	defer close(block)
	h := startReloadHarness(t, time.Hour, func(context.Context) (func(), error) {
		<-block
		return func() {}, nil
	})
	h.hup <- struct{}{}
	testsupport.WaitForCallers(t, "TestShutdownDuringBlockedReload.func", 1)
	if err := h.stop(); err != nil {
		t.Fatalf("serveUntilDone = %v, want a clean shutdown", err)
	}
}

// TestRunServeStopDuringStartup: a stop request while the start-up is blocked (here on
// a content store whose S3 endpoint accepts connections and never answers: the store's
// write probe waits) ends runServe at once. A FIFO as the configuration no longer blocks
// it: it is refused at once as not a regular file.
func TestRunServeStopDuringStartup(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "config.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	var fifoErr testsupport.LogBuffer
	if code := runServe(context.Background(), []string{"--config", fifo}, &fifoErr, nil, nil); code == exitOK ||
		!fifoErr.Contains("not a regular file") {
		t.Fatalf("a FIFO configuration: exit %d, %q", code, fifoErr.String())
	}

	path := testsupport.WriteConfig(t, testsupport.GoodConfig+fmt.Sprintf(`content:
  storage:
    s3:
      region: us-east-1
      bucket: b
      regionendpoint: http://%s
      accesskey: a
      secretkey: s
      forcepathstyle: true
      secure: false
`, testsupport.HangingAddr(t)))
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testsupport.LogBuffer
	exit := make(chan int, 1)
	go func() { exit <- runServe(ctx, []string{"--config", path}, &stderr, nil, nil) }()
	testsupport.WaitForCallers(t, "cache/store.(*Store).probe(", 1)
	cancel()
	if code := <-exit; code != exitOK {
		t.Fatalf("exit %d, want %d: %s", code, exitOK, stderr.String())
	}
	if !stderr.Contains("stopped during start-up") {
		t.Errorf("stderr %q", stderr.String())
	}
}

func TestUpstreamOptions(t *testing.T) {
	path := testsupport.WriteConfig(t, `upstreams:
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
	cfg, _, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	opts, err := server.UpstreamOptions(cfg, slog.New(slog.DiscardHandler))
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
