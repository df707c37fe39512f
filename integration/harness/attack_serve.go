package harness

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// pullgateStopTimeout bounds the wait for pullgate to exit after SIGTERM. Shutdown itself
// lets in-flight requests run up to 30 s; the tests that use it have none.
const pullgateStopTimeout = 30 * time.Second

// EarlyPullgate is a `pullgate serve` process started without waiting for it to listen,
// so that a test can act on it during its start-up.
type EarlyPullgate struct {
	*Pullgate
	listening <-chan string
	stopped   bool
}

// StartPullgateEarly runs `pullgate serve --config config` with env (KEY=VALUE, such as
// PULLGATE_POLICY_RELOADTIMEOUT=1s) added to a PULLGATE_-free environment, and returns at
// once; WaitListening waits for it to listen. When the test ends it is stopped as Stop
// does, unless the test stopped it.
func StartPullgateEarly(t testing.TB, bin, config string, env ...string) *EarlyPullgate {
	t.Helper()
	pg, listening := launchPullgate(t, bin, config, env...)
	p := &EarlyPullgate{Pullgate: pg, listening: listening}
	logOnFailure(t, "pullgate", p.Logs)
	t.Cleanup(func() {
		if !p.stopped {
			p.Stop(t)
		}
	})
	return p
}

// WaitListening waits for the "pullgate listening" line and sets Host.
func (p *EarlyPullgate) WaitListening(t testing.TB) {
	t.Helper()
	if p.Host != "" { // Listening has seen the line
		return
	}
	select {
	case p.Host = <-p.listening:
	case <-p.done:
		err := p.waitExit()
		p.stopped = true
		t.Fatalf("harness: pullgate exited before listening (%v)", err)
	case <-time.After(pullgateStartTimeout):
		t.Fatalf("harness: pullgate did not listen within %s", pullgateStartTimeout)
	}
}

// Listening reports whether pullgate has logged "pullgate listening" (and sets Host).
func (p *EarlyPullgate) Listening() bool {
	if p.Host != "" {
		return true
	}
	select {
	case p.Host = <-p.listening:
		return true
	default:
		return false
	}
}

// Exited reports whether the process has ended (its stderr is closed).
func (p *EarlyPullgate) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and requires the process to exit 0 within pullgateStopTimeout; a
// process that does not is killed and the test fails.
func (p *EarlyPullgate) Stop(t testing.TB) {
	t.Helper()
	p.stopped = true
	// A process that has exited but not been waited for still takes the signal.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("harness: SIGTERM to pullgate: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(pullgateStopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("harness: pullgate did not exit within %s of SIGTERM (killed: %v)", pullgateStopTimeout, p.waitExit())
		return
	}
	if err := p.waitExit(); err != nil {
		t.Errorf("harness: pullgate did not stop cleanly on SIGTERM: %v", err)
	}
}

// waitExit reaps the process once its stderr has closed.
func (p *EarlyPullgate) waitExit() error {
	err := p.cmd.Wait()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return exitErr
	}
	return err
}

// OpenFIFOWriter opens the FIFO at path for writing as soon as a process has it open for
// reading, and so tells the test that the process is blocked reading it. It polls (a
// blocking open would hang the test if nobody ever reads) for at most pullgateStartTimeout.
func OpenFIFOWriter(t testing.TB, path string) *os.File {
	t.Helper()
	deadline := time.Now().Add(pullgateStartTimeout)
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err == nil {
			return f
		}
		if !errors.Is(err, syscall.ENXIO) { // ENXIO: no reader yet
			t.Fatalf("harness: open FIFO %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: nobody opened FIFO %s for reading within %s", path, pullgateStartTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
