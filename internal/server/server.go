// Package server assembles pullgate from a loaded configuration: the upstream clients,
// the signature finder and lookaside, the enforcing gate and the /v2/ handler. serve,
// verify and the integration harness build the program here, so that each of them runs
// exactly what the others run.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// ErrCannotReload is returned by Reload when the gates were injected without a reload.
var ErrCannotReload = errors.New("this gate cannot reload")

// ReloadFunc reads the policy files afresh and returns a function that puts what it read
// in force. Reading may block for as long as a file does (a FIFO, a hung network file
// system), so serve runs it off the signal loop and calls commit only if the read ended
// within its deadline.
type ReloadFunc func(ctx context.Context) (commit func(), err error)

// Gates is what the proxy handler is built with: the gate every manifest and blob goes
// through, and optionally the signature API and a reload of the policy (SIGHUP).
type Gates struct {
	Gate       admission.Gate
	Signatures proxy.SignatureLister
	Reload     ReloadFunc
}

// GateFactory builds the gates over the upstream clients; nil in Options means the
// policy gate (NewGate). Tests inject a test double.
type GateFactory func(ctx context.Context, cfg *config.Config, upstreams []Upstream, logger *slog.Logger) (*Gates, error)

// Options adjusts what Build assembles. The zero value is what serve runs.
type Options struct {
	// NewGate, if set, builds the gates instead of the policy gate.
	NewGate GateFactory
	// WrapPolicy, if set, wraps the policy evaluator (tests count evaluations).
	WrapPolicy func(enforce.Evaluator) enforce.Evaluator
	// UserAgent is sent upstream; empty means pullgate/<version>.
	UserAgent string
	// NoOperations leaves out TLS, basic auth, metrics, the audit file and warn scopes:
	// verify reports the policy's own verdict and needs none of serve's files.
	NoOperations bool
	// WrapTransport, if set, wraps the transport of every outbound HTTP client, below
	// its redirects, retries and authentication, so that metrics and tracing see every
	// request pullgate sends: kind is TransportUpstream, TransportToken or
	// TransportLookaside, name the upstream's registry name (empty for the lookaside).
	// It is called while Build (or a reload) assembles the clients, once per client and
	// kind; what it returns must be safe for concurrent use.
	WrapTransport func(kind, name string, rt http.RoundTripper) http.RoundTripper
}

// Server is the assembled program.
type Server struct {
	// Handler serves the registry API (/v2/) and the signature API.
	Handler   http.Handler
	upstreams []Upstream
	gates     *Gates
	enforce   *enforcement // nil when the gates were injected
	content   *contentStore
	ops       *operations
}

// Upstream is one configured upstream registry and its client. The handler reads it as
// a content.Source (which a decorator, such as a content store, may wrap); the signature
// finder and the gate's attachment checks read the client itself, so that no decorator
// stands between them and the registry's signatures.
type Upstream struct {
	Registry string
	Client   *upstream.Client
}

// Build assembles pullgate from cfg (as config.Load returns it; zero durations and sizes
// mean the packages' defaults). Any problem stops the start-up: pullgate never serves
// unchecked content.
func Build(ctx context.Context, cfg *config.Config, logger *slog.Logger, opts Options) (*Server, error) {
	ops := &operations{}
	if !opts.NoOperations {
		var err error
		if ops, err = newOperations(cfg, logger); err != nil {
			return nil, err
		}
	}
	upstreams, err := newUpstreams(cfg, logger, withUpstreamMetrics(opts, ops.wrapUpstream()))
	if err != nil {
		ops.Close()
		return nil, err
	}
	s := &Server{upstreams: upstreams, ops: ops}
	fail := func(err error) (*Server, error) {
		_ = s.content.close()
		ops.Close()
		return nil, err
	}
	if s.content, err = openContent(ctx, cfg, logger); err != nil {
		return fail(err)
	}
	if opts.NewGate != nil {
		s.gates, err = opts.NewGate(ctx, cfg, upstreams, logger)
	} else {
		s.enforce, err = newEnforcement(cfg, upstreams, logger, opts, ops.gateOps(logger), s.content)
		if err == nil {
			s.gates = &Gates{Gate: s.enforce.gate, Signatures: s.enforce, Reload: s.enforce.reload}
		}
	}
	if err != nil {
		return fail(err)
	}
	observer := ops.observer(logger)
	s.Handler, err = newProxyHandler(cfg, upstreams, s.gates, logger, observer, s.content)
	if err != nil {
		return fail(err)
	}
	if ops.auth != nil {
		s.Handler = ops.auth.wrap(s.Handler, observer)
	}
	if st := s.content.store; st != nil {
		s.contentStatsHook(func() (hits, misses, stale, bytes int64) {
			c := st.Stats()
			return c.Hits, c.Misses, c.StaleServes, c.BytesKept
		}, st.Ping)
	}
	ops.policyLoaded.Store(true)
	return s, nil
}

