package stored

import (
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/pullgate/pullgate/cache/store"
	"github.com/pullgate/pullgate/proxy/content"
)

// refsOf reads what a manifest the gate admitted refers to: an image's config and layers,
// an index's child manifests, and a subject. The store keeps a blob only while a kept
// manifest refers to it, and decides eviction and blob admission from these.
func refsOf(m *content.Manifest) (store.Refs, error) {
	var doc struct {
		Config *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"config"`
		Layers []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"layers"`
		Manifests []struct {
			Digest digest.Digest `json:"digest"`
		} `json:"manifests"`
		Subject *struct {
			Digest digest.Digest `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(m.Bytes, &doc); err != nil {
		return store.Refs{}, fmt.Errorf("manifest %s: %w", m.Digest, err)
	}
	var refs store.Refs
	check := func(d digest.Digest) error {
		if err := d.Validate(); err != nil {
			return fmt.Errorf("manifest %s refers to %q: %w", m.Digest, d, err)
		}
		return nil
	}
	if doc.Config != nil {
		if err := check(doc.Config.Digest); err != nil {
			return store.Refs{}, err
		}
		refs.Blobs = append(refs.Blobs, doc.Config.Digest)
	}
	for _, l := range doc.Layers {
		if err := check(l.Digest); err != nil {
			return store.Refs{}, err
		}
		refs.Blobs = append(refs.Blobs, l.Digest)
	}
	for _, c := range doc.Manifests {
		if err := check(c.Digest); err != nil {
			return store.Refs{}, err
		}
		refs.Manifests = append(refs.Manifests, c.Digest)
	}
	if doc.Subject != nil {
		if err := check(doc.Subject.Digest); err != nil {
			return store.Refs{}, err
		}
		refs.Subject = doc.Subject.Digest
	}
	return refs, nil
}

// tagsJSON is a tags/list answer for repo.
func tagsJSON(repo string, tags []string) ([]byte, error) {
	return json.Marshal(struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{repo, tags})
}
