package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchSettle is how long the watcher waits after the last change before it reports: an
// editor's save or a ConfigMap update is several events, and the reload should read the
// files once they are all written. With it, a change is in force well within 5 s.
const watchSettle = 300 * time.Millisecond

// fileWatcher reports changes of the files serve reloads (the policy, its key files,
// registries.d, the TLS and htpasswd files). It watches the folders that hold them, not
// the files: an editor that saves by writing a new file and renaming it over the old one,
// and a Kubernetes ConfigMap whose files are symlinks through a ..data symlink swapped
// for a new folder, both replace the file a watch on it would follow. An event counts
// when it names a watched file, a ".." entry (the ConfigMap's ..data and its folders),
// or anything inside a watched folder (registries.d).
type fileWatcher struct {
	w   *fsnotify.Watcher
	log *slog.Logger
	// changed holds one report: the time the last event of a change was seen. A
	// report while one is pending replaces nothing (the pending one is older, so a
	// reload started after it covers less; see reloader.changed).
	changed chan time.Time

	mu sync.Mutex
	// names maps a watched parent folder to the file names in it that count.
	names map[string]map[string]bool
	// inside are folders every event inside which counts.
	inside map[string]bool
	// watched are the folders fsnotify watches.
	watched map[string]bool
}

func newFileWatcher(log *slog.Logger) (*fileWatcher, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	return &fileWatcher{w: w, log: log, changed: make(chan time.Time, 1), names: map[string]map[string]bool{},
		inside: map[string]bool{}, watched: map[string]bool{}}, nil
}

// set makes the watcher follow files and the contents of dirs; folders no longer needed
// are dropped, and folders that were replaced are watched afresh.
func (fw *fileWatcher) set(files, dirs []string) {
	names := map[string]map[string]bool{}
	inside := map[string]bool{}
	add := func(path string) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return
		}
		parent, base := filepath.Dir(abs), filepath.Base(abs)
		if names[parent] == nil {
			names[parent] = map[string]bool{}
		}
		names[parent][base] = true
	}
	for _, f := range files {
		add(f)
	}
	for _, d := range dirs {
		add(d)
		if abs, err := filepath.Abs(d); err == nil {
			inside[abs] = true
		}
	}
	want := map[string]bool{}
	for d := range names {
		want[d] = true
	}
	for d := range inside {
		want[d] = true
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	fw.names, fw.inside = names, inside
	for d := range fw.watched {
		if !want[d] {
			_ = fw.w.Remove(d)
			delete(fw.watched, d)
		}
	}
	for d := range want {
		// Adding again is harmless, and re-arms a watch lost when the folder was replaced.
		if err := fw.w.Add(d); err != nil {
			if !fw.watched[d] {
				fw.log.Warn("cannot watch a folder for changes; use SIGHUP to reload what it holds", "folder", d, "err", err)
			}
			delete(fw.watched, d)
			continue
		}
		fw.watched[d] = true
	}
}

// counts reports whether ev may change a watched file.
func (fw *fileWatcher) counts(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	dir, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.inside[dir] || fw.inside[ev.Name] {
		return true
	}
	return fw.names[dir] != nil && (fw.names[dir][base] || strings.HasPrefix(base, ".."))
}

// run reports changes on changed until ctx ends.
func (fw *fileWatcher) run(ctx context.Context) {
	defer fw.w.Close()
	var settle *time.Timer
	var fire <-chan time.Time
	var last time.Time // when the newest counted change was made
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if !fw.counts(ev) {
				continue
			}
			if t := changedAt(ev.Name); t.After(last) {
				last = t
			}
			if settle == nil {
				settle = time.NewTimer(watchSettle)
			} else {
				settle.Reset(watchSettle)
			}
			fire = settle.C
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: report a change, so that nothing is missed.
			fw.log.Warn("file watcher error; reloading to be safe", "err", err)
			fw.report(time.Now())
		case <-fire:
			fire = nil
			fw.report(last)
		}
	}
}

func (fw *fileWatcher) report(at time.Time) {
	select {
	case fw.changed <- at:
	default:
	}
}

// changedAt is when the change an event names was made: the file's change time (the
// event may be read well after it on a busy machine, and a reload that started between
// the two has read the change), or now for a file that is gone.
func changedAt(name string) time.Time {
	now := time.Now()
	if fi, err := os.Lstat(name); err == nil {
		if t := changeTime(fi); t.Before(now) {
			return t
		}
	}
	return now
}
