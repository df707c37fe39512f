package integration

// Enforcement when the lookaside fails, and under a burst of identical pulls: pullgate
// assembled in-process with the real gate (a short lookaside timeout, a counting
// evaluator), against the same registry, keys and lookaside as the binary tests.

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/pullgate/pullgate/integration/harness"
	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy/enforce"
)

// lookasideTimeout bounds each lookaside request of the in-process pullgate, so that a
// hanging lookaside becomes a 503 quickly (the binary uses 15s). A test whose lookaside
// answers, only slowly on a loaded machine, sets a longer one (opts.LookasideTimeout).
const lookasideTimeout = 300 * time.Millisecond

// enforcingProxy assembles pullgate in front of the world's registry with its policy and
// registries.d.
func (w *enforceWorld) enforcingProxy(t *testing.T, opts harness.EnforcingProxyOptions) *harness.EnforcingProxy {
	t.Helper()
	opts.Upstreams = []harness.Upstream{{Registry: upstreamName, URL: w.reg.URL}}
	opts.DefaultUpstream = upstreamName
	opts.Policy, opts.RegistriesD = w.policy, w.sig.RegistriesD
	if opts.LookasideTimeout == 0 {
		opts.LookasideTimeout = lookasideTimeout
	}
	return harness.StartEnforcingProxy(t, opts)
}

// blobsOf returns the config and layer digests of repo:v1 in the upstream.
func (w *enforceWorld) blobsOf(t *testing.T, repo string) []v1.Hash {
	t.Helper()
	return harness.ImageBlobs(t, w.reg.Image(t, repo+":v1"))
}

// A lookaside that fails (500, an HTML page, no answer) makes the verdict undecidable:
// 503 with an OCI error body, nothing served, nothing cached. Once it recovers, the next
// request is evaluated afresh and served.
func TestEnforceLookasideFailures(t *testing.T) {
	t.Parallel()
	w := newEnforceWorld(t)
	repo := "flaky/app"
	want := w.signedImage(t, repo, w.trusted, fullName(repo)+":v1")
	blobs := w.blobsOf(t, repo)
	la := w.sig.Lookaside
	sigRequests := func() int { return la.Count(repo+"@", "/signature-1") }

	for _, c := range []struct {
		name string
		mode harness.LookasideMode
		// why is in the decision log's reason.
		why string
		// timeout is the lookaside timeout: short where the lookaside hangs, long where it
		// answers (a 500 or a page that took 300 ms on a loaded machine would be a timeout,
		// another reason than the one checked).
		timeout time.Duration
	}{
		{"500", harness.LookasideError, "status 500 Internal Server Error", 10 * time.Second},
		// An HTML page at every URL: pullgate reads signature-1 to -128 before parsing any
		// (and fails on the count); containers/image fails parsing signature-1. Both: error.
		{"HTML page", harness.LookasideHTML, "lookaside fetch failed", 10 * time.Second},
		{"hanging", harness.LookasideHang, "no answer within 300ms (upstreamTimeouts.lookaside)", lookasideTimeout},
	} {
		// Not parallel: the lookaside is shared. A fresh pullgate each time: empty caches.
		t.Run(c.name, func(t *testing.T) {
			p := w.enforcingProxy(t, harness.EnforcingProxyOptions{LookasideTimeout: c.timeout})
			base := p.URL.String() + "/v2/" + fullName(repo) + "/"
			la.SetMode(c.mode)
			t.Cleanup(func() { la.SetMode(harness.LookasideServe) })

			for attempt := 1; attempt <= 2; attempt++ {
				before := sigRequests()
				for _, method := range []string{http.MethodGet, http.MethodHead} {
					a := call(t, method, base+"manifests/v1")
					if a.status != http.StatusServiceUnavailable || a.header.Get("Docker-Content-Digest") != "" {
						t.Fatalf("attempt %d %s: %d %v %q, want 503 without content", attempt, method, a.status, a.header, a.body)
					}
					if method == http.MethodGet {
						if e := a.oneError(t); e.Code != "UNAVAILABLE" || strings.Contains(string(a.body), "schemaVersion") {
							t.Errorf("attempt %d: error %+v", attempt, e)
						}
					}
				}
				// Asked again each time: an undecided outcome is not remembered.
				if n := sigRequests(); n < before+2 {
					t.Errorf("attempt %d: the lookaside was asked %d times for two requests", attempt, n-before)
				}
				for _, d := range blobs {
					call(t, http.MethodGet, base+"blobs/"+d.String()).denied(t, "blob while undecided")
				}
				// pullgate's signature API cannot answer either.
				if a := call(t, http.MethodGet, p.URL.String()+"/extensions/v2/"+fullName(repo)+"/signatures/"+want.String()); a.status != http.StatusServiceUnavailable {
					t.Errorf("signature API while undecided: %d %q", a.status, a.body)
				}
			}
			if lines := p.Logs.Lines(`msg=decision`, `verdict=error`, c.why); len(lines) == 0 {
				t.Errorf("no decision line with verdict=error and %q:\n%s", c.why, p.Logs)
			}

			la.SetMode(harness.LookasideServe)
			before := sigRequests()
			call(t, http.MethodGet, base+"manifests/v1").served(t, "after the lookaside recovered", want)
			if sigRequests() != before+1 {
				t.Errorf("after recovery the lookaside was asked %d times, want 1", sigRequests()-before)
			}
			for _, d := range blobs {
				call(t, http.MethodGet, base+"blobs/"+d.String()).served(t, "blob after recovery", d)
			}
		})
	}
}

