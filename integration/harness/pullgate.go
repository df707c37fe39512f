package harness

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// BuildPullgate builds cmd/pullgate into dir (a folder the caller cleans up, such as its
// t.TempDir()) and returns the binary's path. The build cache makes every build after
// the first a link of a second or so; tests build once and share the binary among their
// subtests.
func BuildPullgate(t testing.TB, dir string) string {
	t.Helper()
	_, here, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("harness: cannot locate the module")
	}
	root := filepath.Join(filepath.Dir(here), "..", "..")
	bin := filepath.Join(dir, "pullgate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/pullgate")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("harness: go build ./cmd/pullgate: %v\n%s", err, out)
	}
	return bin
}

// PullgateConfig is what WritePullgateConfig puts in a configuration file.
type PullgateConfig struct {
	// Upstreams are registry name → URL (http://127.0.0.1:<port> for harness registries).
	Upstreams       []Upstream
	DefaultUpstream string
	// Policy and RegistriesD are absolute paths.
	Policy, RegistriesD string
	// Extra is appended verbatim (YAML), for keys such as cache.
	Extra string
}

// WritePullgateConfig writes a configuration file listening on 127.0.0.1:0 with JSON
// logs at info level and returns its path.
func WritePullgateConfig(t testing.TB, c PullgateConfig) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("listen: 127.0.0.1:0\nupstreams:\n")
	for _, u := range c.Upstreams {
		fmt.Fprintf(&b, "  - registry: %q\n    url: %q\n", u.Registry, u.URL.String())
		if u.Offline {
			b.WriteString("    offline: true\n")
		}
	}
	if c.DefaultUpstream != "" {
		fmt.Fprintf(&b, "defaultUpstream: %q\n", c.DefaultUpstream)
	}
	fmt.Fprintf(&b, "policy:\n  path: %q\n", c.Policy)
	if c.RegistriesD != "" {
		fmt.Fprintf(&b, "  registriesDir: %q\n", c.RegistriesD)
	}
	b.WriteString("log:\n  level: info\n  format: json\n")
	b.WriteString(c.Extra)
	path := filepath.Join(t.TempDir(), "pullgate.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Pullgate is a `pullgate serve` process.
type Pullgate struct {
	// Host is 127.0.0.1:<port>, where it listens.
	Host string
	// Logs holds its stderr: one JSON object per line.
	Logs *LogBuffer

	cmd  *exec.Cmd
	done chan struct{}
	// ended is set once Stop or Kill has ended the process, so that the cleanup does
	// not signal it again.
	ended atomic.Bool
}

// pullgateStartTimeout bounds the wait for the "pullgate listening" line.
const pullgateStartTimeout = 30 * time.Second

// StartPullgate runs `pullgate serve --config config` (env added to its environment) and
// returns once it listens. When the test ends it is stopped with SIGTERM and must exit 0.
func StartPullgate(t testing.TB, bin, config string, env ...string) *Pullgate {
	t.Helper()
	p, listening := launchPullgate(t, bin, config, env...)
	logOnFailure(t, "pullgate", p.Logs)
	p.Host = awaitReady(t, "pullgate", "listen", p.cmd, p.done, listening, pullgateStartTimeout, p.Logs)
	t.Cleanup(func() {
		if !p.ended.Load() {
			p.Stop(t)
		}
	})
	return p
}

// Stop ends the process with SIGTERM before the test ends; it must exit 0. Its logs
// stay readable.
func (p *Pullgate) Stop(t testing.TB) {
	t.Helper()
	if p.ended.Swap(true) {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("harness: SIGTERM to pullgate: %v", err)
	}
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("harness: pullgate did not stop cleanly on SIGTERM: %v", err)
	}
}

// Kill ends the process with SIGKILL (kill -9: no clean-up of any kind) and waits for
// it to be gone.
func (p *Pullgate) Kill(t testing.TB) {
	t.Helper()
	if p.ended.Swap(true) {
		return
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("harness: SIGKILL to pullgate: %v", err)
	}
	<-p.done
	_ = p.cmd.Wait()
}

