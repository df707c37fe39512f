package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
)

// reloadFunc is the server's reload: serve runs it off the signal loop and calls commit
// only if the read ended within its deadline.
type reloadFunc = server.ReloadFunc

// reloadResult is what one run of a reloadFunc produced.
type reloadResult struct {
	commit func()
	err    error
}

// reloader runs the reloads SIGHUP asks for: one at a time, each off the signal loop
// with a deadline. A request while one runs is queued (at most one: a second request
// adds nothing, the queued reload reads the files as they are when it starts). A reload
// whose deadline passes is reported as failed, and its result, if it ever comes, is
// discarded: the operator was told the previous policy stays in force, so it must. Such a
// reload still counts as running until its read returns, so a file that never returns
// costs one goroutine, not one per SIGHUP.
//
// All methods are called from serveUntilDone's loop, never concurrently.
type reloader struct {
	load    reloadFunc // nil: the gates cannot reload
	timeout time.Duration
	cfg     *config.Config
	logger  *slog.Logger

	running  chan reloadResult // the running reload's result; nil when none runs
	timer    *time.Timer
	deadline <-chan time.Time // fires when the running reload is late; nil otherwise
	timedOut bool             // the running reload has been reported as timed out
	queued   bool             // a request arrived while a reload was running

	// changes reports file changes (the watcher; nil: none) with the time the change
	// was last seen; each one asks for a reload like SIGHUP (see changed).
	changes <-chan time.Time
	// startedAt is when the running reload started.
	startedAt time.Time
	// files, when set, is asked to re-read the TLS and htpasswd files on every
	// request (it must not block); applied is called after a policy reload is put in
	// force (the watcher then follows the key files the new policy names).
	files   func()
	applied func()
}

// newReloader returns the reloader serve uses for cfg.
func newReloader(cfg *config.Config, load reloadFunc, logger *slog.Logger) *reloader {
	return &reloader{load: load, timeout: cfg.Policy.ReloadTimeout, cfg: cfg, logger: logger}
}

// request handles one SIGHUP or file change.
func (r *reloader) request(ctx context.Context) {
	if r.files != nil {
		r.files()
	}
	if r.load == nil {
		r.logger.WarnContext(ctx, "reload requested (SIGHUP) but this gate cannot reload; restart pullgate to apply changes", "config", r.cfg.File)
		return
	}
	if r.running == nil {
		r.start(ctx)
		return
	}
	if r.queued {
		return
	}
	r.queued = true
	if r.timedOut {
		r.logger.WarnContext(ctx, "reload requested while a timed-out reload is still reading the files; it runs when that one returns",
			"policy", r.cfg.Policy.Path, "registriesDir", r.cfg.Policy.RegistriesDir)
		return
	}
	r.logger.InfoContext(ctx, "reload requested while one runs; it runs next")
}

// changed handles a file change last seen at at. A reload that started after it reads
// the changed files already, so it is not queued again (an editor's save and the
// SIGHUP sent right after it make one reload, not two).
func (r *reloader) changed(ctx context.Context, at time.Time) {
	if r.running != nil && !r.timedOut && r.startedAt.After(at) {
		if r.files != nil {
			r.files()
		}
		return
	}
	r.request(ctx)
}

func (r *reloader) start(ctx context.Context) {
	r.startedAt = time.Now()
	// Buffered, so that a reload whose result nobody waits for any more (shutdown) ends.
	results := make(chan reloadResult, 1)
	r.running, r.timedOut = results, false
	r.timer = time.NewTimer(r.timeout)
	r.deadline = r.timer.C
	load := r.load
	go func() {
		commit, err := load(ctx)
		results <- reloadResult{commit: commit, err: err}
	}()
}

// expired is called when the running reload's deadline passes.
func (r *reloader) expired(ctx context.Context) {
	r.deadline, r.timedOut = nil, true
	r.logger.ErrorContext(ctx, "reload timed out; the previous policy stays in force", "timeout", r.timeout.String(),
		"policy", r.cfg.Policy.Path, "registriesDir", r.cfg.Policy.RegistriesDir)
}

// finished is called with the running reload's result, and starts the queued one.
func (r *reloader) finished(ctx context.Context, res reloadResult) {
	r.running = nil
	if r.timedOut {
		r.logger.WarnContext(ctx, "a timed-out reload finished late; its result is discarded", "err", res.err)
	} else {
		r.timer.Stop()
		r.deadline = nil
		r.apply(ctx, res)
	}
	if r.queued {
		r.queued = false
		r.start(ctx)
	}
}

// apply puts a reload's result in force, or reports why it cannot be.
func (r *reloader) apply(ctx context.Context, res reloadResult) {
	if res.err != nil {
		r.logger.ErrorContext(ctx, "failed to reload the policy; the previous policy stays in force", "policy", r.cfg.Policy.Path, "err", res.err)
		return
	}
	if res.commit != nil {
		res.commit()
	}
	r.logger.InfoContext(ctx, "policy reloaded", "policy", r.cfg.Policy.Path, "registriesDir", r.cfg.Policy.RegistriesDir)
	if r.applied != nil {
		r.applied()
	}
}

// results is the running reload's result channel (nil, never ready, when none runs).
func (r *reloader) results() <-chan reloadResult { return r.running }
