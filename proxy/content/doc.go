// Package content is pullgate's content model: what a registry source yields (manifests,
// blobs, descriptors, listings), the Source interfaces the HTTP handler and the signature
// and enforcement code read through, the bounds on what is buffered, the sentinel causes,
// the media types pullgate tells apart and the referrers tag schema.
//
// It sits below both the handler (package proxy) and the sources (proxy/upstream, a
// content store), as go-containerregistry keeps pkg/v1 and pkg/v1/types below remote
// and registry: it imports no pullgate package but proxy/verify, and knows nothing of
// HTTP answers. Mapping a failure to the client's answer is the handler's job.
package content
