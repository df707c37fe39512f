package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/opencontainers/go-digest"
)

// maxSignatureListBytes bounds the signature API's JSON list, as containers/image does
// (iolimits.maxSignatureListBodySize, 4 MiB).
const maxSignatureListBytes = 4 << 20

// extensionProbe caches whether the upstream advertises the registry signature API
// extension. Only a successful probe is remembered, so a failed one is retried.
type extensionProbe struct {
	mu        sync.Mutex
	known     bool
	supported bool
}

// SupportsSignatureExtension reports whether the upstream answers GET /v2/, without
// credentials, with X-Registry-Supports-Signatures: 1 (SPEC.md 4), as containers/image
// checks. The status must be 200 or 401; anything else is an error. The answer is cached
// for the life of the client.
func (c *Client) SupportsSignatureExtension(ctx context.Context) (bool, error) {
	c.extension.mu.Lock()
	defer c.extension.mu.Unlock()
	if c.extension.known {
		return c.extension.supported, nil
	}
	// One bounded round trip (no redirect is followed): the lock is held meanwhile.
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
		return false, c.transportError(ownTimeout(ctx, err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return false, &FailureError{Registry: c.registryName, Failure: FailureCheck,
			Err: fmt.Errorf("GET /v2/ on %s: status %d", c.registryName, resp.StatusCode)}
	}
	c.extension.known = true
	c.extension.supported = resp.Header.Get("X-Registry-Supports-Signatures") == "1"
	return c.extension.supported, nil
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
