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

// gateFactory builds the enforcement gate; serve uses newGate, tests an explicit test double.
type gateFactory func(ctx context.Context, cfg *Config, upstreams []proxy.Upstream, logger *slog.Logger) (proxy.Gate, error)

// buildHandler wires the upstream clients, the enforcement gate and the proxy handler from a
// validated configuration.
func buildHandler(ctx context.Context, cfg *Config, logger *slog.Logger, newGate gateFactory) (http.Handler, error) {
	upstreams, err := newUpstreams(cfg, logger)
	if err != nil {
		return nil, err
	}
	gate, err := newGate(ctx, cfg, upstreams, logger)
	if err != nil {
		return nil, err
	}
	return newProxyHandler(cfg, upstreams, gate, logger)
}

// newGate builds the policy-enforcing gate from cfg.Policy and cfg.Cache.Verdicts; it
// fetches signatures through upstreams.
func newGate(ctx context.Context, cfg *Config, upstreams []proxy.Upstream, logger *slog.Logger) (proxy.Gate, error) {
	return nil, errGateNotWired
}

// newUpstreams builds one upstream client per configured registry, in order. The clients
// read their CA and docker config files now, so mistakes in them stop the start-up.
func newUpstreams(cfg *Config, logger *slog.Logger) ([]proxy.Upstream, error) {
	opts, err := upstreamOptions(cfg, logger)
	if err != nil {
		return nil, err
	}
	ups := make([]proxy.Upstream, 0, len(opts))
	for i, o := range opts {
		client, err := upstream.New(o)
		if err != nil {
			return nil, fmt.Errorf("upstreams[%d]: %w", i, err)
		}
		ups = append(ups, proxy.Upstream{Registry: o.Registry, Source: client})
	}
	return ups, nil
}

// newProxyHandler builds the /v2/ handler in front of upstreams, admitting content through gate.
func newProxyHandler(cfg *Config, upstreams []proxy.Upstream, gate proxy.Gate, logger *slog.Logger) (http.Handler, error) {
	h, err := proxy.New(proxy.Options{
		Upstreams:       upstreams,
		DefaultUpstream: cfg.DefaultUpstream,
		Gate:            gate,
		Logger:          logger,
	})
	if err != nil {
		return nil, fmt.Errorf("building the proxy: %w", err)
	}
	return h, nil
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
