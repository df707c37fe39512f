package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/pullgate/pullgate/internal/version"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/upstream"
)

// errGateNotWired is returned by newGate until the policy engine is wired in: pullgate never
// serves unchecked content.
var errGateNotWired = errors.New("policy enforcement is not wired in yet; refusing to serve unchecked content")

// buildHandler wires the enforcement gate, the upstream clients and the proxy handler from a
// validated configuration.
func buildHandler(ctx context.Context, cfg *Config, logger *slog.Logger) (http.Handler, error) {
	gate, err := newGate(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	return newProxyHandler(cfg, gate, logger)
}

// newGate builds the policy-enforcing gate from cfg.Policy and cfg.Cache.Verdicts.
func newGate(ctx context.Context, cfg *Config, logger *slog.Logger) (proxy.Gate, error) {
	return nil, errGateNotWired
}

// errProxyNotWired is returned by newProxyHandler until the upstream client and the proxy
// handler constructors exist.
var errProxyNotWired = errors.New("the proxy handler is not wired in yet")

// newProxyHandler builds one upstream client per configured registry and the proxy handler
// in front of them.
func newProxyHandler(cfg *Config, gate proxy.Gate, logger *slog.Logger) (http.Handler, error) {
	// Pending the constructors: for each o in upstreamOptions(cfg, logger):
	//   src, err := upstream.New(o); ups = append(ups, proxy.Upstream{Registry: o.Registry, Source: src})
	// then proxy.New(proxy.Options{Upstreams: ups, DefaultUpstream: cfg.DefaultUpstream, Gate: gate, Logger: logger}).
	if _, err := upstreamOptions(cfg, logger); err != nil {
		return nil, err
	}
	return nil, errProxyNotWired
}

// userAgent is sent upstream on every request.
func userAgent() string { return "pullgate/" + version.String() }

// upstreamOptions maps the configuration to one upstream.Options per upstream, in order.
func upstreamOptions(cfg *Config, logger *slog.Logger) ([]upstream.Options, error) {
	opts := make([]upstream.Options, 0, len(cfg.Upstreams))
	for i, u := range cfg.Upstreams {
		parsed, err := url.Parse(u.URL)
		if err != nil {
			// validate has checked every URL; this only guards against a caller skipping it.
			return nil, fmt.Errorf("upstreams[%d].url: %w", i, errConfig)
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
			Logger:                logger.With("upstream", u.Registry),
			UserAgent:             userAgent(),
		})
	}
	return opts, nil
}
