package harness

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/server"
	"github.com/pullgate/pullgate/proxy/admission"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// Upstream is one upstream registry of a proxy under test.
type Upstream struct {
	// Registry is the name clients and policies use (docker.io, registry.test).
	Registry string
	// URL is where it is reached (Registry.URL of a harness registry).
	URL *url.URL
	// Username and Password authenticate pullgate to it (a harness registry's
	// Username/Password for an authenticated one).
	Username, Password string
	// DockerConfig and CAFile are the upstream's dockerConfig and caFile.
	DockerConfig, CAFile string
	// Offline is the configuration key upstreams[].offline (WritePullgateConfig only):
	// never contact it, serve only what the content store holds.
	Offline bool
}

// UpstreamFor describes a harness registry as an upstream named registry, with its
// credentials.
func UpstreamFor(registry string, r *Registry) Upstream {
	return Upstream{Registry: registry, URL: r.URL, Username: r.Username, Password: r.Password}
}

// ProxyOptions configures StartProxy.
type ProxyOptions struct {
	Upstreams       []Upstream
	DefaultUpstream string
	// Gate is required: pass gatetest.AllowAll{} when the test is not about
	// enforcement.
	Gate admission.Gate
	// Timeouts of the upstream clients (upstreamTimeouts.dial and .responseHeader);
	// zero means upstream's defaults. Tests of failing upstreams set short ones.
	DialTimeout, ResponseHeaderTimeout time.Duration
	// Wrap, if set, wraps pullgate's handler (to observe or delay requests).
	Wrap func(http.Handler) http.Handler
}

// Proxy is pullgate's handler serving on 127.0.0.1.
type Proxy struct {
	// URL is http://127.0.0.1:<port>; Host is 127.0.0.1:<port>, the registry host
	// clients pull from.
	URL  *url.URL
	Host string
	// Logs holds everything pullgate and its upstream clients logged (debug level).
	Logs *LogBuffer
	// Clients are the upstream clients by registry name.
	Clients map[string]*upstream.Client
}

// StartProxy assembles pullgate with internal/server.Build, as cmd/pullgate's serve
// does, with opts.Gate in place of the policy gate, and serves it until the test ends.
func StartProxy(t testing.TB, opts ProxyOptions) *Proxy {
	t.Helper()
	if opts.Gate == nil {
		t.Fatal("harness: ProxyOptions.Gate is required (gatetest.AllowAll{} for tests that are not about enforcement)")
	}
	cfg := newConfig(opts.Upstreams, opts.DefaultUpstream)
	cfg.UpstreamTimeouts = config.UpstreamTimeouts{Dial: opts.DialTimeout, ResponseHeader: opts.ResponseHeaderTimeout}
	gate := func(context.Context, *config.Config, []server.Upstream, *slog.Logger) (*server.Gates, error) {
		return &server.Gates{Gate: opts.Gate}, nil
	}
	p, _ := startBuilt(t, cfg, server.Options{NewGate: gate}, opts.Wrap)
	return p
}

// newConfig is the configuration of a proxy in front of ups; zero timeouts and bounds
// mean the packages' defaults.
func newConfig(ups []Upstream, defaultUpstream string) *config.Config {
	cfg := &config.Config{DefaultUpstream: defaultUpstream}
	for _, u := range ups {
		cfg.Upstreams = append(cfg.Upstreams, config.Upstream{Registry: u.Registry, URL: u.URL.String(),
			Username: u.Username, Password: config.Secret(u.Password), DockerConfig: u.DockerConfig, CAFile: u.CAFile})
	}
	return cfg
}

// startBuilt builds pullgate from cfg with server.Build and serves its handler (wrapped
// by wrap, if any) until the test ends.
func startBuilt(t testing.TB, cfg *config.Config, opts server.Options, wrap func(http.Handler) http.Handler) (*Proxy, *server.Server) {
	t.Helper()
	logger, logs := newLogger(t, "pullgate")
	opts.UserAgent = "pullgate-test"
	built, err := server.Build(t.Context(), cfg, logger, opts)
	if err != nil {
		t.Fatalf("harness: building pullgate: %v", err)
	}
	t.Cleanup(func() { built.Close() })
	p := &Proxy{Logs: logs, Clients: map[string]*upstream.Client{}}
	for _, u := range built.Upstreams() {
		p.Clients[u.Registry] = u.Client
	}
	p.serve(t, built.Handler, wrap)
	return p, built
}

// serve serves h (wrapped by wrap, if any) on 127.0.0.1 until the test ends and records
// its address.
func (p *Proxy) serve(t testing.TB, h http.Handler, wrap func(http.Handler) http.Handler) {
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p.URL, _ = url.Parse(srv.URL)
	p.Host = p.URL.Host
}
