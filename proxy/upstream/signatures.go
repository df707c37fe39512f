package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
)

// maxSignatureListBytes bounds the signature API's JSON list, as containers/image does
// (iolimits.maxSignatureListBodySize, 4 MiB).
const maxSignatureListBytes = 4 << 20

// extensionProbe caches whether the upstream advertises the registry signature API
// extension. Only a successful probe is remembered, so a failed one is retried; callers
// that arrive while a probe is in flight share it instead of queueing behind a lock held
// across the round trip.
type extensionProbe struct {
	flight cache.Group[bool]
	// supported is the answer of the first successful probe; nil until there is one.
	supported atomic.Pointer[bool]
}

// SupportsSignatureExtension reports whether the upstream answers GET /v2/, without
// credentials, with X-Registry-Supports-Signatures: 1 (SPEC.md 4), as containers/image
// checks. The status must be 200 or 401; anything else is an error. The answer is cached
// for the life of the client.
func (c *Client) SupportsSignatureExtension(ctx context.Context) (bool, error) {
	if v := c.extension.supported.Load(); v != nil {
		return *v, nil
	}
	v, _, err := c.extension.flight.Do(ctx, "", func(ctx context.Context) (bool, error) {
		if v := c.extension.supported.Load(); v != nil {
			return *v, nil
		}
		supported, err := c.probeSignatureExtension(ctx)
		if err != nil {
			return false, err
		}
		c.extension.supported.Store(&supported)
		return supported, nil
	})
	return v, err
}

// probeSignatureExtension is one bounded round trip to GET /v2/ (no redirect is followed).
func (c *Client) probeSignatureExtension(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.requestTimeout, &TimeoutError{Phase: phaseRequest, Limit: c.requestTimeout})
	defer cancel()
	u := *c.base
	u.Path = "/v2/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return false, err
	}
	resp, err := c.inner.RoundTrip(req)
	if err != nil {
		return false, c.transportError(ownTimeout(ctx, redactURLError(err)))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return false, &FailureError{Registry: c.registryName, Failure: FailureCheck,
			Err: fmt.Errorf("GET /v2/ on %s: status %d", c.registryName, resp.StatusCode)}
	}
	return resp.Header.Get("X-Registry-Supports-Signatures") == "1", nil
}

// ExtensionSignatures reads GET /extensions/v2/<repo>/signatures/<digest> with the
// repository's pull credentials and returns the JSON body (at most 4 MiB). Any status but
// 200 is an error: for this API, 404 is not "no signatures" (SPEC.md 4).
func (c *Client) ExtensionSignatures(ctx context.Context, repo string, d digest.Digest) ([]byte, error) {
	resp, err := c.doPath(ctx, classAPI, http.MethodGet, repo, "/extensions/v2/"+repo+"/signatures/"+d.String(), nil,
		http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.responseError(resp, EndpointSignatures)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSignatureListBytes+1))
	if err != nil {
		return nil, c.transportError(fmt.Errorf("read signatures of %s@%s: %w", repo, d, err))
	}
	if len(body) > maxSignatureListBytes {
		return nil, c.invalid("a signature list larger than pullgate accepts",
			fmt.Errorf("%s@%s: more than %d bytes", repo, d, maxSignatureListBytes))
	}
	return body, nil
}
