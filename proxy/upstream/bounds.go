package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Phases of an upstream call, as TimeoutError names them.
const (
	phaseSetup     = "set-up (ping and token)"
	phaseRequest   = "request"
	phaseBlobStall = "blob stall"
)

// TimeoutError says which of the client's deadlines ran out. It is a
// context.DeadlineExceeded and a net.Error timeout, so that callers mapping timeouts
// (504) need not know it; it is never a context.Canceled, which means the caller went
// away.
type TimeoutError struct {
	Phase string
	Limit time.Duration
}

func (e *TimeoutError) Error() string {
	if e.Phase == phaseBlobStall {
		return fmt.Sprintf("no blob byte from the upstream for %s", e.Limit)
	}
	return fmt.Sprintf("upstream %s took longer than %s", e.Phase, e.Limit)
}

// Timeout reports true, as net.Error timeouts do.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary is part of net.Error.
func (e *TimeoutError) Temporary() bool { return true }

// Is makes errors.Is(err, context.DeadlineExceeded) true.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// callClass is what a request to the upstream is for; it picks the redirect policy and
// the body bounds (a context value, so that it reaches the requests go-containerregistry
// makes on the client's behalf).
type callClass int

const (
	// classAPI is the default: manifests, tags, referrers, the signature API, and
	// token refreshes. No redirect leaves the upstream's origin.
	classAPI callClass = iota
	// classBlob is a blob GET or HEAD: it may be redirected to storage elsewhere.
	classBlob
	// classSetup is the ping and token exchange: API rules, bodies capped.
	classSetup
)

type classKey struct{}

func withClass(ctx context.Context, c callClass) context.Context {
	return context.WithValue(ctx, classKey{}, c)
}

func classOf(ctx context.Context) callClass {
	c, _ := ctx.Value(classKey{}).(callClass)
	return c
}

// withTimer returns ctx cancelled, with a *TimeoutError as its cause, once limit has
// passed; the timer can be stopped and re-armed (blob bodies re-arm it per Read).
func withTimer(ctx context.Context, phase string, limit time.Duration) (context.Context, context.CancelCauseFunc, *time.Timer) {
	ctx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(limit, func() { cancel(&TimeoutError{Phase: phase, Limit: limit}) })
	return ctx, cancel, timer
}

// ownTimeout replaces err by ctx's *TimeoutError when that is why ctx ended: net/http
// reports a cancelled request as context.Canceled, which would read as "the client
// went away". Other errors (the caller's own cancellation included) pass unchanged.
func ownTimeout(ctx context.Context, err error) error {
	var te *TimeoutError
	if err == nil || ctx.Err() == nil || !errors.As(context.Cause(ctx), &te) || errors.As(err, new(*TimeoutError)) {
		return err
	}
	return fmt.Errorf("%w (%s)", te, err.Error())
}

// boundedBody is an upstream answer's body under the request's timers: reqTimer (the
// request deadline, still running for API answers) and, for blobs, stallTimer, armed
// only while a Read waits for the upstream. Close stops both and releases the request.
type boundedBody struct {
	body       io.ReadCloser
	ctx        context.Context
	cancel     context.CancelCauseFunc
	reqTimer   *time.Timer
	stallTimer *time.Timer // nil unless a blob
	stall      time.Duration
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if b.stallTimer != nil {
		b.stallTimer.Reset(b.stall)
	}
	n, err := b.body.Read(p)
	if b.stallTimer != nil {
		b.stallTimer.Stop()
	}
	if err != nil && err != io.EOF {
		err = ownTimeout(b.ctx, err)
	}
	return n, err
}

func (b *boundedBody) Close() error {
	b.reqTimer.Stop()
	if b.stallTimer != nil {
		b.stallTimer.Stop()
	}
	err := b.body.Close()
	b.cancel(nil)
	return err
}

// errBodyTooLarge ends a set-up body over maxSetupBodyBytes.
var errBodyTooLarge = errors.New("upstream body larger than pullgate reads during set-up")

// overflowKey holds the *atomic.Bool a set-up's capped bodies set when one goes over
// the cap: go-containerregistry ignores the error draining the ping's body, so the
// set-up checks the flag itself.
type overflowKey struct{}

// setupBodyLimit caps the bodies of set-up answers (classSetup) at maxSetupBodyBytes:
// go-containerregistry drains the ping's body whole.
type setupBodyLimit struct {
	inner http.RoundTripper
}

func (t *setupBodyLimit) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.inner.RoundTrip(req)
	if err != nil || classOf(req.Context()) != classSetup {
		return resp, err
	}
	over, _ := req.Context().Value(overflowKey{}).(*atomic.Bool)
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: maxSetupBodyBytes, over: over}
	return resp, nil
}

// cappedBody fails a Read past its allowance instead of truncating silently.
type cappedBody struct {
	io.ReadCloser
	left int64
	over *atomic.Bool // set when the body went over; may be nil
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// One byte more tells a body at the cap from one over it.
		var one [1]byte
		n, err := b.ReadCloser.Read(one[:])
		if n > 0 {
			if b.over != nil {
				b.over.Store(true)
			}
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}