// withUpstreamMetrics adds the metrics' wrapper (per registry) to every upstream and
// token transport, below the caller's own WrapTransport.
func withUpstreamMetrics(opts Options, metrics func(registry string) func(http.RoundTripper) http.RoundTripper) Options {
	if metrics == nil {
		return opts
	}
	caller := opts.WrapTransport
	opts.WrapTransport = func(kind, name string, rt http.RoundTripper) http.RoundTripper {
		if kind != TransportLookaside {
			rt = metrics(name)(rt)
		}
		if caller != nil {
			rt = caller(kind, name, rt)
		}
		return rt
	}
	return opts
}

// NewGate is the policy gate's GateFactory: it loads the policy (with every key file it
// names) and registries.d.
func NewGate(ctx context.Context, cfg *config.Config, upstreams []Upstream, logger *slog.Logger) (*Gates, error) {
	e, err := newEnforcement(cfg, upstreams, logger, Options{}, gateOps{}, nil)
	if err != nil {
		return nil, err
	}
	return &Gates{Gate: e.gate, Signatures: e, Reload: e.reload}, nil
}

// CanReload reports whether Reload can re-read the policy.
func (s *Server) CanReload() bool { return s.gates.Reload != nil }

// Reload reads the policy and registries.d afresh and returns the function that puts them
// in force. When either cannot be loaded the running ones stay in force.
func (s *Server) Reload(ctx context.Context) (commit func(), err error) {
	if s.gates.Reload == nil {
		return nil, ErrCannotReload
	}
	return s.gates.Reload(ctx)
}

// Gate is the gate every manifest and blob goes through.
func (s *Server) Gate() admission.Gate { return s.gates.Gate }

// PolicyGate is the policy gate, nil when the gates were injected.
func (s *Server) PolicyGate() *enforce.Gate {
	if s.enforce == nil {
		return nil
	}
	return s.enforce.gate
}

// Finder is the signature finder in force, nil when the gates were injected.
func (s *Server) Finder() *sigsource.Finder {
	if s.enforce == nil {
		return nil
	}
	return s.enforce.finder.Load()
}

// Upstreams are the upstream clients, in configuration order.
func (s *Server) Upstreams() []Upstream { return s.upstreams }

// Source is the content source of registry, or nil when it is not a configured upstream.
func (s *Server) Source(registry string) content.Source {
	for _, u := range s.upstreams {
		if u.Registry == registry {
			return u.Client
		}
	}
	return nil
}

// Close releases what the server holds: the content store (its served times are
// flushed) and the audit file.
func (s *Server) Close() error { return errors.Join(s.content.close(), s.ops.Close()) }

// Store is the content store, nil when none is configured.
func (s *Server) Store() *store.Store { return s.content.store }

// sources is what the handler reads each upstream through.
func sources(upstreams []Upstream) []proxy.Upstream {
	out := make([]proxy.Upstream, 0, len(upstreams))
	for _, u := range upstreams {
		out = append(out, proxy.Upstream{Registry: u.Registry, Source: u.Client})
	}
	return out
}

// newProxyHandler builds the /v2/ handler in front of upstreams, admitting content through
// the gate and serving the signature API when the gates offer it.
func newProxyHandler(cfg *config.Config, upstreams []Upstream, g *Gates, logger *slog.Logger, observer proxy.Observer, c *contentStore) (http.Handler, error) {
	srcs, err := c.wrapSources(cfg, sources(upstreams), logger)
	if err != nil {
		return nil, err
	}
	h, err := proxy.New(proxy.Options{
		Upstreams:       srcs,
		DefaultUpstream: cfg.DefaultUpstream,
		Gate:            g.Gate,
		Signatures:      g.Signatures,
		Logger:          logger,
		Observer:        observer,
		// validate guarantees both are positive in a loaded file, so the proxy's defaults
		// apply only to a configuration built in code.
		WriteStallTimeout: cfg.ClientTimeouts.WriteStall,
		MaxBlobStreams:    cfg.Limits.BlobStreams,
	})
	if err != nil {
		return nil, fmt.Errorf("building the proxy: %w", err)
	}
	return h, nil
}
