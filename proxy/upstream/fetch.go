package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/proxy/content"
)

// Manifest implements content.ManifestSource: a GET with the client's Accept lines, the
// body read up to content.MaxManifestBytes and checked against the digest requested (for
// a digest reference) and the Docker-Content-Digest announced.
func (c *Client) Manifest(ctx context.Context, repo, reference string, accept []string) (*content.Manifest, error) {
	resp, err := c.do(ctx, classAPI, http.MethodGet, repo, "manifests/"+reference, nil, http.Header{"Accept": accept})
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, c.responseError(resp, EndpointManifest)
	}
	if resp.ContentLength > content.MaxManifestBytes {
		return nil, c.invalid("a manifest larger than pullgate accepts",
			fmt.Errorf("%s/%s: Content-Length %d: %w", repo, reference, resp.ContentLength, content.ErrManifestTooLarge))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, content.MaxManifestBytes+1))
	if err != nil {
		return nil, c.transportError(fmt.Errorf("read manifest %s:%s: %w", repo, reference, err))
	}
	if len(body) > content.MaxManifestBytes {
		return nil, c.invalid("a manifest larger than pullgate accepts",
			fmt.Errorf("%s/%s: %w", repo, reference, content.ErrManifestTooLarge))
	}
	if announced := resp.Header.Get("Docker-Content-Digest"); announced != "" {
		if err := checkDigest(body, announced); err != nil {
			return nil, c.invalid("a manifest that does not match its Docker-Content-Digest",
				fmt.Errorf("%s/%s: announced digest: %w", repo, reference, err))
		}
	}
	if want, err := digest.Parse(reference); err == nil {
		if err := checkDigest(body, want.String()); err != nil {
			return nil, c.invalid("a manifest that does not match the digest requested",
				fmt.Errorf("%s/%s: %w", repo, reference, err))
		}
	}
	return &content.Manifest{
		ContentType: resp.Header.Get("Content-Type"),
		Digest:      digest.SHA256.FromBytes(body),
		Bytes:       body,
	}, nil
}

// checkDigest verifies body against a digest string from the upstream or the client. A
// malformed or unsupported digest is a mismatch: it cannot vouch for the bytes.
func checkDigest(body []byte, want string) error {
	d, err := digest.Parse(want)
	if err != nil {
		return fmt.Errorf("%q: %w: %w", want, err, content.ErrDigestMismatch)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return fmt.Errorf("got %s, want %s: %w", got, d, content.ErrDigestMismatch)
	}
	return nil
}

// HeadManifest implements content.ManifestSource with a HEAD.
func (c *Client) HeadManifest(ctx context.Context, repo, reference string, accept []string) (content.Descriptor, error) {
	resp, err := c.do(ctx, classAPI, http.MethodHead, repo, "manifests/"+reference, nil, http.Header{"Accept": accept})
	if err != nil {
		return content.Descriptor{}, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return content.Descriptor{}, c.responseError(resp, EndpointManifest)
	}
	d := content.Descriptor{ContentType: resp.Header.Get("Content-Type"), Size: resp.ContentLength}
	if dg, err := digest.Parse(resp.Header.Get("Docker-Content-Digest")); err == nil {
		d.Digest = dg
	}
	return d, nil
}

// Blob implements content.BlobSource: a GET of the whole blob, following redirects (to
// other hosts too, but never from https to http). It never sends a Range: a part of a
// blob cannot be verified on its own. The body is the upstream's, unverified; the caller
// checks it. A body that sends no byte for the stall timeout ends with a *TimeoutError.
func (c *Client) Blob(ctx context.Context, repo string, dgst digest.Digest) (*content.Blob, error) {
	resp, err := c.do(ctx, classBlob, http.MethodGet, repo, "blobs/"+dgst.String(), nil, nil)
	if err != nil {
		return nil, c.transportError(err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusPartialContent:
		// A part where the whole was asked for: nothing of it can be verified.
		resp.Body.Close()
		return nil, c.invalid("a part of a blob where the whole was asked for", errors.New(resp.Status))
	default:
		defer resp.Body.Close()
		return nil, c.responseError(resp, EndpointBlob)
	}
	if err := c.checkAnnouncedDigest(resp, dgst); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return &content.Blob{
		Body:        resp.Body,
		ContentType: resp.Header.Get("Content-Type"),
		Size:        resp.ContentLength,
	}, nil
}

// StatBlob implements content.BlobSource with a HEAD.
func (c *Client) StatBlob(ctx context.Context, repo string, dgst digest.Digest) (content.Descriptor, error) {
	resp, err := c.do(ctx, classBlob, http.MethodHead, repo, "blobs/"+dgst.String(), nil, nil)
	if err != nil {
		return content.Descriptor{}, c.transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return content.Descriptor{}, c.responseError(resp, EndpointBlob)
	}
	if err := c.checkAnnouncedDigest(resp, dgst); err != nil {
		return content.Descriptor{}, err
	}
	return content.Descriptor{ContentType: resp.Header.Get("Content-Type"), Digest: dgst, Size: resp.ContentLength}, nil
}

// checkAnnouncedDigest refuses a blob answer whose Docker-Content-Digest names another
// blob: an upstream that says so is not sending what was asked for.
func (c *Client) checkAnnouncedDigest(resp *http.Response, want digest.Digest) error {
	announced := resp.Header.Get("Docker-Content-Digest")
	if announced == "" || announced == want.String() {
		return nil
	}
	return c.invalid("a blob under another digest",
		fmt.Errorf("asked for %s, Docker-Content-Digest says %q: %w", want, announced, content.ErrDigestMismatch))
}

// Tags implements content.ListingSource.
func (c *Client) Tags(ctx context.Context, repo string, query url.Values) (*content.Listing, error) {
	return c.listing(ctx, repo, "tags/list", query, EndpointTags)
}

// Referrers implements content.ListingSource. A 404 means the upstream has no referrers
// API (a registry that has it answers an empty list, never 404).
func (c *Client) Referrers(ctx context.Context, repo string, dgst digest.Digest, query url.Values) (*content.Listing, error) {
	return c.listing(ctx, repo, "referrers/"+dgst.String(), query, EndpointReferrers)
}

// listing GETs a JSON listing, read whole up to content.MaxListingBytes.
func (c *Client) listing(ctx context.Context, repo, suffix string, query url.Values, k Endpoint) (*content.Listing, error) {
	resp, err := c.do(ctx, classAPI, http.MethodGet, repo, suffix, query, http.Header{"Accept": {"application/json", "application/vnd.oci.image.index.v1+json"}})
	if err != nil {
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	if k == EndpointReferrers && resp.StatusCode == http.StatusNotFound {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBodyBytes))
		return nil, fmt.Errorf("upstream %s: %s: %w", c.registryName, suffix, content.ErrReferrersUnsupported)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, c.responseError(resp, k)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, content.MaxListingBytes+1))
	if err != nil {
		return nil, c.transportError(fmt.Errorf("read %s: %w", suffix, err))
	}
	if len(body) > content.MaxListingBytes {
		return nil, c.invalid("a listing larger than pullgate accepts", fmt.Errorf("%s/%s: over %d bytes", repo, suffix, content.MaxListingBytes))
	}
	return &content.Listing{
		ContentType:    resp.Header.Get("Content-Type"),
		Body:           body,
		Link:           resp.Header.Get("Link"),
		FiltersApplied: resp.Header.Get("OCI-Filters-Applied"),
	}, nil
}
