package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/internal/config"
	"github.com/pullgate/pullgate/proxy"
	"github.com/pullgate/pullgate/proxy/content"
	"github.com/pullgate/pullgate/proxy/enforce"
	"github.com/pullgate/pullgate/proxy/stored"
)

// contentStore is the content store and what reads and keeps through it: nil parts when
// no content.storage is configured.
type contentStore struct {
	store *store.Store
	// signatures is the signature finder over the live sources and the kept signatures;
	// enforcement wraps every finder it builds with it.
	signatures atomic.Pointer[stored.Signatures]
	offline    map[string]bool
}

// openContent opens the configured content store; a store that cannot be opened is a
// start-up error naming content.storage.
func openContent(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*contentStore, error) {
	offline := map[string]bool{}
	for _, u := range cfg.Upstreams {
		if u.Offline {
			offline[u.Registry] = true
		}
	}
	if !cfg.Content.Enabled() {
		return &contentStore{offline: offline}, nil
	}
	driver, err := store.NewDriver(ctx, cfg.Content.Storage, filepath.Dir(cfg.File))
	if err != nil {
		return nil, fmt.Errorf("content.storage: %w", err)
	}
	st, err := store.Open(ctx, store.Options{Driver: driver, MaxSize: int64(cfg.Content.MaxSize), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("content.storage: %w", err)
	}
	return &contentStore{store: st, offline: offline}, nil
}

// wrapSources puts the content store between the handler and each upstream.
func (c *contentStore) wrapSources(cfg *config.Config, ups []proxy.Upstream, logger *slog.Logger) ([]proxy.Upstream, error) {
	if c.store == nil {
		return ups, nil
	}
	out := make([]proxy.Upstream, 0, len(ups))
	for _, u := range ups {
		src, err := stored.New(stored.Options{
			Registry: u.Registry, Inner: u.Source, Offline: c.offline[u.Registry], Store: c.store,
			TagTTL: cfg.Content.TagTTL, MaxStale: cfg.Content.MaxStale, OnKeep: c.keep, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, proxy.Upstream{Registry: u.Registry, Source: src})
	}
	return out, nil
}

// keep keeps the signatures found for a manifest the store just kept.
func (c *contentStore) keep(ctx context.Context, registry, repo string, d digest.Digest) {
	if sigs := c.signatures.Load(); sigs != nil {
		sigs.Keep(ctx, registry, repo, d)
	}
}

func (c *contentStore) close() error {
	if c == nil || c.store == nil {
		return nil
	}
	return c.store.Close()
}

// keptManifests is the gate's view of the manifests the store kept (enforce.KeptManifests).
type keptManifests struct{ store *store.Store }

var _ enforce.KeptManifests = keptManifests{}

// Referencing answers a name or digest the store cannot hold (ErrInvalid) with no manifest:
// nothing kept lists it. Any other error is the gate's 503.
func (k keptManifests) Referencing(ctx context.Context, registry, repo string, d digest.Digest) ([]digest.Digest, error) {
	ms, err := k.store.ManifestsReferencing(ctx, registry, repo, d)
	if errors.Is(err, store.ErrInvalid) {
		return nil, nil
	}
	return ms, err
}

func (k keptManifests) KeptManifest(ctx context.Context, registry, repo string, d digest.Digest) (*content.Manifest, error) {
	m, err := k.store.GetManifest(ctx, registry, repo, d)
	if err != nil {
		return nil, err
	}
	return &content.Manifest{ContentType: m.MediaType, Digest: m.Digest, Bytes: m.Bytes, Kept: true}, nil
}

// gateKept is what the gate decides blobs through when no served manifest lists them.
func (c *contentStore) gateKept() enforce.KeptManifests {
	if c == nil || c.store == nil {
		return nil
	}
	return keptManifests{store: c.store}
}

// offlineBlobs is what the gate reads the blobs of signature attachments of an offline
// upstream from: the store (nil when the upstream is contacted or nothing is kept).
func (c *contentStore) offlineBlobs(registry string) content.BlobSource {
	if c == nil || c.store == nil || !c.offline[registry] {
		return nil
	}
	src, err := stored.New(stored.Options{Registry: registry, Offline: true, Store: c.store})
	if err != nil {
		return nil
	}
	return src
}
