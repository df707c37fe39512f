package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/version"
	"github.com/pullgate/pullgate/proxy/sigsource"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// The outbound clients: every upstream client and the lookaside client are made here,
// from the configured CA files, credentials and timeouts, through upstream.New and
// upstream.NewHTTPClient (which sigsource.NewLookasideClient uses).

// NewUpstreams builds one upstream client per configured registry, in order. The clients
// read their CA and docker config files now, so mistakes in them stop the start-up.
func NewUpstreams(cfg *config.Config, logger *slog.Logger, userAgent string) ([]Upstream, error) {
	return newUpstreams(cfg, logger, userAgent, nil)
}

// newUpstreams is NewUpstreams with a transport wrapper per registry (metrics); nil
// wraps nothing.
func newUpstreams(cfg *config.Config, logger *slog.Logger, userAgent string, wrap func(registry string) func(http.RoundTripper) http.RoundTripper) ([]Upstream, error) {
	opts, err := UpstreamOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	ups := make([]Upstream, 0, len(opts))
	for i, o := range opts {
		if userAgent != "" {
			o.UserAgent = userAgent
		}
		if wrap != nil {
			o.WrapTransport = wrap(o.Registry)
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
// timeouts (through upstream.NewHTTPClient), its own per-request deadline, and no
// redirect to another host (sigsource.NewLookasideClient).
func lookasideClient(cfg *config.Config, timeout time.Duration) *http.Client {
	return sigsource.NewLookasideClient(sigsource.LookasideClientOptions{DialTimeout: cfg.UpstreamTimeouts.Dial,
		ResponseHeaderTimeout: cfg.UpstreamTimeouts.ResponseHeader, Timeout: timeout})
}
