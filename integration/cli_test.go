package integration_test

// Binary-level tests of the pullgate command: build it, run it as a process, read its exit
// status and output.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pullgate/pullgate/integration/harness"
)

// repoRoot is the module root, relative to this package.
const repoRoot = ".."

// buildPullgate builds cmd/pullgate into a temporary folder, setting the version the way the
// Dockerfile does, and returns the binary's path.
func buildPullgate(t *testing.T, version string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "pullgate")
	cmd := exec.Command("go", "build", "-trimpath",
		"-ldflags", "-X github.com/pullgate/pullgate/internal/version.Version="+version,
		"-o", bin, "./cmd/pullgate")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/pullgate: %v\n%s", err, out)
	}
	return bin
}

// runPullgate runs the binary to completion and returns its exit code and output.
func runPullgate(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return harness.RunPullgateEnv(t, bin, env, args...)
}

// cleanEnv is the test's environment without PULLGATE_* variables, so that a developer's
// shell cannot change what the binary reads.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULLGATE_") {
			env = append(env, kv)
		}
	}
	return env
}

// served is a `pullgate serve` process started by startServe.
type served struct {
	// Addr is the address it listens on, when it started.
	Addr string
	// Exited is true when the process ended before listening; Code and Stderr say how.
	Exited bool
	Code   int

	cmd    *exec.Cmd
	done   chan struct{}
	mu     sync.Mutex
	stderr bytes.Buffer
}

// Stderr returns what the process has written to stderr so far.
func (s *served) Stderr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// startServe runs `pullgate serve --config config` on a free 127.0.0.1 port (listen
// 127.0.0.1:0, read back from the JSON start-up log line) and returns once it listens or has
// exited. A process still running at the end of the test is stopped with SIGTERM, and must
// then exit 0 (graceful shutdown).
func startServe(t *testing.T, bin, config string, env ...string) *served {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	cmd.Env = append(cleanEnv(), "PULLGATE_LISTEN=127.0.0.1:0", "PULLGATE_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &served{cmd: cmd, done: make(chan struct{})}
	listening := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Bytes()
			s.mu.Lock()
			s.stderr.Write(line)
			s.stderr.WriteByte('\n')
			s.mu.Unlock()
			var entry struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &entry) == nil && entry.Msg == "pullgate listening" {
				listening <- entry.Addr
			}
		}
		io.Copy(io.Discard, pipe)
	}()

	select {
	case s.Addr = <-listening:
		t.Cleanup(func() { stopServe(t, s) })
	case <-s.done:
		s.Exited = true
		err := cmd.Wait()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			s.Code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("waiting for pullgate: %v", err)
		}
	case <-t.Context().Done():
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("pullgate neither listened nor exited before the test ended:\n%s", s.Stderr())
	}
	return s
}

// stopServe sends SIGTERM and expects a clean exit.
func stopServe(t *testing.T, s *served) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM: %v", err)
	}
	<-s.done
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("pullgate did not stop cleanly on SIGTERM: %v\n%s", err, s.Stderr())
	}
}

// ping fetches /v2/ from a started server.
func ping(t *testing.T, s *served) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+s.Addr+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /v2/: %v", err)
	}
	resp.Body.Close()
	return resp
}

func TestCLIVersion(t *testing.T) {
	bin := buildPullgate(t, "v9.8.7-cli-test")
	code, stdout, stderr := runPullgate(t, bin, nil, "version")
	if code != 0 || stdout != "pullgate v9.8.7-cli-test\n" {
		t.Errorf("version: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestCLI(t *testing.T) {
	bin := buildPullgate(t, "v0.0.0-cli-test")
	example := filepath.Join(repoRoot, "config.example.yaml")

	t.Run("no command", func(t *testing.T) {
		code, _, stderr := runPullgate(t, bin, nil)
		if code != 2 || !strings.Contains(stderr, "Usage:") {
			t.Errorf("exit %d, stderr:\n%s", code, stderr)
		}
	})

	t.Run("serve with a bad config lists every problem", func(t *testing.T) {
		dir := t.TempDir()
		config := filepath.Join(dir, "config.yaml")
		if err := os.WriteFile(config, []byte(`listen: 5000
upstreams:
  - registry: docker.io
    url: ftp://registry-1.docker.io
    usr: robot
    password: do-not-print-me
defaultUpstream: quay.io
upstreamTimeouts:
  dial: 10
`), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runPullgate(t, bin, []string{"PULLGATE_CACHE_VERDICTS_SIZE=0"}, "serve", "--config", config)
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		for _, want := range []string{
			"invalid configuration " + config + " (8 problems)",
			"upstreams[0].usr (line 5): unknown key",
			"listen (line 1): expected a string, got an integer",
			"upstreamTimeouts.dial (line 9): expected a duration with a unit such as 30s or 5m, got an integer",
			`upstreams[0].url (line 4): "ftp://registry-1.docker.io" must start with https://`,
			"upstreams[0].username (line 3): required when password is set",
			`defaultUpstream (line 7): "quay.io" names no upstream (configured: docker.io)`,
			"policy.path: required",
			"cache.verdicts.size (PULLGATE_CACHE_VERDICTS_SIZE): must be at least 1, got 0",
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
		if strings.Contains(stdout+stderr, "do-not-print-me") {
			t.Errorf("the password was printed:\n%s", stderr)
		}
	})

	// The README's run command: the example config starts with the real policy gate, /v2/
	// answers as a registry and advertises the signature API, a path whose ns= names no
	// configured registry reaches nothing, and SIGTERM stops it cleanly (startServe's
	// cleanup checks the exit status).
	t.Run("serve on the example config", func(t *testing.T) {
		s := startServe(t, bin, example)
		if s.Exited {
			t.Fatalf("serve exited with %d:\n%s", s.Code, s.Stderr())
		}
		resp := ping(t, s)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Distribution-API-Version") != "registry/2.0" ||
			resp.Header.Get("X-Registry-Supports-Signatures") != "1" {
			t.Errorf("GET /v2/: %s %v", resp.Status, resp.Header)
		}
		resp, err := http.Get("http://" + s.Addr + "/v2/library/alpine/manifests/3.20?ns=evil.example")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("ns= of an unconfigured registry: %s", resp.Status)
		}
		if !strings.Contains(s.Stderr(), `"msg":"policy loaded"`) {
			t.Errorf("no policy loaded line:\n%s", s.Stderr())
		}
	})

	t.Run("verify on the example config", func(t *testing.T) {
		code, stdout, stderr := runPullgate(t, bin, nil, "verify", "--config", example, "quay.io/org/app:1")
		if code != 2 || stdout != "" || !strings.Contains(stderr, "registry quay.io is not a configured upstream") {
			t.Errorf("exit %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
	})

	t.Run("environment overrides reach the binary", func(t *testing.T) {
		code, _, stderr := runPullgate(t, bin, []string{"PULLGATE_DEFAULTUPSTREAM=quay.io", "PULLGATE_LOG_LEVEL=loud"}, "serve", "--config", example)
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		for _, want := range []string{
			`defaultUpstream (PULLGATE_DEFAULTUPSTREAM): "quay.io" names no upstream (configured: docker.io)`,
			`log.level (PULLGATE_LOG_LEVEL): "loud" is not one of debug, info, warn, error`,
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr)
			}
		}
	})
}
