package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// manifestAccept is the Accept header of every manifest GET, on both sides: what
	// containerd and ggcr send.
	manifestAccept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
	// maxManifestRead bounds a manifest body read by the benchmark.
	maxManifestRead = 4 * mib
	// maxErrorRead bounds an error body quoted in a message.
	maxErrorRead = 4096
	// readBufferBytes is the client's read size for blob bodies, the same on both sides.
	readBufferBytes = 256 << 10
)

// newHTTPClient is the benchmark's client: keep-alive connections on loopback, no proxy
// from the environment, and bodies exactly as sent (no transparent gzip).
func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 8,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

// endpoint is one side of the comparison: the registry itself, or pullgate with the
// registry's name as the path prefix.
type endpoint struct {
	name string
	base string // http://host/v2[/<upstreamName>]
}

func (e endpoint) manifestURL(repo, ref string) string {
	return e.base + "/" + repo + "/manifests/" + ref
}

func (e endpoint) blobURL(repo string, d v1.Hash) string {
	return e.base + "/" + repo + "/blobs/" + d.String()
}

// puller times GETs. Not safe for concurrent use (one read buffer).
type puller struct {
	client *http.Client
	hash   bool // hash blob bodies and check them against their digest
	buf    []byte
}

func newPuller(client *http.Client, hashBodies bool) *puller {
	return &puller{client: client, hash: hashBodies, buf: make([]byte, readBufferBytes)}
}

// manifest GETs url with manifestAccept, reads the body and returns the time from
// sending the request to the end of the body.
func (p *puller) manifest(ctx context.Context, url string) (time.Duration, error) {
	start := time.Now()
	req, resp, err := p.getManifest(ctx, url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(req, resp)
	}
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxManifestRead)); err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return time.Since(start), nil
}

// getManifest sends a GET for the manifest at url, accepting what clients accept.
func (p *puller) getManifest(ctx context.Context, url string) (*http.Request, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := p.client.Do(req)
	return req, resp, err
}

// expectStatus GETs url (a manifest) and fails unless the answer has the given status.
func (p *puller) expectStatus(ctx context.Context, url string, want int) error {
	req, resp, err := p.getManifest(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		return statusError(req, resp)
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorRead))
	return err
}

// blob GETs a blob and reads it to the end (hashing it when p.hash), checking its size
// (and digest); it returns the time from sending the request to the end of the body.
func (p *puller) blob(ctx context.Context, url string, want v1.Descriptor) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, statusError(req, resp)
	}
	var h hash.Hash
	if p.hash {
		h = sha256.New()
	}
	var n int64
	for {
		k, err := resp.Body.Read(p.buf)
		n += int64(k)
		if h != nil {
			h.Write(p.buf[:k])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
		}
	}
	took := time.Since(start)
	if n != want.Size {
		return 0, fmt.Errorf("GET %s: %d bytes, want %d", url, n, want.Size)
	}
	if h != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want.Digest.Hex {
			return 0, fmt.Errorf("GET %s: body hashes to sha256:%s", url, got)
		}
	}
	return took, nil
}

// statusError describes an unexpected answer, quoting the start of its body (the OCI
// error JSON, for pullgate's denials).
func statusError(req *http.Request, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorRead))
	return fmt.Errorf("%s %s: status %d: %s", req.Method, req.URL, resp.StatusCode, strings.TrimSpace(string(body)))
}
