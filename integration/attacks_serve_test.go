package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/internal/testsupport"
)

const (
	rejectPolicy = `{"default": [{"type": "reject"}]}`
	acceptPolicy = `{"default": [{"type": "insecureAcceptAnything"}]}`
)

// serveAttack is one registry with one image, a policy file, a registries.d folder and
// the pullgate binary.
type serveAttack struct {
	bin, policy, regd, config string
	manifestURL               func(host string) string
	image                     v1.Hash
}

func newServeAttack(t *testing.T, policy string) *serveAttack {
	t.Helper()
	reg := harness.StartRegistry(t)
	img := reg.Push(t, "serve/app:v1", harness.OCIImage(t, 1, 512, harness.LinuxAMD64))
	dir := t.TempDir()
	a := &serveAttack{
		bin:    harness.BuildPullgate(t, t.TempDir()),
		policy: filepath.Join(dir, "policy.json"),
		regd:   filepath.Join(dir, "registries.d"),
		image:  img,
		manifestURL: func(host string) string {
			return "http://" + host + "/v2/" + reg.Host + "/serve/app/manifests/v1"
		},
	}
	testsupport.WriteFile(t, a.policy, policy)
	if err := os.Mkdir(a.regd, 0o700); err != nil {
		t.Fatal(err)
	}
	a.config = harness.WritePullgateConfig(t, harness.PullgateConfig{
		Upstreams:       []harness.Upstream{{Registry: reg.Host, URL: reg.URL}},
		DefaultUpstream: reg.Host,
		Policy:          a.policy,
		RegistriesD:     a.regd,
	})
	return a
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pingOK checks that pullgate answers /v2/.
func pingOK(t *testing.T, host string) {
	t.Helper()
	if a := call(t, http.MethodGet, "http://"+host+"/v2/"); a.status != http.StatusOK {
		t.Fatalf("GET /v2/: status %d, body %q", a.status, a.body)
	}
}

// TestAttackServeReloadBlockedFile: a file in registries.d that blocks when read (a FIFO
// nobody writes; a hung network file system behaves the same) must not wedge pullgate.
// The reload times out and the previous policy stays in force; its late success is not
// put in force; a later reload works; SIGTERM during a blocked reload still stops
// pullgate at once, with exit status 0.
func TestAttackServeReloadBlockedFile(t *testing.T) {
	a := newServeAttack(t, rejectPolicy)
	pg := harness.StartPullgateEarly(t, a.bin, a.config, "PULLGATE_POLICY_RELOADTIMEOUT=3s")
	pg.WaitListening(t)
	call(t, http.MethodGet, a.manifestURL(pg.Host)).denied(t, "under the reject policy")

	// The reload reads the new, accepting policy, then blocks on the FIFO.
	testsupport.WriteFile(t, a.policy, acceptPolicy)
	fifo := filepath.Join(a.regd, "x.yaml")
	mkfifo(t, fifo)
	pg.Signal(t, syscall.SIGHUP)
	w := harness.OpenFIFOWriter(t, fifo) // returns once pullgate is blocked reading it
	line := pg.WaitLog(t, "reload timed out; the previous policy stays in force", 0)
	if line["level"] != "ERROR" {
		t.Errorf("timeout line %v", line)
	}
	pingOK(t, pg.Host)
	call(t, http.MethodGet, a.manifestURL(pg.Host)).denied(t, "after the reload timed out")

	// The blocked read now ends (EOF: an empty file) and the load succeeds, too late: the
	// operator was told the previous policy stays, so it must.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	pg.WaitLog(t, "a timed-out reload finished late; its result is discarded", 0)
	call(t, http.MethodGet, a.manifestURL(pg.Host)).denied(t, "after the late reload result")
	if n := len(pg.LogEntries("policy reloaded")); n != 0 {
		t.Fatalf("%d reloads logged as done, want 0", n)
	}

	// With the FIFO gone the next SIGHUP reloads as usual.
	if err := os.Remove(fifo); err != nil {
		t.Fatal(err)
	}
	pg.Signal(t, syscall.SIGHUP)
	pg.WaitLog(t, "policy reloaded", 0)
	call(t, http.MethodGet, a.manifestURL(pg.Host)).served(t, "after a reload that worked", a.image)

	// SIGTERM while a reload is blocked: pullgate stops at once, cleanly.
	mkfifo(t, fifo)
	pg.Signal(t, syscall.SIGHUP)
	w = harness.OpenFIFOWriter(t, fifo)
	defer w.Close()
	pg.Stop(t)
}

// TestAttackServeSIGHUPDuringStartup: a SIGHUP that arrives while pullgate is still
// starting (here held in its first read of registries.d, a FIFO) must not kill it; it is
// a reload request, handled once pullgate serves.
func TestAttackServeSIGHUPDuringStartup(t *testing.T) {
	a := newServeAttack(t, rejectPolicy)
	fifo := filepath.Join(a.regd, "x.yaml")
	mkfifo(t, fifo)
	pg := harness.StartPullgateEarly(t, a.bin, a.config)
	w := harness.OpenFIFOWriter(t, fifo) // pullgate is in its start-up, reading registries.d
	for range 20 {
		pg.Signal(t, syscall.SIGHUP)
	}
	// The start-up has read the reject policy already; the reload must read this one.
	testsupport.WriteFile(t, a.policy, acceptPolicy)
	// Replace the FIFO for the reload, then let the start-up's read end (EOF).
	regular := filepath.Join(a.regd, "x.yaml.new")
	testsupport.WriteFile(t, regular, "")
	if err := os.Rename(regular, fifo); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for !pg.Listening() && !pg.Exited() {
		pg.Signal(t, syscall.SIGHUP)
		time.Sleep(time.Millisecond) // pacing only
	}
	pg.WaitListening(t)
	pingOK(t, pg.Host)
	pg.WaitLog(t, "policy reloaded", 0)
	call(t, http.MethodGet, a.manifestURL(pg.Host)).served(t, "after the reload asked for during start-up", a.image)
}
