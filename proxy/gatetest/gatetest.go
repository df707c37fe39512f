// Package gatetest holds admission.Gate test doubles. They exist for tests only and are
// never wired into pullgate by default: serve refuses to start without a real gate.
package gatetest

import (
	"context"
	"slices"
	"sync"

	"github.com/pullgate/pullgate/proxy/admission"
)

// AllowAll admits everything. For tests of the pull path that are not about
// enforcement.
type AllowAll struct{}

var _ admission.Gate = AllowAll{}

// AdmitManifest allows.
func (AllowAll) AdmitManifest(context.Context, *admission.ManifestRequest) (admission.Decision, error) {
	return admission.Decision{Allow: true}, nil
}

// AdmitBlob allows.
func (AllowAll) AdmitBlob(context.Context, *admission.BlobRequest) (admission.Decision, error) {
	return admission.Decision{Allow: true}, nil
}

// Funcs builds a gate from two functions; a nil function allows.
type Funcs struct {
	Manifest func(ctx context.Context, m *admission.ManifestRequest) (admission.Decision, error)
	Blob     func(ctx context.Context, b *admission.BlobRequest) (admission.Decision, error)
}

var _ admission.Gate = Funcs{}

// AdmitManifest calls f.Manifest.
func (f Funcs) AdmitManifest(ctx context.Context, m *admission.ManifestRequest) (admission.Decision, error) {
	if f.Manifest == nil {
		return admission.Decision{Allow: true}, nil
	}
	return f.Manifest(ctx, m)
}

// AdmitBlob calls f.Blob.
func (f Funcs) AdmitBlob(ctx context.Context, b *admission.BlobRequest) (admission.Decision, error) {
	if f.Blob == nil {
		return admission.Decision{Allow: true}, nil
	}
	return f.Blob(ctx, b)
}

// Recorder passes every request to Next (AllowAll when nil) and remembers it, so a test
// can check what the gate was asked. Safe for concurrent use.
type Recorder struct {
	Next admission.Gate

	mu        sync.Mutex
	manifests []admission.ManifestRequest
	blobs     []admission.BlobRequest
}

var _ admission.Gate = (*Recorder)(nil)

// AdmitManifest records m and asks Next.
func (r *Recorder) AdmitManifest(ctx context.Context, m *admission.ManifestRequest) (admission.Decision, error) {
	r.mu.Lock()
	c := *m
	c.Bytes = slices.Clone(m.Bytes)
	r.manifests = append(r.manifests, c)
	r.mu.Unlock()
	return r.next().AdmitManifest(ctx, m)
}

// AdmitBlob records b and asks Next.
func (r *Recorder) AdmitBlob(ctx context.Context, b *admission.BlobRequest) (admission.Decision, error) {
	r.mu.Lock()
	r.blobs = append(r.blobs, *b)
	r.mu.Unlock()
	return r.next().AdmitBlob(ctx, b)
}

// Manifests returns the manifest requests seen so far.
func (r *Recorder) Manifests() []admission.ManifestRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.manifests)
}

// Blobs returns the blob requests seen so far.
func (r *Recorder) Blobs() []admission.BlobRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.blobs)
}

func (r *Recorder) next() admission.Gate {
	if r.Next == nil {
		return AllowAll{}
	}
	return r.Next
}