// countingEvaluator counts the policy evaluations it passes on.
type countingEvaluator struct {
	next enforce.Evaluator
	n    *atomic.Int64
}

func (c countingEvaluator) Evaluate(ctx context.Context, img policy.Image, src policy.SignatureSource) (policy.Verdict, error) {
	c.n.Add(1)
	return c.next.Evaluate(ctx, img, src)
}

// 50 clients pull one signed image nobody pulled before, all at once: one signature
// fetch and one evaluation serve them all.
func TestEnforceConcurrentPullsShareOneEvaluation(t *testing.T) {
	t.Parallel()
	const pulls = 50
	w := newEnforceWorld(t)
	repo := "burst/app"
	want := w.signedImage(t, repo, w.trusted, fullName(repo)+":v1")

	var evaluations, received atomic.Int64
	p := w.enforcingProxy(t, harness.EnforcingProxyOptions{
		WrapPolicy: func(e enforce.Evaluator) enforce.Evaluator { return countingEvaluator{next: e, n: &evaluations} },
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				if strings.Contains(r.URL.Path, "/manifests/") {
					received.Add(1)
				}
				h.ServeHTTP(rw, r)
			})
		},
	})
	la := w.sig.Lookaside
	la.ResetRequests()
	release := la.Hold()
	t.Cleanup(release)

	type result struct {
		status int
		digest v1.Hash
		err    error
	}
	results := make(chan result, pulls)
	var wg sync.WaitGroup
	url := p.URL.String() + "/v2/" + fullName(repo) + "/manifests/v1"
	for range pulls {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			req.Header.Set("Accept", manifestAccept)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			defer resp.Body.Close()
			d, _, err := v1.SHA256(resp.Body)
			_, _ = io.Copy(io.Discard, resp.Body)
			results <- result{status: resp.StatusCode, digest: d, err: err}
		})
	}

	// Release the lookaside once all 50 requests reached pullgate and the evaluation is
	// waiting on the lookaside; the settle lets the last ones reach the gate. Whatever
	// the timing, latecomers find the verdict cached, so the counts below hold.
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < pulls || la.Count(repo+"@", "/signature-1") == 0 {
		if time.Now().After(deadline) {
			release()
			t.Fatalf("after 30s pullgate has received %d requests and the lookaside %v", received.Load(), la.Requests())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	release()
	wg.Wait()
	close(results)

	for r := range results {
		if r.err != nil || r.status != http.StatusOK || r.digest != want {
			t.Errorf("pull: status %d, digest %s, err %v; want 200 %s", r.status, r.digest, r.err, want)
		}
	}
	if n := la.Count(repo+"@", "/signature-1"); n != 1 {
		t.Errorf("signature-1 fetched %d times, want 1", n)
	}
	if n := evaluations.Load(); n != 1 {
		t.Errorf("%d policy evaluations, want 1", n)
	}
	if n := len(p.Logs.Lines("msg=decision", "verdict=accept", "repository="+repo)); n != pulls {
		t.Errorf("%d decision lines, want one per request (%d)", n, pulls)
	}
}
