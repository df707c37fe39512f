package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/testsupport"
)

// TestFileWatcher: a rename over a watched file, a change inside a watched folder and a
// ConfigMap-style ..data swap are reported; a change to another file of the same folder
// is not.
func TestFileWatcher(t *testing.T) {
	dir := t.TempDir()
	policy := filepath.Join(dir, "policy.json")
	regd := filepath.Join(dir, "registries.d")
	for _, p := range []string{policy, filepath.Join(dir, "unrelated")} {
		testsupport.WriteFile(t, p, []byte("{}"))
	}
	if err := os.Mkdir(regd, 0o700); err != nil {
		t.Fatal(err)
	}
	fw, err := newFileWatcher(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fw.set([]string{policy}, []string{regd})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go fw.run(ctx)

	// A report is waited for generously; the absence of one (only the first step) for
	// twice the settle time.
	reported := func(want bool) bool {
		wait := 2 * watchSettle
		if want {
			wait = 10 * time.Second
		}
		select {
		case <-fw.changed:
			return true
		case <-time.After(wait):
			return false
		}
	}
	for _, c := range []struct {
		name   string
		change func() error
		want   bool
	}{
		{"another file of the folder", func() error { return os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o600) }, false},
		{"renamed over the policy", func() error {
			if err := os.WriteFile(policy+".tmp", []byte(`{"a":1}`), 0o600); err != nil {
				return err
			}
			return os.Rename(policy+".tmp", policy)
		}, true},
		{"a file inside registries.d", func() error { return os.WriteFile(filepath.Join(regd, "default.yaml"), []byte("x"), 0o600) }, true},
		{"a ..data swap", func() error {
			if err := os.Mkdir(filepath.Join(dir, "..v1"), 0o700); err != nil {
				return err
			}
			if err := os.Symlink("..v1", filepath.Join(dir, "..data_tmp")); err != nil {
				return err
			}
			return os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
		}, true},
	} {
		if err := c.change(); err != nil {
			t.Fatal(err)
		}
		if got := reported(c.want); got != c.want {
			t.Errorf("%s: reported %v, want %v", c.name, got, c.want)
		}
	}
}

// TestReloaderChanged: a file change seen before the running reload started is covered
// by it; one seen after queues another reload.
func TestReloaderChanged(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	r := newReloader(testReloadConfig(time.Hour), func(context.Context) (func(), error) {
		<-release
		return func() {}, nil
	}, slog.New(slog.DiscardHandler))
	before := time.Now()
	r.request(context.Background())
	r.changed(context.Background(), before)
	if r.queued {
		t.Fatal("a change seen before the running reload started queued another")
	}
	r.changed(context.Background(), time.Now().Add(time.Millisecond))
	if !r.queued {
		t.Fatal("a change seen after the running reload started was not queued")
	}
}
