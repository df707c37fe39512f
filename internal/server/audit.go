package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/pullgate/pullgate/proxy/enforce"
)

const (
	// auditBuffer bounds the audit records waiting to be written (about 1 KiB each):
	// a slow or failing disk costs at most this much memory, then records are dropped
	// (counted and logged) rather than slowing pulls down.
	auditBuffer = 8192
	// auditBatch is the most records written with one write call.
	auditBatch = 256
	// auditErrorEvery bounds how often a failing audit file is logged.
	auditErrorEvery = 10 * time.Second
)

// AuditRecord is one line of the audit file.
type AuditRecord struct {
	Time        string `json:"time"`
	Kind        string `json:"kind"`
	Verdict     string `json:"verdict"`
	Enforced    bool   `json:"enforced"`
	WarnScope   string `json:"warnScope,omitempty"`
	Client      string `json:"client"`
	User        string `json:"user,omitempty"`
	Upstream    string `json:"upstream"`
	Repository  string `json:"repository"`
	Reference   string `json:"reference,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Identity    string `json:"identity,omitempty"`
	Scope       string `json:"scope,omitempty"`
	Requirement string `json:"requirement,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Cache       string `json:"cache,omitempty"`
	DurationMS  int64  `json:"durationMs"`
}

// Audit appends every decision to audit.path as one JSON object per line. Records are
// queued (bounded) and written by one goroutine, so a decision never waits for the disk.
// The file is opened O_APPEND, so a truncation (logrotate copytruncate) needs nothing
// more; before each batch the path is compared with the open file, and a file moved
// away or deleted (logrotate's default) is replaced by a new one at the path.
type Audit struct {
	path    string
	queue   chan []byte
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
	file    *os.File
	log     *slog.Logger
	// dropped and failed are told about lost records and failed writes (metrics).
	dropped, failed func()
	lastErr         time.Time
	droppedMu       sync.Mutex
	lastDropLog     time.Time
}

// NewAudit opens (or creates) path for appending and starts the writer.
func NewAudit(path string, log *slog.Logger, dropped, failed func()) (*Audit, error) {
	f, err := openAudit(path)
	if err != nil {
		return nil, fmt.Errorf("audit.path: %w", err)
	}
	if dropped == nil {
		dropped = func() {}
	}
	if failed == nil {
		failed = func() {}
	}
	a := &Audit{path: path, queue: make(chan []byte, auditBuffer), stop: make(chan struct{}), stopped: make(chan struct{}),
		file: f, log: log, dropped: dropped, failed: failed}
	go a.run()
	return a, nil
}

func openAudit(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// ObserveDecision implements enforce.DecisionObserver: the record is queued, or dropped
// when the queue is full.
func (a *Audit) ObserveDecision(_ context.Context, d enforce.DecisionRecord) {
	rec := AuditRecord{Time: time.Now().UTC().Format(time.RFC3339Nano), Kind: d.Kind, Verdict: d.Verdict,
		Enforced: d.Enforced, WarnScope: d.WarnScope, Client: d.Client, User: d.User, Upstream: d.Registry,
		Repository: d.Repository, Reference: d.Reference, Digest: d.Digest.String(), Identity: d.Identity,
		Scope: d.Scope, Requirement: d.Requirement, Reason: d.Reason, Cache: d.Cache, DurationMS: d.Duration.Milliseconds()}
	if d.Err != nil {
		rec.Reason = d.Err.Error()
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return // only strings and numbers: cannot happen
	}
	select {
	case a.queue <- append(line, '\n'):
	default:
		a.dropped()
		a.droppedMu.Lock()
		defer a.droppedMu.Unlock()
		if now := time.Now(); now.Sub(a.lastDropLog) >= auditErrorEvery {
			a.lastDropLog = now
			a.log.Error("audit buffer full: decisions are not written to the audit file", "path", a.path, "buffered", auditBuffer)
		}
	}
}

func (a *Audit) run() {
	defer close(a.stopped)
	var batch bytes.Buffer
	for {
		select {
		case line := <-a.queue:
			batch.Write(line)
		case <-a.stop:
			// Write what was queued before the stop, then close.
			for {
				select {
				case line := <-a.queue:
					batch.Write(line)
					continue
				default:
				}
				break
			}
			if batch.Len() > 0 {
				a.write(batch.Bytes())
			}
			a.file.Close()
			return
		}
	drain:
		for n := 1; n < auditBatch; n++ {
			select {
			case line := <-a.queue:
				batch.Write(line)
			default:
				break drain
			}
		}
		a.write(batch.Bytes())
		batch.Reset()
	}
}

// write appends b, reopening the path first when the open file is no longer there.
func (a *Audit) write(b []byte) {
	if err := a.reopenIfMoved(); err != nil {
		a.fail("failed to reopen the audit file", err)
		return
	}
	if _, err := a.file.Write(b); err != nil {
		a.fail("failed to write the audit file", err)
		// Next time the file is opened afresh: the descriptor may be what failed.
		a.file.Close()
		a.file = nil
	}
}

func (a *Audit) reopenIfMoved() error {
	if a.file != nil {
		open, err1 := a.file.Stat()
		at, err2 := os.Stat(a.path)
		if err1 == nil && err2 == nil && os.SameFile(open, at) {
			return nil
		}
		a.file.Close()
		a.file = nil
	}
	f, err := openAudit(a.path)
	if err != nil {
		return err
	}
	a.file = f
	return nil
}

func (a *Audit) fail(msg string, err error) {
	a.failed()
	if now := time.Now(); now.Sub(a.lastErr) >= auditErrorEvery {
		a.lastErr = now
		a.log.Error(msg, "path", a.path, "err", err)
	}
}

// Close writes what is queued and closes the file. Decisions reported after Close are
// dropped.
func (a *Audit) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.stopped
	return nil
}
