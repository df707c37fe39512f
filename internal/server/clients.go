package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/version"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// The outbound clients: every upstream client (with its token exchanges) and the
// lookaside client are made here, from the configured CA files, credentials and
// timeouts, through upstream.New and upstream.NewHTTPClient (which
// sigsource.NewLookasideClient uses), and every one's transport goes through
// Options.WrapTransport.

// The kinds of outbound client that Options.WrapTransport is told.
const (
	// TransportUpstream is an upstream registry's API (and the storage its answers
	// redirect to); the name is the upstream's registry name.
	TransportUpstream = upstream.KindUpstream
	// TransportToken is the token endpoint an upstream's challenge names; the name is
	// the upstream's registry name.
	TransportToken = upstream.KindToken
	// TransportLookaside is the lookaside signature stores of registries.d; the name is
	// empty (one client reads every lookaside; the request's URL names the host).
	TransportLookaside = "lookaside"
)

// NewUpstreams builds one upstream client per configured registry, in order. The clients
// read their CA and docker config files now, so mistakes in them stop the start-up.
func NewUpstreams(cfg *config.Config, logger *slog.Logger, userAgent string) ([]Upstream, error) {
	return newUpstreams(cfg, logger, Options{UserAgent: userAgent})
}

// newUpstreams is NewUpstreams with Build's options: the user agent and the transport
// wrapper.
func newUpstreams(cfg *config.Config, logger *slog.Logger, bo Options) ([]Upstream, error) {
	opts, err := UpstreamOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	ups := make([]Upstream, 0, len(opts))
	for i, o := range opts {
		if bo.UserAgent != "" {
			o.UserAgent = bo.UserAgent
		}
		if wrap := bo.WrapTransport; wrap != nil {
			registry := o.Registry
			o.WrapTransport = func(kind string, rt http.RoundTripper) http.RoundTripper {
				return wrap(kind, registry, rt)
			}
		}
		client, err := upstream.New(o)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%d]: %w", i, err)
		}
		ups = append(ups, Upstream{Registry: o.Registry, Client: client})
	}
	return ups, nil
}

// userAgent is sent upstream on every request.
func userAgent() string { return "pullgate/" + version.String() }

// UpstreamOptions maps the configuration to one upstream.Options per upstream, in order:
// the one place the upstream clients' CA, credentials and timeouts are set.
func UpstreamOptions(cfg *config.Config, logger *slog.Logger) ([]upstream.Options, error) {
	opts := make([]upstream.Options, 0, len(cfg.Upstreams))
	for i, u := range cfg.Upstreams {
		raw := u.URL
		if u.Offline && raw == "" {
			// Never contacted (the content store answers for it, and the signature finder
			// reads only kept signatures); .invalid never resolves (RFC 2606).
			raw = "http://offline.invalid"
		}
		parsed, err := url.Parse(raw)
		if err != nil {
			// validate has checked every URL; this only guards against a caller skipping it.
			return nil, fmt.Errorf("upstreams[%d].url: %w", i, config.ErrInvalid)
		}
		parsed.Path = ""
		opts = append(opts, upstream.Options{
			Registry:              u.Registry,
			URL:                   parsed,
			Username:              u.Username,
			Password:              u.Password.Reveal(),
			DockerConfig:          u.DockerConfig,
			CAFile:                u.CAFile,
			DialTimeout:           cfg.UpstreamTimeouts.Dial,
			ResponseHeaderTimeout: cfg.UpstreamTimeouts.ResponseHeader,
			SetupTimeout:          cfg.UpstreamTimeouts.Setup,
			RequestTimeout:        cfg.UpstreamTimeouts.Request,
			BlobStallTimeout:      cfg.UpstreamTimeouts.BlobStall,
			Logger:                logger, // the client adds upstream=<registry> itself
			UserAgent:             userAgent(),
		})
	}
	return opts, nil
}

// lookasideClient is the lookaside's HTTP client: the upstreams' dial and header
// timeouts (through upstream.NewHTTPClient), its own per-request deadline
// (upstreamTimeouts.lookaside; zero, in a configuration not from Load, is sigsource's
// default), no redirect to another host (sigsource.NewLookasideClient), and
// opts.WrapTransport.
func lookasideClient(cfg *config.Config, opts Options) *http.Client {
	lo := sigsource.LookasideClientOptions{DialTimeout: cfg.UpstreamTimeouts.Dial,
		ResponseHeaderTimeout: cfg.UpstreamTimeouts.ResponseHeader, Timeout: cfg.UpstreamTimeouts.Lookaside}
	if wrap := opts.WrapTransport; wrap != nil {
		lo.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return wrap(TransportLookaside, "", rt) }
	}
	return sigsource.NewLookasideClient(lo)
}
