package harness

import (
	"net/http"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/sigsource"
)

// EnforcingProxyOptions configures StartEnforcingProxy.
type EnforcingProxyOptions struct {
	Upstreams       []Upstream
	DefaultUpstream string
	// Policy is a policy.json path; RegistriesD a registries.d folder (empty: none).
	Policy, RegistriesD string
	// LookasideTimeout is upstreamTimeouts.lookaside (zero: the default, 15s).
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
	cfg := newConfig(opts.Upstreams, opts.DefaultUpstream)
	cfg.Policy = config.Policy{Path: opts.Policy, RegistriesDir: opts.RegistriesD}
	cfg.UpstreamTimeouts.Lookaside = opts.LookasideTimeout
	p, built := startBuilt(t, cfg, server.Options{WrapPolicy: opts.WrapPolicy}, opts.Wrap)
	return &EnforcingProxy{Proxy: p, Gate: built.PolicyGate(), Finder: built.Finder()}
}