// launchPullgate starts `pullgate serve --config config` in a PULLGATE_-free environment
// (a developer's shell must not change the test) plus env, collects its stderr in Logs,
// and sends the address of its "pullgate listening" line on the channel it returns.
func launchPullgate(t testing.TB, bin, config string, env ...string) (*Pullgate, <-chan string) {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", config)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULLGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	p := &Pullgate{Logs: &LogBuffer{}, cmd: cmd, done: make(chan struct{})}
	listening := StartLogged(t, "pullgate", cmd, p.Logs, p.done, 4<<20, func(line []byte) (string, bool) {
		var entry struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &entry) == nil && entry.Msg == "pullgate listening" {
			return entry.Addr, true
		}
		return "", false
	})
	return p, listening
}

// Signal sends sig to the process.
func (p *Pullgate) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("harness: signal pullgate: %v", err)
	}
}

// Reload sends SIGHUP and waits until pullgate has logged one more "policy reloaded".
func (p *Pullgate) Reload(t testing.TB) {
	t.Helper()
	n := len(p.LogEntries("policy reloaded"))
	p.Signal(t, syscall.SIGHUP)
	p.WaitLog(t, "policy reloaded", n)
}

// LogEntries returns the JSON log lines whose "msg" is msg, decoded.
func (p *Pullgate) LogEntries(msg string) []map[string]any {
	return JSONLogEntries(p.Logs.String(), msg)
}

// WaitLog waits until a line with "msg" msg has been logged more than after times (the
// count before the action the test waits on), and returns the newest one.
func (p *Pullgate) WaitLog(t testing.TB, msg string, after int) map[string]any {
	t.Helper()
	deadline := time.Now().Add(pullgateStartTimeout)
	for time.Now().Before(deadline) {
		if e := p.LogEntries(msg); len(e) > after {
			return e[len(e)-1]
		}
		select {
		case <-p.done:
			t.Fatalf("harness: pullgate exited while waiting for %q", msg)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("harness: pullgate did not log %q within %s", msg, pullgateStartTimeout)
	return nil
}

// JSONLogEntries decodes the JSON lines of log whose "msg" is msg (all when msg is
// empty); other lines are skipped.
func JSONLogEntries(log, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(log, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if msg == "" || e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// RunPullgate runs the binary to completion (pullgate verify ...) and returns its exit
// status and output.
func RunPullgate(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return RunPullgateEnv(t, bin, nil, args...)
}

// RunPullgateEnv is RunPullgate with env added to the environment, from which the test's
// own PULLGATE_* variables are removed so that a developer's shell cannot change what the
// binary reads.
func RunPullgateEnv(t testing.TB, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PULLGATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && ctx.Err() == nil:
		code = exitErr.ExitCode()
	default:
		t.Fatalf("harness: pullgate %v: %v\n%s", args, err, errOut.String())
	}
	return code, out.String(), errOut.String()
}

// logOnFailure logs the end of a daemon's log when the test has failed.
func logOnFailure(t testing.TB, name string, logs *LogBuffer) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s log:\n%s", name, tail(logs.String(), maxLogLines))
		}
	})
}

// awaitReady waits for a daemon's ready signal and returns what it carries. A daemon
// that exits first (its stderr, read until done closes, ended) or is not ready within
// timeout (it is then killed) fails the test.
func awaitReady[T any](t testing.TB, name, what string, cmd *exec.Cmd, done <-chan struct{}, ready <-chan T, timeout time.Duration, logs *LogBuffer) T {
	t.Helper()
	select {
	case v := <-ready:
		return v
	case <-done:
		err := cmd.Wait()
		t.Fatalf("harness: %s exited before it could %s (%v):\n%s", name, what, err, logs)
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		_ = cmd.Wait()
		t.Fatalf("harness: %s did not %s within %s:\n%s", name, what, timeout, logs)
	}
	panic("unreachable: t.Fatalf does not return")
}

// StartLogged starts cmd (a daemon) and collects its stderr in logs, one line at a time
// (lines up to maxLine bytes), closing done once stderr has ended. Every line goes to
// ready too: the value of a line it accepts is sent on the channel returned, which holds
// one (a later one is dropped while it is full); StartPullgate and StartContainerd wait
// on it for the daemon's ready line.
func StartLogged[T any](t testing.TB, name string, cmd *exec.Cmd, logs *LogBuffer, done chan<- struct{}, maxLine int, ready func(line []byte) (T, bool)) <-chan T {
	t.Helper()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: start %s: %v", name, err)
	}
	out := make(chan T, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		for sc.Scan() {
			line := sc.Bytes()
			logs.Write(append(append([]byte(nil), line...), '\n'))
			if v, ok := ready(line); ok {
				select {
				case out <- v:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, pipe)
	}()
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
