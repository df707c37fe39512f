package harness

import (
	"net/http"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
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
// by internal/server.Build, as cmd/pullgate's serve does, for tests that need to reach
// inside: a short lookaside timeout, a counting evaluator.
type EnforcingProxy struct {
	*Proxy
	Gate   *enforce.Gate
	Finder *sigsource.Finder
}

// StartEnforcingProxy assembles and serves pullgate until the test ends. Timeouts and
// cache bounds are the packages' defaults.
func StartEnforcingProxy(t testing.TB, opts EnforcingProxyOptions) *EnforcingProxy {
	t.Helper()
	logger, logs := newLogger(t, "pullgate")
	cfg := &config.Config{DefaultUpstream: opts.DefaultUpstream,
		Policy: config.Policy{Path: opts.Policy, RegistriesDir: opts.RegistriesD}}
	for _, u := range opts.Upstreams {
		cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Registry: u.Registry, URL: u.URL.String(),
			Username: u.Username, Password: config.Secret(u.Password)})
	}
	built, err := server.Build(t.Context(), cfg, logger, server.Options{WrapPolicy: opts.WrapPolicy,
		LookasideTimeout: opts.LookasideTimeout, UserAgent: "pullgate-test"})
	if err != nil {
		t.Fatalf("harness: building pullgate: %v", err)
	}
	t.Cleanup(func() { built.Close() })
	p := &EnforcingProxy{Proxy: &Proxy{Logs: logs, Clients: map[string]*upstream.Client{}},
		Gate: built.PolicyGate(), Finder: built.Finder()}
	for _, u := range built.Upstreams() {
		p.Clients[u.Registry] = u.Client
	}
	p.serve(t, built.Handler, opts.Wrap)
	return p
}
