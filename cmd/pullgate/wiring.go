package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/internal/version"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// buildHandler wires the upstream clients, the enforcement gates and the proxy handler from
// a validated configuration. reload re-reads the policy (nil when the gates cannot reload).
func buildHandler(ctx context.Context, cfg *config.Config, logger *slog.Logger, newGate gateFactory) (h http.Handler, reload reloadFunc, err error) {
	upstreams, err := newUpstreams(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	g, err := newGate(ctx, cfg, upstreams, logger)
	if err != nil {
		return nil, nil, err
	}
	h, err = newProxyHandler(cfg, upstreams, g, logger)
	if err != nil {
		return nil, nil, err
	}
	return h, g.reload, nil
}

// upstreamClient is one configured upstream registry and its client. The handler reads
// it as a content.Source (which a decorator, such as a content store, may wrap); the
// signature finder and the gate's attachment checks read the client itself, so that no
// decorator stands between them and the registry's signatures.
type upstreamClient struct {
	Registry string
	Client   *upstream.Client
}

// newUpstreams builds one upstream client per configured registry, in order. The clients
// read their CA and docker config files now, so mistakes in them stop the start-up.
func newUpstreams(cfg *config.Config, logger *slog.Logger) ([]upstreamClient, error) {
	opts, err := upstreamOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	ups := make([]upstreamClient, 0, len(opts))
	for i, o := range opts {
		client, err := upstream.New(o)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%d]: %w", i, err)
		}
		ups = append(ups, upstreamClient{Registry: o.Registry, Client: client})
	}
	return ups, nil
}

// sources is what the handler reads each upstream through.
func sources(upstreams []upstreamClient) []proxy.Upstream {
	out := make([]proxy.Upstream, 0, len(upstreams))
	for _, u := range upstreams {
		out = append(out, proxy.Upstream{Registry: u.Registry, Source: u.Client})
	}
	return out
}

// newProxyHandler builds the /v2/ handler in front of upstreams, admitting content through
// the gate and serving the signature API when the gates offer it.
func newProxyHandler(cfg *config.Config, upstreams []upstreamClient, g *gates, logger *slog.Logger) (http.Handler, error) {
	h, err := proxy.New(proxy.Options{
		Upstreams:       sources(upstreams),
		DefaultUpstream: cfg.DefaultUpstream,
		Gate:            g.gate,
		Signatures:      g.signatures,
		Logger:          logger,
		// validate guarantees both are positive, so the proxy's defaults never apply.
		WriteStallTimeout: cfg.ClientTimeouts.WriteStall,
		MaxBlobStreams:    cfg.Limits.BlobStreams,
	})
	if err != nil {
		return nil, fmt.Errorf("building the proxy: %w", err)
	}
	return h, nil
}

// userAgent is sent upstream on every request.
func userAgent() string { return "pullgate/" + version.String() }

// upstreamOptions maps the configuration to one upstream.Options per upstream, in order.
func upstreamOptions(cfg *config.Config, logger *slog.Logger) ([]upstream.Options, error) {
	opts := make([]upstream.Options, 0, len(cfg.Upstreams))
	for i, u := range cfg.Upstreams {
		parsed, err := url.Parse(u.URL)
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
