package enforce

import (
	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache"
)

// parseCache remembers how manifest bytes were classified (checkShape and parseManifest),
// so that a warm pull does not parse the same manifest again on every request. The key is
// the sha256 of the bytes, computed here rather than taken from the request, and the media
// type the bytes were classified under: the outcome depends on nothing else. Values are
// shared between requests and never modified. Only manifests of at most
// maxParseCachedBytes are kept, in at most maxParseCacheEntries entries, so an upstream
// serving many large manifests cannot make it hold more than a few tens of MiB.
type parseCache struct {
	entries *cache.TTL[parseKey, parseResult]
}

type parseKey struct {
	digest    digest.Digest
	mediaType string
}

type parseResult struct {
	parsed parsedManifest
	err    error
}

func newParseCache(size int) (*parseCache, error) {
	entries, err := cache.NewTTL[parseKey, parseResult](min(size, maxParseCacheEntries))
	if err != nil {
		return nil, err
	}
	return &parseCache{entries: entries}, nil
}

// parse is parseManifest(mediaType, data), from the cache when these bytes were
// classified under this media type before.
func (c *parseCache) parse(mediaType string, data []byte) (parsedManifest, error) {
	key := parseKey{digest: digest.SHA256.FromBytes(data), mediaType: mediaType}
	if r, ok := c.entries.Get(key); ok {
		return r.parsed, r.err
	}
	parsed, err := parseManifest(mediaType, data)
	if len(data) <= maxParseCachedBytes {
		c.entries.Add(key, parseResult{parsed: parsed, err: err}, parseCacheTTL)
	}
	return parsed, err
}
