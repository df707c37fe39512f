package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// killChildEnv makes the test binary the child of TestKillMidDownload: it starts a download
// into the store at the named root and stops halfway, for the parent to kill -9.
const killChildEnv = "PULLGATE_STORE_KILL_CHILD"

func killData() []byte { return bytes.Repeat([]byte("0123456789abcdef"), 1<<16) } // 1 MiB

func TestKillChild(t *testing.T) {
	root := os.Getenv(killChildEnv)
	if root == "" {
		return // only meaningful as TestKillMidDownload's child
	}
	d, err := NewDriver(ctx, map[string]any{"filesystem": map[string]any{"rootdirectory": root}}, "/")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{Driver: d})
	if err != nil {
		t.Fatal(err)
	}
	data := killData()
	u := newHalfGatedUpstream(data) // never opened: the parent kills us
	body, _, err := s.Fetch(ctx, digest.FromBytes(data), u.open)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(body, make([]byte, len(data)/2)); err != nil {
		t.Fatal(err)
	}
	fmt.Println("halfway")
	<-u.gate
}

// TestKillMidDownload: a process killed (SIGKILL) mid-download leaves a partial spool that
// is never served; the blob is fetched whole after the restart, and the spool is purged
// once older than StagingMaxAge.
func TestKillMidDownload(t *testing.T) {
	if os.Getenv(killChildEnv) != "" {
		return
	}
	root := t.TempDir()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	halfway := false
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "halfway" {
			halfway = true
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if !halfway {
		t.Fatalf("child did not get halfway:\n%s", stderr.String())
	}

	spools, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/_uploads", spoolPrefix+"*"))
	if len(spools) != 1 {
		t.Fatalf("spools left: %v", spools)
	}
	data := killData()
	d := digest.FromBytes(data)
	drv, _ := NewDriver(ctx, map[string]any{"filesystem": map[string]any{"rootdirectory": root}}, "/")
	f := openOn(t, drv, nil, Options{}, &clock{t: time.Now()})
	if _, err := f.s.StatBlob(ctx, d); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a partial download is kept: %v", err)
	}
	if got, err := fetchAll(t, f.s, d, newUpstream(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("re-fetch: %v", err)
	}
	waitKept(t, f.s, d)
	if _, err := os.Stat(spools[0]); err != nil {
		t.Fatal("a recent spool was purged (it may be a live replica's)")
	}
	f.s.Close()
	f2 := openOn(t, drv, nil, Options{}, &clock{t: time.Now().Add(StagingMaxAge + time.Minute)})
	if _, err := os.Stat(spools[0]); !os.IsNotExist(err) {
		t.Fatalf("the killed process's spool was not purged: %v", err)
	}
	if _, err := f2.s.StatBlob(ctx, d); err != nil {
		t.Fatal(err)
	}
}
