// Package gatetest holds proxy.Gate test doubles. They exist for tests only and are
// never wired into pullgate by default: serve refuses to start without a real gate.
package gatetest

import (
	"context"
	"slices"
	"sync"

	"github.com/pullgate/pullgate/proxy"
)

// AllowAll admits everything. For tests of the pull path that are not about
// enforcement.
type AllowAll struct{}

var _ proxy.Gate = AllowAll{}

// AdmitManifest allows.
func (AllowAll) AdmitManifest(context.Context, *proxy.ManifestRequest) (proxy.Decision, error) {
	return proxy.Decision{Allow: true}, nil
}

// AdmitBlob allows.
func (AllowAll) AdmitBlob(context.Context, *proxy.BlobRequest) (proxy.Decision, error) {
	return proxy.Decision{Allow: true}, nil
}

// Funcs builds a gate from two functions; a nil function allows.
type Funcs struct {
	Manifest func(ctx context.Context, m *proxy.ManifestRequest) (proxy.Decision, error)
	Blob     func(ctx context.Context, b *proxy.BlobRequest) (proxy.Decision, error)
}

var _ proxy.Gate = Funcs{}

// AdmitManifest calls f.Manifest.
func (f Funcs) AdmitManifest(ctx context.Context, m *proxy.ManifestRequest) (proxy.Decision, error) {
	if f.Manifest == nil {
		return proxy.Decision{Allow: true}, nil
	}
	return f.Manifest(ctx, m)
}

// AdmitBlob calls f.Blob.
func (f Funcs) AdmitBlob(ctx context.Context, b *proxy.BlobRequest) (proxy.Decision, error) {
	if f.Blob == nil {
		return proxy.Decision{Allow: true}, nil
	}
	return f.Blob(ctx, b)
}

// Recorder passes every request to Next (AllowAll when nil) and remembers it, so a test
// can check what the gate was asked. Safe for concurrent use.
type Recorder struct {
	Next proxy.Gate

	mu        sync.Mutex
	manifests []proxy.ManifestRequest
	blobs     []proxy.BlobRequest
}

var _ proxy.Gate = (*Recorder)(nil)

// AdmitManifest records m and asks Next.
func (r *Recorder) AdmitManifest(ctx context.Context, m *proxy.ManifestRequest) (proxy.Decision, error) {
	r.mu.Lock()
	c := *m
	c.Bytes = slices.Clone(m.Bytes)
	r.manifests = append(r.manifests, c)
	r.mu.Unlock()
	return r.next().AdmitManifest(ctx, m)
}

// AdmitBlob records b and asks Next.
func (r *Recorder) AdmitBlob(ctx context.Context, b *proxy.BlobRequest) (proxy.Decision, error) {
	r.mu.Lock()
	r.blobs = append(r.blobs, *b)
	r.mu.Unlock()
	return r.next().AdmitBlob(ctx, b)
}

// Manifests returns the manifest requests seen so far.
func (r *Recorder) Manifests() []proxy.ManifestRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.manifests)
}

// Blobs returns the blob requests seen so far.
func (r *Recorder) Blobs() []proxy.BlobRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.blobs)
}

func (r *Recorder) next() proxy.Gate {
	if r.Next == nil {
		return AllowAll{}
	}
	return r.Next
}
