package harness

import (
	"net/http"
	"testing"
	"time"

	"github.com/pullgate/pullgate/policy"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// EnforcingProxyOptions configures StartEnforcingProxy.
type EnforcingProxyOptions struct {
	Upstreams       []Upstream
	DefaultUpstream string
	// Policy is a policy.json path; RegistriesD a registries.d folder (empty: none).
	Policy, RegistriesD string
	// LookasideTimeout bounds each lookaside request (pullgate's binary uses 15s);
	// zero keeps the finder's default.
	LookasideTimeout time.Duration
	// WrapPolicy, if set, wraps the policy evaluator (to count evaluations).
	WrapPolicy func(enforce.Evaluator) enforce.Evaluator
	// Wrap, if set, wraps pullgate's handler (to observe requests).
	Wrap func(http.Handler) http.Handler
}

// EnforcingProxy is pullgate's handler with the real policy gate, assembled in-process
// the way cmd/pullgate's serve does (upstream clients, sigsource.Finder over
// registries.d, enforce.Gate, the signature API), for tests that need to reach inside:
// a short lookaside timeout, a counting evaluator.
type EnforcingProxy struct {
	*Proxy
	Gate   *enforce.Gate
	Finder *sigsource.Finder
}

// StartEnforcingProxy assembles and serves pullgate until the test ends.
func StartEnforcingProxy(t testing.TB, opts EnforcingProxyOptions) *EnforcingProxy {
	t.Helper()
	logger, logs := newLogger(t, "pullgate")
	p := &EnforcingProxy{Proxy: &Proxy{Logs: logs, Clients: map[string]*upstream.Client{}}}
	var ups []proxy.Upstream
	regs := map[string]sigsource.Registry{}
	blobs := enforce.UpstreamBlobs{}
	for _, u := range opts.Upstreams {
		c, err := upstream.New(upstream.Options{Registry: u.Registry, URL: u.URL, Username: u.Username,
			Password: u.Password, Logger: logger, UserAgent: "pullgate-test"})
		if err != nil {
			t.Fatalf("harness: upstream %s: %v", u.Registry, err)
		}
		p.Clients[u.Registry] = c
		regs[u.Registry] = c
		blobs[u.Registry] = c
		ups = append(ups, proxy.Upstream{Registry: u.Registry, Source: c})
	}
	pol, err := policy.LoadFile(opts.Policy)
	if err != nil {
		t.Fatalf("harness: policy: %v", err)
	}
	regd, err := sigsource.LoadRegistriesD(opts.RegistriesD)
	if err != nil {
		t.Fatalf("harness: registries.d: %v", err)
	}
	// The binary's lookaside client, with the test's per-request timeout (zero: 15s).
	lookaside := &sigsource.Lookaside{Logger: logger,
		Client: sigsource.NewLookasideClient(sigsource.LookasideClientOptions{Timeout: opts.LookasideTimeout})}
	p.Finder, err = sigsource.NewFinder(sigsource.FinderOptions{Registries: regs, RegistriesD: regd,
		Lookaside: lookaside, Logger: logger})
	if err != nil {
		t.Fatalf("harness: finder: %v", err)
	}
	var eval enforce.Evaluator = pol
	if opts.WrapPolicy != nil {
		eval = opts.WrapPolicy(eval)
	}
	p.Gate, err = enforce.New(enforce.Options{Policy: eval, Finder: p.Finder, Blobs: blobs, Logger: logger})
	if err != nil {
		t.Fatalf("harness: gate: %v", err)
	}
	h, err := proxy.New(proxy.Options{Upstreams: ups, DefaultUpstream: opts.DefaultUpstream, Gate: p.Gate,
		Signatures: p.Finder, Logger: logger})
	if err != nil {
		t.Fatalf("harness: proxy: %v", err)
	}
	p.serve(t, h, opts.Wrap)
	return p
}
