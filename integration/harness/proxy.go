package harness

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/pullgate/pullgate/proxy"
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
	// DockerConfig and CAFile are passed on to upstream.Options.
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
	// Timeouts and retries of the upstream clients; zero means upstream's defaults.
	// Tests of failing upstreams set short ones.
	DialTimeout, ResponseHeaderTimeout time.Duration
	// Retries as in upstream.Options (negative disables).
	Retries int
	// ManifestCacheBytes as in proxy.Options.
	ManifestCacheBytes int64
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

// StartProxy builds upstream clients and pullgate's handler from opts and serves it
// until the test ends.
func StartProxy(t testing.TB, opts ProxyOptions) *Proxy {
	t.Helper()
	if opts.Gate == nil {
		t.Fatal("harness: ProxyOptions.Gate is required (gatetest.AllowAll{} for tests that are not about enforcement)")
	}
	logger, logs := newLogger(t, "pullgate")
	p := &Proxy{Logs: logs, Clients: map[string]*upstream.Client{}}
	var ups []proxy.Upstream
	for _, u := range opts.Upstreams {
		c, err := upstream.New(upstream.Options{
			Registry:              u.Registry,
			URL:                   u.URL,
			Username:              u.Username,
			Password:              u.Password,
			DockerConfig:          u.DockerConfig,
			CAFile:                u.CAFile,
			DialTimeout:           opts.DialTimeout,
			ResponseHeaderTimeout: opts.ResponseHeaderTimeout,
			Retries:               opts.Retries,
			Logger:                logger,
			UserAgent:             "pullgate-test",
		})
		if err != nil {
			t.Fatalf("harness: upstream %s: %v", u.Registry, err)
		}
		p.Clients[u.Registry] = c
		ups = append(ups, proxy.Upstream{Registry: u.Registry, Source: c})
	}
	h, err := proxy.New(proxy.Options{
		Upstreams:          ups,
		DefaultUpstream:    opts.DefaultUpstream,
		Gate:               opts.Gate,
		Logger:             logger,
		ManifestCacheBytes: opts.ManifestCacheBytes,
	})
	if err != nil {
		t.Fatalf("harness: proxy: %v", err)
	}
	p.serve(t, h, opts.Wrap)
	return p
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
